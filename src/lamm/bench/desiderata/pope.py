"""POPE (Li et al. 2023): yes/no object-presence questions built from detection annotations (hallucination).

For each image, *positives* ask about categories present in it and *negatives* about categories absent
from it, chosen by one of three strategies:

* ``random`` — uniformly among the absent categories;
* ``popular`` — the absent categories that occur in the most images of the whole data set;
* ``adversarial`` — the absent categories that co-occur most often with the image's present ones
  (score of a candidate ``c`` = Σ over present ``p`` of the number of images holding both ``p`` and ``c``).

Every question is ``"Is there a {name} in the image?"`` (POPE's wording, always "a"). Decisions:

* **never a present object as a negative**: a category is *present* when one of the image's annotation
  names matches it after case/space/``_``/``-`` normalisation *or* through the shipped synonym tables
  (``lamm.bench.metrics.synonyms``: with ``boat`` present, ``ship`` is not asked as absent);
* **balance**: ``k = min(per_image, present categories, eligible absent categories)`` positives *and*
  ``k`` negatives per image (``balanced=False``: up to ``per_image`` of each, independently). Images
  without any object give no question; they are counted in :class:`PopeStats`, never dropped silently;
* **determinism**: positives come from ``random.Random(stable_hash(seed, "positive", image_id))`` — the
  same positives under all three strategies, so the three sets differ only in their negatives — and
  random negatives from ``random.Random(stable_hash(seed, strategy, image_id))``; neither depends on
  other images. Popularity / co-occurrence counts (in images) are over *all* images given (the whole
  data set, before any ``n_images`` subset); ties are broken by name;
* **ids** are ``{image_id}/{strategy}/{object key}``: an id always names the same (image, object)
  question, so answers cached under it stay valid when another seed picks other objects;
* **order**: per image, yes and no questions alternate (yes first); images keep their input order.

Readers: :func:`coco_pope_images` (a COCO instances JSON, through ``lamm.data.sources.coco.load_coco``;
crowd regions count as *present*: the category is in the image even though its instances are not
counted) — the 2D annotations of ``lamm data synth`` are COCO-style and load through it too
(:func:`synth_pope_images`); :func:`read_pope_file` reads a prebuilt POPE benchmark file, ours or the
official POPE JSONL (``question_id``, ``image``, ``text``, ``label``).

>>> imgs = [PopeImage("1", "1.jpg", {"cat", "dog"}), PopeImage("2", "2.jpg", {"cat"})]
>>> [(r["object"], r["gt_answer"]) for r in build_pope(imgs, ["cat", "dog", "car"], "popular", per_image=1)]
[('dog', 'yes'), ('car', 'no'), ('cat', 'yes'), ('dog', 'no')]
"""

from __future__ import annotations

import functools
import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field

from lamm.bench.metrics.synonyms import aliases, label_key
from lamm.bench.scenarios.base import stable_hash
from lamm.config import Config
from lamm.data.sources.base import norm_label
from lamm.fileio import read_text_utf8

STRATEGIES = ("random", "popular", "adversarial")
QUERY = "Is there a {name} in the image?"
_QUERY_RE = re.compile(r"^\s*is there (?:a|an|any) (.+?) in the (?:image|picture|photo)\s*\??\s*$", re.IGNORECASE)


class PopeError(ValueError):
    """POPE questions cannot be built or read: the message names the file, image or record and field."""


class PopeImage(NamedTuple):
    """One annotated image: its id, media path (relative to the media root) and present category names."""

    id: str
    image: str
    present: Iterable[str]


class PopeConfig(Config):
    """How POPE questions are sampled (``scenario.params`` of ``Synth-POPE`` / ``POPE``, or the CLI).

    ``images``: the image folder relative to the data root (``POPE`` only; default the root);
    ``n_images``: a seeded subset of that many images (POPE used 500 COCO val2014 images);
    ``min_objects``: only images with at least that many present categories (POPE: 3)."""

    strategy: Literal["random", "popular", "adversarial"] = "random"
    per_image: int = Field(3, ge=1)
    seed: int = Field(0, ge=0)
    balanced: bool = True
    n_images: int | None = Field(None, ge=1)
    min_objects: int = Field(1, ge=1)
    images: str | None = None


