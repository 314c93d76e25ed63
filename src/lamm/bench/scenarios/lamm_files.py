"""LAMM-Benchmark scenarios read from their files under a benchmark root.

Every scenario of ``lamm.bench.scenarios.catalog`` (CIFAR10, VOC2012, ScienceQA, AI2D, Flickr30k,
UCMerced, FSC147, SVT, CelebA-Smile, CelebA-Hair, LSP, Locating-VOC2012/-LSP/-FSC147, ScanNet,
ScanRefer, ScanQA) is registered here. Its file is looked up as ``ROOT/<file>``, then
``ROOT/2D_Benchmark/meta_file/<file>`` / ``ROOT/3D_Benchmark/meta_file/<file>`` (LAMM's release
layout, where media paths are relative to the ``2D_Benchmark`` / ``3D_Benchmark`` folder), trying
every accepted file name (older releases spelled some differently). Media paths in the records are
relative to the folder that holds the benchmark's media (``ROOT``, or the ``*_Benchmark`` folder). A
file named by the recipe (``scenario.file``, an ICL ``pool``) follows the same rule: under
``ROOT/2D_Benchmark/`` (``3D_Benchmark/``) its media are relative to that folder, elsewhere to ``ROOT``;
a first record whose media is not there is an error naming the media root used.

CIFAR10 and UCMerced have fixed class lists (``catalog.ScenarioInfo.classes``): they are the answer
options of those scenarios, and a label outside them is an error naming the record.

:func:`make_builder` turns records of any metric family into samples; the synthetic and generic
scenarios use it too. LSP records give one question per joint: the ``{}`` in the ``query`` is filled
with each joint name (``lamm.bench.metrics.keypoints.JOINT_NAMES``), in LAMM's joint order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamm.bench.scenarios.base import (
    SCENARIOS,
    MissingDataError,
    RecordScenario,
    Sample,
    ScenarioError,
    ScenarioSpec,
    media_of,
    require,
)
from lamm.bench.scenarios.catalog import CATALOG, ScenarioInfo
from lamm.data.records import read_records
from lamm.fileio import FileFormatError

#: conversation task type per metric family and modality, where a scenario does not name one
FAMILY_TASK_TYPES: dict[str, str] = {
    "classification": "classification", "facial_smile": "VQA", "facial_hair": "VQA", "detection": "detection",
    "multiple_choice": "VQA", "caption": "normal", "counting": "counting", "ocr": "VQA",
    "keypoints": "keypoint_detection", "locating": "keypoint_detection", "detection3d": "detection3d",
    "grounding3d": "visual_grounding3d", "mme": "VQA",
}
_TASK_TYPES_3D = {"classification": "classification3d", "multiple_choice": "VQA3d"}


def default_task_type(family: str, modality: str) -> str:
    """The system-message task type for a metric family on images or point clouds."""
    if modality == "pcl" and family in _TASK_TYPES_3D:
        return _TASK_TYPES_3D[family]
    return FAMILY_TASK_TYPES.get(family, "normal")


def _fmt(values: Any) -> str:
    return "[" + ", ".join(f"{float(v):.2f}" for v in values) + "]"


def _hair(attr: Any) -> str:
    from lamm.bench.metrics.classification import hair_colour

    return hair_colour(attr)


def gold_answer(family: str, rec: dict[str, Any]) -> str | None:
    """The ground truth written as an answer, shown with in-context examples (``None``: no example)."""
    if family == "classification" and "label" in rec:
        return str(rec["label"])
    if family == "facial_smile" and "attr" in rec:
        return "Yes, the person is smiling." if str(rec["attr"]).strip() == "1" else "No, the person is not smiling."
    if family == "facial_hair" and "attr" in rec:
        return f"The person has {_hair(rec['attr'])} hair."
    gt = rec.get("gt_answer")
    if family == "mme" and isinstance(gt, str) and gt.strip().lower() in ("yes", "no"):
        return gt.strip().capitalize()
    if family == "multiple_choice" and isinstance(rec.get("gt_choice"), int):
        return f"The answer is ({chr(65 + rec['gt_choice'])})."
    if family in ("detection", "detection3d") and isinstance(rec.get("object"), list):
        return " ".join(f"The {o['label']} is at {_fmt(o['bbox'])}." for o in rec["object"]
                        if isinstance(o, dict) and "bbox" in o) or None
    if family == "grounding3d" and isinstance(rec.get("object"), list):
        return f"The object is at {_fmt(rec['object'][:6])}."
    if family == "caption" and rec.get("sentences"):
        return str(rec["sentences"][0])
    if family == "counting" and "num" in rec:
        n = rec["num"]
        return str(int(n)) if float(n).is_integer() else str(n)
    if family == "ocr" and rec.get("word_list"):
        return " ".join(f'"{w}"' for w in rec["word_list"])
    if family == "locating" and isinstance(rec.get("object"), list) and rec["object"]:
        o = rec["object"][0]
        b = o.get("bbox", []) if isinstance(o, dict) else []
        if len(b) == 4:
            return f"The {o.get('label', 'object')} is at {_fmt([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])}."
    return None  # keypoints / LSP locating are in pixels: no 0-1 example without opening the image


def vocabulary(family: str, records: list[dict[str, Any]], source: str = "<records>",
               classes: tuple[str, ...] | None = None) -> list[str] | None:
    """The closed answer set of a family (class names, yes/no, hair colours): ``ppl`` options, ``{labels}``.

    ``classification``: the dataset's fixed ``classes`` when it has them (CIFAR10, UCMerced), in their
    order, whatever labels the file holds; a class is spelled as the file spells it where the file has it
    ("dense residential" for ``denseresidential``), else as in the list. A label outside the list is an
    error naming the record. Without a class list (synthetic, generic files): the distinct labels of the
    file. ``facial_smile`` and ``mme``: yes / no. ``facial_hair``: the distinct hair colours of the file.

    >>> vocabulary("classification", [{"id": "a", "label": "Cat"}], classes=("cat", "dog"))
    ['Cat', 'dog']
    """
    if family == "classification":
        if classes is None:
            return sorted({str(r["label"]) for r in records if isinstance(r, dict) and "label" in r}) or None
        from lamm.bench.metrics.synonyms import label_key

        by_key = {label_key(c): c for c in classes}
        spelled: dict[str, str] = {}
        for i, r in enumerate(records):
            label = r.get("label") if isinstance(r, dict) else None
            if not isinstance(label, str) or not label.strip():
                continue  # a missing or empty label is reported by the metric, naming the record
            key = label_key(label)
            if key not in by_key:
                raise ScenarioError(
                    f"{source}: record {i} (id {r.get('id')!r}): field 'label': {label!r} is not one of the "
                    f"{len(classes)} classes of this dataset ({', '.join(classes)}); correct the label, or "
                    "score the file as another dataset with scenario: {name: generic, file: ..., "
                    "metric: classification}")
            spelled.setdefault(key, label)
        return [spelled.get(label_key(c), c) for c in classes]
    if family in ("facial_smile", "mme"):
        return ["yes", "no"]
    if family == "facial_hair":
        return sorted({_hair(r["attr"]) for r in records if isinstance(r, dict) and "attr" in r}) or None
    return None


def make_builder(family: str, task_type: str, root: Path, source: str,
                 options: list[str] | None) -> Callable[[dict[str, Any], int], list[Sample]]:
    """A function ``(record, index) -> samples`` for records scored by ``family``."""

    def build(rec: dict[str, Any], i: int) -> list[Sample]:
        query = require(rec, "query", i, source)
        if not isinstance(query, str) or not query.strip():
            raise ScenarioError(f"{source}: record {i} (id {rec.get('id')!r}): field 'query': must be a "
                                f"non-empty string, got {query!r}")
        media = media_of(rec, root, i, source)
        rid = str(rec["id"])
        if family == "keypoints":
            from lamm.bench.metrics.keypoints import JOINT_NAMES

            if "{}" not in query:
                raise ScenarioError(f"{source}: record {i} (id {rid!r}): field 'query': an LSP query needs a "
                                    "'{}' where each joint name goes")
            return [Sample(id=rid, media=list(media), question=query.replace("{}", joint), references=rec,
                           task_type=task_type, part=joint) for joint in JOINT_NAMES]
        opts = options
        if family == "multiple_choice":
            choices = require(rec, "gt_choices", i, source)
            if not isinstance(choices, list) or len(choices) < 2:
                raise ScenarioError(f"{source}: record {i} (id {rid!r}): field 'gt_choices': expected a list "
                                    f"of at least 2 options, got {choices!r}")
            opts = [str(c) for c in choices]
        return [Sample(id=rid, media=media, question=query, references=rec, options=opts, task_type=task_type,
                       answer=gold_answer(family, rec))]

    return build


def read_benchmark_file(path: Path) -> list[dict[str, Any]]:
    """Records of a benchmark file; errors name the file."""
    try:
        return read_records(path)
    except FileFormatError as e:
        raise ScenarioError(str(e)) from None


def records_scenario(name: str, path: Path, media_root: Path, family: str, task_type: str | None,
                     modality: str | None = None, chance: Callable[[list[dict]], float | None] | None = None,
                     classes: tuple[str, ...] | None = None) -> RecordScenario:
    """A :class:`RecordScenario` over the records of one file, scored by ``family``.

    ``classes``: the dataset's fixed class list (see :func:`vocabulary`). A closed-vocabulary scenario's
    chance level is 100 / the number of options it offers; otherwise ``chance(records)``.
    """
    records = read_benchmark_file(path)
    if modality is None:
        modality = "pcl" if records and "pcl" in records[0] else "image"
    tt = task_type or default_task_type(family, modality)
    opts = vocabulary(family, records, str(path), classes)
    if family == "mme":  # the headline is a sum of per-subtask scores, not a percent of the options
        from lamm.bench.scenarios.mme import mme_chance

        level = mme_chance(records)
    else:
        level = 100.0 / len(opts) if opts else (chance(records) if chance else None)
    return RecordScenario(
        name=name, metric=family, task_type=tt, modality=modality, source=str(path), root=media_root,
        records=records, build=make_builder(family, tt, media_root, str(path), opts), options=opts,
        chance=level,
    )


def find_file(info: ScenarioInfo, root: Path) -> tuple[Path, Path]:
    """(benchmark file, media root) of a LAMM scenario under ``root``; the error lists what was tried."""
    bench_dir = root / ("3D_Benchmark" if info.modality == "pcl" else "2D_Benchmark")
    tried = []
    for fname in info.files:
        for path, media in ((root / fname, root), (root / "meta_file" / fname, root),
                            (bench_dir / "meta_file" / fname, bench_dir)):
            tried.append(str(path))
            if path.is_file():
                return path, media
    raise MissingDataError(f"scenario {info.name!r}: benchmark file not found under {root}; tried "
                        f"{', '.join(tried)}. Pass --root with the LAMM-Benchmark folder")


def media_root_for(path: Path, root: Path) -> Path:
    """The folder a named file's media paths are relative to: ``ROOT/2D_Benchmark`` (``3D_Benchmark``)
    when the file lies under it, as in LAMM's release layout (the same rule as :func:`find_file`), else
    ``root``."""
    where = path.resolve()
    for folder in ("2D_Benchmark", "3D_Benchmark"):
        bench = root / folder
        if bench.is_dir() and where.is_relative_to(bench.resolve()):
            return bench
    return root


def check_media_root(records: list[dict[str, Any]], source: Path, media_root: Path, root: Path) -> None:
    """Fail early, naming the media root, when the first record's image / point cloud is not under it
    (a file whose paths are relative to another folder fails on every record, after the model loaded)."""
    for i, rec in enumerate(records):
        key = next((k for k in ("image", "pcl") if isinstance(rec, dict) and isinstance(rec.get(k), str)
                    and rec[k]), None)
        if key is None:
            continue
        p = Path(rec[key])
        full = p if p.is_absolute() else media_root / p
        if not full.exists():
            why = ("the file lies under it (LAMM's release layout)" if media_root != root
                   else "the --root; only a file under ROOT/2D_Benchmark or ROOT/3D_Benchmark resolves "
                   "against that folder")
            raise ScenarioError(
                f"{source}: record {i} (id {rec.get('id')!r}): field {key!r}: {full} not found; this file's "
                f"media paths are resolved against {media_root} ({why}). Make its paths relative to "
                f"{media_root}, or move the file under the folder they are relative to")
        return


def _loader(info: ScenarioInfo) -> Callable[..., RecordScenario]:
    def load(root: Path, *, split: str = "test", file: str | None = None, metric: str | None = None,
             task_type: str | None = None) -> RecordScenario:
        if root is None:
            raise ScenarioError(f"scenario {info.name!r}: pass --root, the LAMM-Benchmark folder")
        if file is not None:  # e.g. an in-context example pool in the same format
            path = Path(file) if Path(file).is_absolute() else root / file
            if not path.is_file():
                raise MissingDataError(f"scenario {info.name!r}: file {path} not found")
            media = media_root_for(path, root)
        else:
            path, media = find_file(info, root)
        scenario = records_scenario(info.name, path, media, metric or info.metric,
                                    task_type or info.task_type, info.modality, info.chance_level,
                                    classes=info.classes)
        if file is not None:
            check_media_root(scenario.records, path, media, root)
        return scenario

    return load


for _info in CATALOG.values():
    SCENARIOS.add(_info.name, ScenarioSpec(
        name=_info.name, metric=_info.metric, task_type=_info.task_type, modality=_info.modality,
        load=_loader(_info), splits=("test",), description=f"LAMM-Benchmark {_info.task}: {_info.file}",
        suite="lamm3d" if _info.modality == "pcl" else "lamm2d",
    ))
