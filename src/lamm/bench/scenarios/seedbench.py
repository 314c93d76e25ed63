"""SEED-Bench (v1) image questions: four-option multiple choice over 9 dimensions, scored by
``multiple_choice``.

``SEED-Bench`` reads the release under ``--root``: ``SEED-Bench.json`` (``scenario.file`` names another
file) and the images in ``SEED-Bench-image/`` (``scenario.params.image_dir``). The JSON holds
``question_type`` (dimension name → id) and ``questions``, each with ``question_id``, ``question``,
``choice_a`` … ``choice_d``, ``answer`` (a letter), ``data_type`` (``image`` or ``video``), ``data_id``
(the image's file name, with or without its extension) and ``question_type_id``.

Records: ``id`` = ``question_id``; ``image`` (relative to the root); ``query`` = the question followed by
``Options: (A) … (D) …`` (LAMM's multiple-choice style, :func:`lamm.data.records.format_options`);
``gt_choices`` / ``gt_choice``; ``category`` (the dimension's name, e.g. ``Instance Counting``) and
``question_type_id``. Video questions (``data_type`` ``video``, dimensions 10–12) need a video model: they
are left out and counted in the scenario's ``layout_stats`` (``video_questions``), which ``run_info``
reports — as ChEF and LAMM's evaluations of image models do. A malformed question (a missing field, an
answer letter outside A–D, an empty option) or a missing image is an error naming the file, the question's
position and id, and the field.

``scenario.params``: ``image_dir`` (relative to the root; default ``SEED-Bench-image``), ``dimensions``
(names or ids of the dimensions to ask; default every image dimension).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.bench.scenarios.base import SCENARIOS, MissingDataError, RecordScenario, ScenarioError, ScenarioSpec
from lamm.bench.scenarios.lamm_files import make_builder
from lamm.config import Config, ConfigError, config_from_dict
from lamm.data.records import OPTION_LETTERS, format_options
from lamm.fileio import read_text_utf8

DEFAULT_FILE = "SEED-Bench.json"
DEFAULT_IMAGE_DIR = "SEED-Bench-image"
CHOICE_KEYS = ("choice_a", "choice_b", "choice_c", "choice_d")
IMAGE_SUFFIXES = ("", ".jpg", ".jpeg", ".png")


class SEEDBenchConfig(Config):
    """``scenario.params`` of ``SEED-Bench``."""

    image_dir: str = DEFAULT_IMAGE_DIR
    #: dimension names (``Instance Counting``) or ids (5) to ask; None: every image dimension
    dimensions: list[str | int] | None = None


@dataclass
class SEEDBenchScenario(RecordScenario):
    """A :class:`RecordScenario` of SEED-Bench image questions; ``layout_stats``: questions read, video
    questions left out, questions of dimensions not asked."""

    layout_stats: dict[str, int] = field(default_factory=dict)


def _field(q: Any, key: str, where: str) -> Any:
    if not isinstance(q, dict) or key not in q:
        raise ScenarioError(f"{where}: field {key!r}: missing")
    return q[key]


def _image_path(image_dir: Path, data_id: str, root: Path, where: str) -> str:
    """The image of ``data_id`` relative to ``root`` (the id as given, else with a common extension)."""
    for suffix in IMAGE_SUFFIXES:
        p = image_dir / f"{data_id}{suffix}"
        if p.is_file():
            return p.relative_to(root).as_posix()
    raise ScenarioError(f"{where}: field 'data_id': no image {data_id!r} (.jpg / .png) in {image_dir}; "
                        "restore the image, or point scenario.params.image_dir at the images")


def seedbench_record(q: Any, where: str, names: dict[int, str], image_dir: Path, root: Path) -> dict[str, Any]:
    """One image question as a benchmark record (module docstring); ``where`` names it in errors.

    The image is looked up in ``image_dir``; ``names`` maps dimension ids to names."""
    qid = _field(q, "question_id", where)
    where = f"{where} (question_id {qid!r})"
    question = _field(q, "question", where)
    if not isinstance(question, str) or not question.strip():
        raise ScenarioError(f"{where}: field 'question': must be a non-empty string, got {question!r}")
    choices = []
    for key in CHOICE_KEYS:
        c = _field(q, key, where)
        if not isinstance(c, (str, int, float)) or not str(c).strip():
            raise ScenarioError(f"{where}: field {key!r}: must be a non-empty option, got {c!r}")
        choices.append(str(c).strip())
    answer = _field(q, "answer", where)
    letter = str(answer).strip().upper()
    if len(letter) != 1 or letter not in OPTION_LETTERS[: len(choices)]:
        raise ScenarioError(f"{where}: field 'answer': expected one of A, B, C, D, got {answer!r}")
    type_id = _field(q, "question_type_id", where)
    data_id = _field(q, "data_id", where)
    if not isinstance(data_id, str) or not data_id.strip():
        raise ScenarioError(f"{where}: field 'data_id': must be an image file name, got {data_id!r}")
    return {
        "id": str(qid),
        "image": _image_path(image_dir, data_id.strip(), root, where),
        "query": f"{question.strip()} Options: {format_options(choices)}",
        "gt_choices": choices,
        "gt_choice": OPTION_LETTERS.index(letter),
        "category": names.get(type_id, str(type_id)) if isinstance(type_id, int) else str(type_id),
        "question_type_id": type_id,
    }


def _dimension_filter(wanted: list[str | int] | None, names: dict[int, str], path: Path) -> set[int] | None:
    if wanted is None:
        return None
    by_name = {v.lower(): k for k, v in names.items()}
    out, unknown = set(), []
    for w in wanted:
        if isinstance(w, int) and w in names:
            out.add(w)
        elif isinstance(w, str) and w.strip().lower() in by_name:
            out.add(by_name[w.strip().lower()])
        else:
            unknown.append(w)
    if unknown:
        raise ScenarioError(f"scenario 'SEED-Bench': scenario.params.dimensions: unknown {unknown!r}; {path} "
                            f"names: {', '.join(f'{k}: {v}' for k, v in sorted(names.items()))}")
    return out


def read_seedbench(path: Path, root: Path, image_dir: Path, dimensions: list[str | int] | None = None
                   ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(records of the image questions, in file order; layout stats) of one SEED-Bench JSON file."""
    try:
        data = json.loads(read_text_utf8(path))
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise ScenarioError(f"{path}: expected an object with a 'questions' list (SEED-Bench's release file)")
    types = data.get("question_type") or {}
    if not isinstance(types, dict):
        raise ScenarioError(f"{path}: field 'question_type': expected an object of dimension name → id")
    names = {v: str(k) for k, v in types.items() if isinstance(v, int)}
    keep = _dimension_filter(dimensions, names, path)
    records: list[dict[str, Any]] = []
    stats = {"questions": len(data["questions"]), "video_questions": 0, "other_dimensions": 0}
    for n, q in enumerate(data["questions"]):
        where = f"{path}: question {n}"
        if _field(q, "data_type", where) != "image":
            stats["video_questions"] += 1
            continue
        if keep is not None and q.get("question_type_id") not in keep:
            stats["other_dimensions"] += 1
            continue
        records.append(seedbench_record(q, where, names, image_dir, root))
    if not records:
        raise ScenarioError(f"{path}: no image question to ask ({stats['video_questions']} video questions, "
                            f"{stats['other_dimensions']} of other dimensions)")
    return records, stats