@dataclass
class PopeStats:
    """What a build did with its images (counts of images, except ``positives`` / ``negatives``)."""

    images: int = 0
    used: int = 0
    no_objects: int = 0
    below_min_objects: int = 0
    not_selected: int = 0
    no_absent: int = 0  # balanced, and every vocabulary category is present: no negative to pair with
    short: int = 0  # asked fewer than ``per_image`` positives (few objects) or negatives (few absent)
    positives: int = 0
    negatives: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class _Category(NamedTuple):
    key: str
    name: str
    alias_keys: frozenset[str]


@functools.lru_cache(maxsize=8192)  # one per distinct spelling; COCO repeats 80 names over 40k images
def _category(name: str) -> _Category:
    shown = norm_label(name)
    return _Category(label_key(shown), shown, frozenset(label_key(a) for a in aliases(shown)))


def _name_order(c: _Category) -> tuple[str, str]:
    return (c.name.casefold(), c.name)


def _present(img: PopeImage, index: int) -> dict[str, _Category]:
    """The image's present categories by key (names deduplicated after normalisation)."""
    if isinstance(img.present, (str, bytes)) or not isinstance(img.present, Iterable):
        raise PopeError(f"image {index} (id {img.id!r}): present categories must be a collection of names, "
                        f"got {img.present!r}")
    out: dict[str, _Category] = {}
    for name in sorted(img.present, key=str):  # sorted: the first spelling kept must not depend on set order
        if not isinstance(name, str) or not norm_label(name):
            raise PopeError(f"image {index} (id {img.id!r}): category name {name!r} is not a non-empty string")
        c = _category(name)
        out.setdefault(c.key, c)
    return out


def _vocabulary(categories: Sequence[str]) -> list[_Category]:
    if isinstance(categories, str) or not categories:
        raise PopeError(f"the category vocabulary must be a non-empty list of names, got {categories!r}")
    vocab: dict[str, _Category] = {}
    for name in categories:
        if not isinstance(name, str) or not norm_label(name):
            raise PopeError(f"category vocabulary: {name!r} is not a non-empty string")
        c = _category(name)
        vocab.setdefault(c.key, c)  # "Dog" and "dog" are one category; the first spelling is shown
    return sorted(vocab.values(), key=_name_order)


def _select(images: list[tuple[PopeImage, dict[str, _Category]]], n_images: int | None, min_objects: int,
            seed: int, stats: PopeStats) -> list[tuple[PopeImage, dict[str, _Category]]]:
    """Images with ≥ ``min_objects`` present categories; a seeded, nested subset of ``n_images`` of them."""
    eligible = []
    for img, present in images:
        if not present:
            stats.no_objects += 1
        elif len(present) < min_objects:
            stats.below_min_objects += 1
        else:
            eligible.append((img, present))
    if n_images is None or n_images >= len(eligible):
        return eligible
    # ranked by a hash of the image id: a larger subset contains every smaller one
    ranked = sorted(range(len(eligible)), key=lambda i: (stable_hash(seed, "pope-images", eligible[i][0].id), i))
    keep = set(ranked[:n_images])
    stats.not_selected += len(eligible) - n_images
    return [e for i, e in enumerate(eligible) if i in keep]


def _as_image(raw: Any, index: int) -> PopeImage:
    if not isinstance(raw, tuple) or len(raw) != 3:
        raise PopeError(f"image {index}: expected (image id, image path, present names), got {raw!r}")
    return PopeImage(str(raw[0]), str(raw[1]), raw[2])


