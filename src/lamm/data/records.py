"""The LAMM record schemas: instruction records (LAMM.md §2) and benchmark records (§3).

Reading accepts JSON arrays and JSONL; writing is atomic. :func:`validate_records` reports *every*
problem — never stopping at the first — as a :class:`Problem` with the file, record index, id and
field, so a user can fix a 186K-record file in one pass.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamm.conversation import TASK_TYPES, TASK_TYPES_2D, TASK_TYPES_3D, canonical_task_type
from lamm.fileio import FileFormatError, read_json_or_jsonl, write_json_atomic, write_jsonl_atomic
from lamm.media import MediaError, load_media, resolve_media_path

ROLES = ("human", "gpt")
MODALITY_KEYS = ("image", "pcl")
#: the modality of an instruction record with neither ``image`` nor ``pcl`` (text-only dialogue)
TEXT_MODALITY = "text"
#: task types that make sense without media (the others ask about an image or a point cloud)
TEXT_TASK_TYPES = ("normal", "conversation", "commonsenseqa")
BENCHMARK_GT_FIELDS = (
    "label", "object", "gt_choice", "gt_choices", "sentences", "num", "word_list", "attr",
    "gt_joints", "points",
)


@dataclass(frozen=True)
class Problem:
    """One validation finding. ``severity`` is ``"error"`` (record invalid) or ``"warning"``."""

    file: str
    index: int
    id: str | None
    field: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        rid = f" id={self.id!r}" if self.id is not None else ""
        return f"{self.file}: record {self.index}{rid}: {self.field}: {self.message} [{self.severity}]"


@dataclass
class ValidationReport:
    """The outcome of validating one file."""

    file: str
    kind: str
    n_records: int = 0
    problems: list[Problem] = field(default_factory=list)
    task_types: Counter = field(default_factory=Counter)
    modalities: Counter = field(default_factory=Counter)

    @property
    def invalid_indices(self) -> set[int]:
        return {p.index for p in self.problems if p.severity == "error"}

    @property
    def n_invalid(self) -> int:
        return len(self.invalid_indices)

    @property
    def n_warnings(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)

    @property
    def ok(self) -> bool:
        return self.n_invalid == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "kind": self.kind, "n_records": self.n_records,
            "n_invalid": self.n_invalid, "n_warnings": self.n_warnings, "ok": self.ok,
            "task_types": dict(self.task_types), "modalities": dict(self.modalities),
            "problems": [asdict(p) for p in self.problems],
        }


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON array or JSONL file of records; every element must be an object."""
    rows = read_json_or_jsonl(path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise FileFormatError(f"{path}: record {i} is a {type(row).__name__}, expected an object")
    return rows


def write_records(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Write records atomically: JSONL when the name ends in ``.jsonl``, else a JSON array."""
    if str(path).endswith(".jsonl"):
        write_jsonl_atomic(path, records)
    else:
        write_json_atomic(path, list(records))


#: labels of multiple-choice options in LAMM's queries and answers ("(A) red (B) blue", "The answer is (B)")
OPTION_LETTERS = "ABCDEF"


def format_options(options: list[str], labels: list[str] | None = None) -> str:
    """Options as LAMM's multiple-choice queries write them (ScienceQA, ScanQA): ``(A) red (B) blue``;
    ``labels``: other labels instead of the letters (a verbalised question).

    >>> format_options(["red", "blue"]), format_options(["red", "blue"], ["1", "2"])
    ('(A) red (B) blue', '(1) red (2) blue')
    """
    if labels is None:
        if len(options) > len(OPTION_LETTERS):
            raise ValueError(f"{len(options)} options; LAMM's letters label at most {len(OPTION_LETTERS)}")
        labels = list(OPTION_LETTERS[: len(options)])
    return " ".join(f"({lab}) {opt}" for lab, opt in zip(labels, options))


def record_modality(record: dict[str, Any]) -> str:
    """``"image"``, ``"pcl"`` or ``"text"`` (neither key: a text-only instruction record)."""
    return next((k for k in MODALITY_KEYS if k in record), TEXT_MODALITY)


def detect_kind(records: list[dict[str, Any]]) -> str:
    """``"instruction"`` when records carry ``conversations``, ``"benchmark"`` when they carry ``query``."""
    n_conv = sum("conversations" in r for r in records)
    n_query = sum("query" in r for r in records)
    return "benchmark" if n_query > n_conv else "instruction"


_BOX_RE = re.compile(r"\[([^\[\]]*)\]")


def _numbers_in_brackets(text: str) -> list[list[float]]:
    groups = []
    for m in _BOX_RE.finditer(text):
        parts = [s.strip() for s in m.group(1).split(",")]
        try:
            groups.append([float(s) for s in parts if s])
        except ValueError:
            continue
    return groups


def box2d_problem(box: Any) -> str | None:
    """Why ``box`` is not a normalised ``[x1, y1, x2, y2]`` box, or ``None`` when it is fine."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return f"expected 4 numbers [x1, y1, x2, y2], got {box!r}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return f"box values must be numbers, got {box!r}"
    x1, y1, x2, y2 = box
    if not all(-1e-6 <= v <= 1 + 1e-6 for v in box):
        return f"box values must be in [0, 1] (relative to image size), got {box!r}"
    if x1 > x2 or y1 > y2:
        return f"box must have x1 <= x2 and y1 <= y2, got {box!r}"
    return None


def box3d_problem(box: Any) -> str | None:
    """Why ``box`` is not a ``[cx, cy, cz, lx, ly, lz]`` box with positive sizes, or ``None``."""
    if not isinstance(box, (list, tuple)) or len(box) != 6:
        return f"expected 6 numbers [cx, cy, cz, lx, ly, lz], got {box!r}"
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return f"box values must be numbers, got {box!r}"
    if any(v <= 0 for v in box[3:]):
        return f"box sizes lx, ly, lz must be positive, got {box!r}"
    return None


class _Checker:
    def __init__(self, file: str, index: int, rid: str | None, out: list[Problem]):
        self.file, self.index, self.rid, self.out = file, index, rid, out

    def error(self, fld: str, msg: str) -> None:
        self.out.append(Problem(self.file, self.index, self.rid, fld, msg, "error"))

    def warn(self, fld: str, msg: str) -> None:
        self.out.append(Problem(self.file, self.index, self.rid, fld, msg, "warning"))


def _check_common(rec: dict[str, Any], c: _Checker, root: str | None, check_media: bool,
                  kind: str) -> str | None:
    """Checks every record kind shares; returns its modality: ``image``, ``pcl``, ``text`` (an
    instruction record without media) or ``None`` when the modality fields are invalid."""
    if "id" not in rec:
        c.error("id", "missing")
    elif not isinstance(rec["id"], (str, int)) or str(rec["id"]).strip() == "":
        c.error("id", f"must be a non-empty string or integer, got {rec['id']!r}")
    present = [k for k in MODALITY_KEYS if k in rec]
    if len(present) == 0:
        if kind == "instruction":  # text-only dialogue, mixed into multimodal training as LLaVA does
            return TEXT_MODALITY
        c.error("image|pcl", "record has neither 'image' nor 'pcl'; a benchmark record needs exactly one")
        return None
    if len(present) == 2:
        c.error("image|pcl", "record has both 'image' and 'pcl'; give at most one")
        return None
    key = present[0]
    value = rec[key]
    if not isinstance(value, str) or not value.strip():
        c.error(key, f"must be a non-empty path, got {value!r}")
        return key
    if check_media:
        path = resolve_media_path(value, root)
        if not path.exists():
            c.error(key, f"file not found: {path} (check --root)")
        else:
            try:
                load_media(path)
            except MediaError as e:
                c.error(key, f"does not load: {e}")
    return key


def _check_instruction(rec: dict[str, Any], c: _Checker, modality: str | None) -> str:
    task_type = rec.get("task_type")
    if task_type is None:
        c.warn("task_type", "missing; the generic 'normal' system message will be used")
    elif not isinstance(task_type, str):
        c.error("task_type", f"must be a string, got {task_type!r}")
    elif canonical_task_type(task_type) not in TASK_TYPES:
        c.warn("task_type", f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    elif modality == "image" and canonical_task_type(task_type) in TASK_TYPES_3D:
        c.warn("task_type", f"3D task type {task_type!r} on an image record")
    elif modality == "pcl" and canonical_task_type(task_type) in TASK_TYPES_2D:
        c.warn("task_type", f"2D task type {task_type!r} on a point-cloud record")
    elif modality == TEXT_MODALITY and canonical_task_type(task_type) not in TEXT_TASK_TYPES:
        c.warn("task_type", f"task type {task_type!r} asks about media, but the record has neither 'image' "
               f"nor 'pcl'; text-only records usually use {', '.join(TEXT_TASK_TYPES)}")
    conv = rec.get("conversations")
    if conv is None:
        c.error("conversations", "missing")
        return canonical_task_type(task_type if isinstance(task_type, str) else None)
    if not isinstance(conv, list) or not conv:
        c.error("conversations", "must be a non-empty list of {from, value} turns")
        return canonical_task_type(task_type if isinstance(task_type, str) else None)
    for t, turn in enumerate(conv):
        where = f"conversations[{t}]"
        if not isinstance(turn, dict):
            c.error(where, f"turn must be an object, got {type(turn).__name__}")
            continue
        role = turn.get("from")
        if role not in ROLES:
            c.error(f"{where}.from", f"must be 'human' or 'gpt', got {role!r}")
        else:
            expected = ROLES[t % 2]
            if role != expected:
                msg = "conversation must start with a human turn" if t == 0 else "turns must alternate human/gpt"
                c.error(f"{where}.from", f"{msg}; expected {expected!r}, got {role!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            c.error(f"{where}.value", f"must be a string, got {value!r}")
        elif not value.strip():
            c.error(f"{where}.value", "empty text")
    if len(conv) % 2 == 1 and all(isinstance(t, dict) for t in conv):
        c.error("conversations", f"ends with a human turn ({len(conv)} turns); every question needs an answer")
    ct = canonical_task_type(task_type if isinstance(task_type, str) else None)
    if ct in ("detection", "detection3d", "visual_grounding3d"):
        for t, turn in enumerate(conv):
            if isinstance(turn, dict) and turn.get("from") == "gpt" and isinstance(turn.get("value"), str):
                for box in _numbers_in_brackets(turn["value"]):
                    why = box2d_problem(box) if ct == "detection" else box3d_problem(box)
                    if why:
                        c.error(f"conversations[{t}].value", f"bad box: {why}")
    return ct


def _check_benchmark(rec: dict[str, Any], c: _Checker, modality: str | None) -> str:
    query = rec.get("query")
    if query is None:
        c.error("query", "missing")
    elif not isinstance(query, str) or not query.strip():
        c.error("query", f"must be a non-empty string, got {query!r}")
    if not any(k in rec for k in BENCHMARK_GT_FIELDS):
        c.error("ground truth", f"no ground-truth field; expected one of {', '.join(BENCHMARK_GT_FIELDS)}")
    for fld in ("label", "attr"):
        if fld in rec and (not isinstance(rec[fld], (str, int)) or str(rec[fld]).strip() == ""):
            c.error(fld, f"must be a non-empty string, got {rec[fld]!r}")
    check_box = box3d_problem if modality == "pcl" else box2d_problem
    obj = rec.get("object")
    if obj is not None:
        if isinstance(obj, list) and obj and all(isinstance(v, (int, float)) for v in obj):
            why = check_box(obj)  # ScanRefer: a single box
            if why:
                c.error("object", f"bad box: {why}")
        elif isinstance(obj, list):
            for j, o in enumerate(obj):
                if not isinstance(o, dict):
                    c.error(f"object[{j}]", "must be an object with 'label' and 'bbox'")
                    continue
                if not isinstance(o.get("label"), str) or not o.get("label", "").strip():
                    c.error(f"object[{j}].label", f"must be a non-empty string, got {o.get('label')!r}")
                why = check_box(o.get("bbox"))
                if why:
                    c.error(f"object[{j}].bbox", f"bad box: {why}")
        else:
            c.error("object", f"must be a list, got {type(obj).__name__}")
    if "gt_choices" in rec or "gt_choice" in rec:
        choices, gt = rec.get("gt_choices"), rec.get("gt_choice")
        if not isinstance(choices, list) or len(choices) < 2:
            c.error("gt_choices", f"must be a list of at least 2 options, got {choices!r}")
        elif not isinstance(gt, int) or isinstance(gt, bool) or not 0 <= gt < len(choices):
            c.error("gt_choice", f"must be an index into gt_choices (0..{len(choices) - 1}), got {gt!r}")
    if "num" in rec and (isinstance(rec["num"], bool) or not isinstance(rec["num"], (int, float)) or rec["num"] < 0):
        c.error("num", f"must be a non-negative number, got {rec['num']!r}")
    for fld in ("sentences", "word_list"):
        if fld in rec and (not isinstance(rec[fld], list) or not rec[fld]
                           or not all(isinstance(s, str) and s.strip() for s in rec[fld])):
            c.error(fld, "must be a non-empty list of non-empty strings")
    return "benchmark"


def validate_records(
    records: list[Any],
    *,
    file: str = "<records>",
    root: str | os.PathLike | None = None,
    kind: str = "auto",
    check_media: bool = True,
) -> ValidationReport:
    """Validate every record; ``kind`` is ``"instruction"``, ``"benchmark"`` or ``"auto"``."""
    if kind == "auto":
        kind = detect_kind([r for r in records if isinstance(r, dict)])
    if kind not in ("instruction", "benchmark"):
        raise ValueError(f"kind must be 'instruction', 'benchmark' or 'auto', got {kind!r}")
    report = ValidationReport(file=file, kind=kind, n_records=len(records))
    root_s = str(root) if root is not None else None
    seen_ids: dict[str, int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            report.problems.append(Problem(file, i, None, "<record>", f"must be an object, got {type(rec).__name__}"))
            continue
        rid = str(rec["id"]) if isinstance(rec.get("id"), (str, int)) else None
        c = _Checker(file, i, rid, report.problems)
        if rid is not None:
            if rid in seen_ids and kind == "instruction":
                c.warn("id", f"duplicate id (first at record {seen_ids[rid]})")
            seen_ids.setdefault(rid, i)
        modality = _check_common(rec, c, root_s, check_media, kind)
        if modality:
            report.modalities[modality] += 1
        tt = _check_instruction(rec, c, modality) if kind == "instruction" else _check_benchmark(rec, c, modality)
        if kind == "instruction":
            report.task_types[tt] += 1
    return report


def validate_file(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    kind: str = "auto",
    check_media: bool = True,
) -> ValidationReport:
    """Read and validate one file; media paths resolve against ``root`` (default: the file's folder)."""
    records = read_records(path)
    return validate_records(
        records, file=str(path), root=root if root is not None else Path(path).parent,
        kind=kind, check_media=check_media,
    )
