"""Builder machinery: the registry, stable hashing and seeded generators, record assembly.

A *builder* (C4) turns one source record (a plain dict from :mod:`lamm.data.sources`) into zero or
more one-round instruction records. Its function is pure: ``fn(record, templates, rng, **params)``
returns :class:`Sample` objects, and :func:`run_builder` wraps them into LAMM records with provenance
(``src_dataset``, ``src_id``, ``builder`` = ``name@version``, ``template_id``, ``seed``).

Determinism: the generator handed to a builder is keyed by ``(seed, builder name, src_dataset,
src_id)`` through SHA-256 (never Python's salted ``hash``), so the same config gives the same records
on every machine and in every process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamm.registry import Registry

from .inflect import article, plural
from .templates import TemplateSet, load_templates


class BuilderError(ValueError):
    """A source record cannot be built: the message names the source record, the builder and the field."""


@dataclass(frozen=True)
class Sample:
    """One question/answer pair made by a builder. ``key`` tells apart several samples of one record."""

    question: str
    answer: str
    template_id: str
    key: str = ""


BuildFn = Callable[..., list[Sample]]


@dataclass(frozen=True)
class Builder:
    """A registered builder: its task type, modality, default template file and required fields."""

    name: str
    version: int
    task_type: str
    modality: str  # "image" | "pcl"
    fn: BuildFn
    templates: str
    requires: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


BUILDERS: Registry[Builder] = Registry("builder")


def register_builder(
    name: str,
    *,
    version: int,
    task_type: str,
    modality: str,
    templates: str | None = None,
    requires: tuple[str, ...] = (),
    params: dict[str, Any] | None = None,
) -> Callable[[BuildFn], BuildFn]:
    """Decorator registering ``fn`` as builder ``name``. Bump ``version`` whenever outputs change."""

    def deco(fn: BuildFn) -> BuildFn:
        BUILDERS.add(
            name,
            Builder(name, version, task_type, modality, fn, templates or name, requires, dict(params or {})),
        )
        return fn

    return deco


def stable_int(*parts: Any) -> int:
    """A 64-bit integer from ``parts`` via SHA-256: the same on every machine and Python run.

    >>> stable_int("a", 1) == stable_int("a", 1)
    True
    """
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def stable_unit(*parts: Any) -> float:
    """A float in [0, 1) from ``parts`` (see :func:`stable_int`)."""
    return stable_int(*parts) / 2.0**64


def rng_for(seed: int, *parts: Any) -> np.random.Generator:
    """A numpy Generator keyed by ``seed`` and ``parts`` (e.g. the builder and the record id)."""
    return np.random.default_rng(stable_int(seed, *parts))


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def record_id(src_dataset: str, src_id: str, builder: str, key: str = "") -> str:
    """A readable, file-name-safe id: ``{src_dataset}_{src_id}_{builder}[_{key}]``.

    Characters outside ``[A-Za-z0-9_.-]`` become ``-``; when that changes the id, a short stable hash
    of the original is appended, so names that differ only in such characters ("dog (1).jpg",
    "dog-1.jpg") keep distinct ids.

    >>> record_id("coco", "7", "detection"), record_id("l", "dog (1)", "classification")
    ('coco_7_detection', 'l_dog-1_classification-f1460518')
    """
    parts = [str(src_dataset), str(src_id), str(builder)] + ([str(key)] if key else [])
    raw = "_".join(parts)
    rid = "_".join(_ID_UNSAFE.sub("-", p).strip("-") or "x" for p in parts)
    if rid != raw:
        rid += "-" + hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:8]
    return rid


def source_ref(record: dict[str, Any]) -> str:
    """``src_dataset:src_id`` for messages."""
    return f"{record.get('src_dataset', '?')}:{record.get('src_id', '?')}"


def require(record: dict[str, Any], fld: str, builder: str) -> Any:
    """``record[fld]``, or a :class:`BuilderError` naming the record, builder and field."""
    if fld not in record or record[fld] is None:
        raise BuilderError(f"source record {source_ref(record)}: builder {builder!r} needs field {fld!r}")
    return record[fld]


def run_builder(
    name: str,
    record: dict[str, Any],
    templates: TemplateSet | None = None,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    salt: str = "",
) -> list[dict[str, Any]]:
    """Build LAMM instruction records from one source record with builder ``name``.

    ``salt`` (e.g. a second task's name) gives the builder different random draws for the same record.

    Returns ``[]`` when the builder does not apply to the record (e.g. detection on an image without
    objects). Raises :class:`BuilderError` for a malformed source record.
    """
    import lamm.data.builders  # noqa: F401  (registers every builder)

    b = BUILDERS.get(name)
    for key in ("src_dataset", "src_id"):
        require(record, key, name)
    if b.modality not in record:
        other = "pcl" if b.modality == "image" else "image"
        what = "a point cloud ('pcl')" if b.modality == "pcl" else "an image ('image')"
        hint = (
            f"; it has {other!r}: use the {'3D' if other == 'pcl' else '2D'} builder"
            if other in record
            else ""
        )
        raise BuilderError(f"source record {source_ref(record)}: builder {name!r} needs {what}{hint}")
    for fld in b.requires:
        require(record, fld, name)
    tset = templates if templates is not None else load_templates(b.templates)
    kwargs = {**b.params, **(params or {})}
    unknown = set(kwargs) - set(b.params)
    if unknown:
        raise BuilderError(
            f"builder {name!r}: unknown parameter(s) {sorted(unknown)}; known: {sorted(b.params)}"
        )
    rng = rng_for(seed, b.name, *([salt] if salt else []), record["src_dataset"], record["src_id"])
    samples = b.fn(record, tset, rng, **kwargs)
    out = []
    for s in samples:
        rid = record_id(record["src_dataset"], record["src_id"], b.name, s.key)
        out.append(
            {
                "id": rid,
                b.modality: record[b.modality],
                "task_type": b.task_type,
                "conversations": [{"from": "human", "value": s.question}, {"from": "gpt", "value": s.answer}],
                "src_dataset": record["src_dataset"],
                "src_id": str(record["src_id"]),
                "builder": b.tag,
                "template_id": s.template_id,
                "seed": seed,
            }
        )
    return out


# ------------------------------------------------------------------------------------------------
# Formatting helpers shared by builders (numbers are formatted the same everywhere so parsers agree)


def fmt_num(v: float, decimals: int = 2) -> str:
    """``0.5`` → ``"0.50"``; ``-0.0`` is printed as ``0.00`` (a minus sign on zero confuses parsers)."""
    s = f"{v:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def fmt_box(box: list[float], decimals: int = 2) -> str:
    """``[x1, y1, x2, y2]`` or ``[cx, cy, cz, lx, ly, lz]`` with fixed decimals."""
    return "[" + ", ".join(fmt_num(v, decimals) for v in box) + "]"


def clip_box2d(box: list[float], decimals: int = 2) -> list[float]:
    """Round a normalised box to ``decimals`` and keep it inside [0, 1] with x1 <= x2, y1 <= y2."""
    x1, y1, x2, y2 = (min(1.0, max(0.0, round(float(v), decimals))) for v in box)
    return [min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)]


def box3d_for_answer(box: list[float], decimals: int = 2) -> list[float]:
    """Round a 3D box; sizes never round to zero (a zero size is an invalid box)."""
    c = [round(float(v), decimals) for v in box[:3]]
    s = [max(round(float(v), decimals), 10.0**-decimals) for v in box[3:]]
    return c + s


def label_fields(label: str, plural_form: str | None = None) -> dict[str, str]:
    """Template fields for a category name: ``label``, ``Label``, ``a_label``, ``plural``.

    ``plural_form`` is the plural when the dataset gives it (e.g. FSC147's ``sea shells``); otherwise
    it is derived with :func:`plural`."""
    label = label.replace("_", " ").strip()
    return {
        "label": label,
        "Label": label[:1].upper() + label[1:],
        "a_label": article(label),
        "plural": " ".join(plural_form.replace("_", " ").split()) if plural_form else plural(label),
    }


def count_fields(n: int, label: str | None = None, plural_form: str | None = None) -> dict[str, Any]:
    """``n``, ``be`` (is/are), ``noun`` (singular for 1, plural otherwise) for counting answers."""
    out: dict[str, Any] = {"n": n, "be": "is" if n == 1 else "are"}
    if label is not None:
        lf = label_fields(label, plural_form)
        out["noun"] = lf["label"] if n == 1 else lf["plural"]
    return out


def is_unnamed(obj: Any) -> bool:
    """An object of unknown class (``{"label": None, "unnamed": True}``, e.g. a ScanNet box that no
    ScanRefer referral names). Builders that would print its class treat the record as not applicable."""
    return isinstance(obj, dict) and obj.get("unnamed") is True


def pick(rng: np.random.Generator, items: list[Any]) -> Any:
    """A uniformly random element (numpy's choice would turn dicts into arrays)."""
    return items[int(rng.integers(len(items)))]


def checked_objects(record: dict[str, Any], builder: str, box_len: int) -> list[dict[str, Any]]:
    """``record["objects"]``, each checked to have a non-empty ``label`` and a ``bbox`` of ``box_len``
    numbers (4: normalised [x1, y1, x2, y2]; 6: [cx, cy, cz, lx, ly, lz] metres). Unnamed objects
    (:func:`is_unnamed`, label None) are returned too: the caller decides what they mean for it."""
    objs = record.get("objects") or []
    if not isinstance(objs, list):
        raise BuilderError(
            f"source record {source_ref(record)}: builder {builder!r}: 'objects' must be a list"
        )
    for j, o in enumerate(objs):
        where = f"source record {source_ref(record)}: builder {builder!r}: objects[{j}]"
        named = isinstance(o, dict) and isinstance(o.get("label"), str) and bool(o["label"].strip())
        if not named and not (is_unnamed(o) and o.get("label") is None):
            raise BuilderError(f"{where}.label: must be a non-empty string (or null with 'unnamed': true)")
        box = o.get("bbox")
        if (
            not isinstance(box, (list, tuple))
            or len(box) != box_len
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
        ):
            raise BuilderError(f"{where}.bbox: expected {box_len} numbers, got {box!r}")
        if box_len == 4 and not (
            0 - 1e-6 <= box[0] <= box[2] <= 1 + 1e-6 and 0 - 1e-6 <= box[1] <= box[3] <= 1 + 1e-6
        ):
            raise BuilderError(f"{where}.bbox: expected normalised [x1, y1, x2, y2] in [0, 1], got {box!r}")
        if box_len == 6 and any(v <= 0 for v in box[3:]):
            raise BuilderError(f"{where}.bbox: sizes lx, ly, lz must be positive, got {box!r}")
    return objs


def reading_order(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """2D objects top-to-bottom then left-to-right (a fixed order a small model can learn)."""
    return sorted(objs, key=lambda o: (round(o["bbox"][1], 4), round(o["bbox"][0], 4)))


def spatial_order(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """3D objects by x, then y, then z of the centre (left to right from a viewer at -y)."""
    return sorted(
        objs, key=lambda o: (round(o["bbox"][0], 3), round(o["bbox"][1], 3), round(o["bbox"][2], 3))
    )


def draw_balanced(cands: list[Any], k: int, rng: np.random.Generator, key: Callable[[Any], Any]) -> list[Any]:
    """``k`` distinct candidates: a group (by ``key``) uniformly first, then a member of it, so groups
    with many candidates (every pair of objects for a position question, every expression of one
    object) do not crowd out the others."""
    groups: dict[str, list[Any]] = {}
    for c in cands:
        groups.setdefault(str(key(c)), []).append(c)
    chosen = []
    for _ in range(min(k, len(cands))):
        names = sorted(g for g, v in groups.items() if v)
        group = groups[names[int(rng.integers(len(names)))]]
        chosen.append(group.pop(int(rng.integers(len(group)))))
    return chosen