def load_seedbench(root: Path | None, *, split: str = "test", file: str | None = None,
                   metric: str | None = None, task_type: str | None = None,
                   params: dict[str, Any] | None = None) -> SEEDBenchScenario:
    """``SEED-Bench`` over its release under ``root`` (module docstring)."""
    if root is None:
        raise ScenarioError("scenario 'SEED-Bench': pass --root, the folder holding SEED-Bench.json and "
                            "SEED-Bench-image/")
    try:
        cfg = config_from_dict(SEEDBenchConfig, dict(params or {}), "scenario 'SEED-Bench': scenario.params")
    except ConfigError as e:
        raise ScenarioError(str(e)) from None
    root = Path(root)
    path = Path(file) if file is not None and Path(file).is_absolute() else root / (file or DEFAULT_FILE)
    if not path.is_file():
        raise MissingDataError(f"scenario 'SEED-Bench': file {path} not found (SEED-Bench's release: "
                               "SEED-Bench.json beside SEED-Bench-image/)")
    image_dir = root / cfg.image_dir
    if not image_dir.is_dir():
        raise MissingDataError(f"scenario 'SEED-Bench': image folder {image_dir} not found; set "
                               "scenario.params.image_dir")
    records, stats = read_seedbench(path, root, image_dir, cfg.dimensions)
    family, tt = metric or "multiple_choice", task_type or "VQA"
    return SEEDBenchScenario(name="SEED-Bench", metric=family, task_type=tt, modality="image", source=str(path),
                             root=root, records=records, build=make_builder(family, tt, root, str(path), None),
                             chance=100.0 / len(CHOICE_KEYS), layout_stats=stats)


SCENARIOS.add("SEED-Bench", ScenarioSpec(
    name="SEED-Bench", metric="multiple_choice", task_type="VQA", modality="image", load=load_seedbench,
    splits=("test",), description="SEED-Bench v1 image questions (SEED-Bench.json + SEED-Bench-image/)",
    suite="seedbench"))