def build_pope(images: Iterable[PopeImage | tuple[str, str, Iterable[str]]], categories: Sequence[str],
               strategy: str, per_image: int = 3, seed: int = 0, *, balanced: bool = True,
               n_images: int | None = None, min_objects: int = 1, stats: PopeStats | None = None
               ) -> list[dict[str, Any]]:
    """POPE benchmark records for ``images`` (the module docstring gives every sampling rule).

    ``images``: ``(image id, image path, present category names)``; ``categories``: the vocabulary that
    negatives are drawn from; ``strategy``: ``random`` | ``popular`` | ``adversarial``; ``per_image``:
    questions of each answer per image (at most); ``n_images`` / ``min_objects``: see :class:`PopeConfig`;
    ``stats``: filled with image counts when given. Returns records ``{"id", "image", "query",
    "gt_answer": "yes"|"no", "object", "strategy", "image_id", "seed"}``, yes/no alternating per image.
    """
    if strategy not in STRATEGIES:
        raise PopeError(f"unknown POPE strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if isinstance(per_image, bool) or not isinstance(per_image, int) or per_image < 1:
        raise PopeError(f"per_image must be an integer >= 1, got {per_image!r}")
    stats = stats if stats is not None else PopeStats()
    vocab = _vocabulary(categories)
    parsed: list[tuple[PopeImage, dict[str, _Category]]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(images):
        img = _as_image(raw, i)
        if img.id in seen:
            raise PopeError(f"image {i}: id {img.id!r} repeats image {seen[img.id]}; image ids must be unique")
        seen[img.id] = i
        parsed.append((img, _present(img, i)))
    stats.images += len(parsed)

    # image frequency and co-occurrence over the whole data set (every image given)
    freq: Counter[str] = Counter()
    cooc: dict[str, Counter[str]] = {}
    for _, present in parsed:
        freq.update(list(present))  # keys: a mapping would add its values
        for p in present:
            cooc.setdefault(p, Counter()).update(k for k in present if k != p)

    by_popularity = sorted(vocab, key=lambda c: (-freq[c.key], *_name_order(c)))
    out: list[dict[str, Any]] = []
    for img, present in _select(parsed, n_images, min_objects, seed, stats):
        taken = set(present).union(*(c.alias_keys for c in present.values()))
        # absent only if none of the candidate's names (synonyms included) names a present category
        absent = [c for c in vocab if c.key not in taken and not (c.alias_keys & taken)]
        pool = sorted(present.values(), key=_name_order)
        pos = random.Random(stable_hash(seed, "positive", img.id)).sample(pool, min(per_image, len(pool)))
        n_neg = min(per_image, len(absent))
        if balanced:
            pos = pos[:n_neg]
            n_neg = len(pos)
        if strategy == "random":
            neg = random.Random(stable_hash(seed, strategy, img.id)).sample(absent, n_neg)
        elif strategy == "popular":
            absent_keys = {c.key for c in absent}
            neg = [c for c in by_popularity if c.key in absent_keys][:n_neg]
        else:
            with_present = [cooc[p] for p in present]
            neg = sorted(absent, key=lambda c: (-sum(n[c.key] for n in with_present), *_name_order(c)))[:n_neg]
        if not pos and not neg:
            stats.no_absent += 1
            continue
        stats.used += 1
        stats.short += len(pos) < per_image or len(neg) < per_image
        stats.positives += len(pos)
        stats.negatives += len(neg)
        tagged: list[tuple[_Category, str]] = []
        for j in range(max(len(pos), len(neg))):
            tagged += [(pos[j], "yes")] if j < len(pos) else []
            tagged += [(neg[j], "no")] if j < len(neg) else []
        for c, answer in tagged:
            out.append({"id": f"{img.id}/{strategy}/{c.key}", "image": img.image, "query": QUERY.format(name=c.name),
                        "gt_answer": answer, "object": c.name, "strategy": strategy, "image_id": img.id,
                        "seed": seed})
    return out


def coco_pope_images(path: str | os.PathLike, image_prefix: str = "", *, data: dict | None = None
                     ) -> tuple[list[PopeImage], list[str]]:
    """``(images, category names)`` of a COCO instances JSON (``images``, ``annotations``, ``categories``).

    Presence comes from the annotations (crowd ones included, see the module docstring) through
    ``lamm.data.sources.coco.load_coco``; the vocabulary is every entry of ``categories``, with or
    without annotations. Image paths are ``image_prefix`` + ``file_name``. ``data``: the file already
    parsed, to take the vocabulary from without reading the file once more.
    """
    from lamm.data.sources.base import need, read_json
    from lamm.data.sources.coco import load_coco

    if data is None:
        data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "categories")):
        raise PopeError(f"{path}: not a COCO instances file: expected a JSON object with lists 'images', "
                        "'annotations' and 'categories'")
    names = [norm_label(need(c, "name", f"{path}: categories[{i}]")) for i, c in enumerate(data["categories"])]
    if not names:
        raise PopeError(f"{path}: 'categories' is empty; POPE draws its negatives from the category list")
    images = []
    for r in load_coco(instances=path, image_prefix=image_prefix, ann_fields=()):
        present = {o["label"] for o in r["objects"]} | set(r.get("crowd_labels", ()))
        images.append(PopeImage(r["src_id"], r["image"], present))
    return images, names


def synth_pope_images(root: str | os.PathLike, split: str) -> tuple[list[PopeImage], list[str]]:
    """``(images, shape names)`` of one split of ``lamm data synth`` (``ROOT/2d/annotations/{split}.json``,
    COCO-style; image paths relative to ``ROOT``)."""
    return coco_pope_images(Path(root) / "2d" / "annotations" / f"{split}.json")


def _norm_record(rec: Any, i: int, source: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise PopeError(f"{source}: record {i}: expected a JSON object, got {type(rec).__name__}")
    where = f"{source}: record {i} (id {rec.get('id', rec.get('question_id'))!r})"
    r = dict(rec)
    if "query" not in r and "text" in r and "label" in r:  # the official POPE JSONL
        r = {"id": r.pop("question_id", None), "query": r.pop("text"), "gt_answer": r.pop("label"), **r}
    for f in ("id", "image", "query", "gt_answer"):
        if r.get(f) is None or str(r[f]).strip() == "":
            raise PopeError(f"{where}: field {f!r}: missing or empty (a POPE record needs id, image, query, "
                            "gt_answer; an official POPE record: question_id, image, text, label)")
    answer = str(r["gt_answer"]).strip().lower()
    if answer not in ("yes", "no"):
        raise PopeError(f"{where}: field 'gt_answer': expected 'yes' or 'no', got {r['gt_answer']!r}")
    r["gt_answer"] = answer
    r["id"] = str(r["id"])
    if not r.get("object"):
        m = _QUERY_RE.match(str(r["query"]))
        if m:
            r["object"] = m.group(1)
    return r


def read_pope_file(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a prebuilt POPE benchmark file (JSON array or JSONL; ours or the official POPE format),
    normalised to ``id``, ``image``, ``query``, ``gt_answer`` ("yes"/"no") and ``object`` (when readable)."""
    from lamm.data.records import read_records
    from lamm.fileio import FileFormatError

    try:
        records = read_records(path)
    except FileFormatError as e:
        raise PopeError(str(e)) from None
    if not records:
        raise PopeError(f"{path}: no records; build a POPE file with `lamm data pope`")
    return [_norm_record(r, i, str(path)) for i, r in enumerate(records)]


def read_pope_input(path: str | os.PathLike, image_prefix: str = "") -> tuple[Literal["coco", "pope"], Any]:
    """A COCO instances JSON → ``("coco", (images, categories))``; a POPE file → ``("pope", records)``.

    Told apart by content: a COCO file is one JSON object holding ``annotations``; a POPE file is a JSON
    array or JSONL of records.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (expected a POPE benchmark file or a COCO instances JSON)")
    if p.suffix != ".jsonl":
        try:
            data = json.loads(read_text_utf8(p))
        except json.JSONDecodeError:
            data = None  # JSONL under a .json name, or broken JSON: read_pope_file names the line
        if isinstance(data, dict) and "annotations" in data:
            return "coco", coco_pope_images(p, image_prefix, data=data)
        if isinstance(data, dict):
            raise PopeError(f"{p}: a JSON object without 'annotations'; expected a COCO instances file "
                            "(images, annotations, categories) or a POPE file (a JSON array or JSONL of records)")
    return "pope", read_pope_file(p)
