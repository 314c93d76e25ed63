"""Score model answers against LAMM-Benchmark records (the engine of ``lamm bench score``).

An answers file is JSONL (or a JSON array): each row is the scenario's benchmark record plus ``answer``
(for LSP keypoints a mapping joint name → text). Every problem is reported with the file, the record
(0-based, with its id, as the benchmark reader and the runner number them; plus the line in JSONL) and
the field. Images are opened only where a metric needs the image
size (LSP keypoints, Locating-LSP, pixel-coordinate Locating-FSC147): ``image`` is resolved against
``root`` and only the header is read; a row may also carry ``image_size: [w, h]`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamm.bench.metrics import METRICS, MetricReport, RecordError
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT
from lamm.bench.scenarios.catalog import get_scenario_info
from lamm.fileio import jsonl_lines, read_json_or_jsonl, read_text_utf8


class ScoringError(ValueError):
    """An answers file cannot be scored; the message names the file, line and field, and the fix."""


def _rid(row: Any) -> Any:
    return row.get("id") if isinstance(row, dict) else None


def read_answer_rows(path: str | os.PathLike) -> tuple[list[Any], list[str]]:
    """Rows of an answers file and, for each, where it is: ``"record 6 (id 'a')"`` in a JSON array,
    ``"line 7 (record 6, id 'a')"`` in JSONL. Records are numbered from 0 as everywhere else in lamm;
    lines from 1, as editors show them."""
    p = Path(path)
    rows = read_json_or_jsonl(p)
    text = read_text_utf8(p)
    if text.lstrip().startswith("["):
        return rows, [f"record {i} (id {_rid(row)!r})" for i, row in enumerate(rows)]
    lines = [n for n, line in jsonl_lines(text) if line.strip()]
    return rows, [f"line {n} (record {i}, id {_rid(row)!r})" for i, (n, row) in enumerate(zip(lines, rows))]


def split_answers(rows: Sequence[Any], where: Sequence[str], source: str) -> tuple[list[Any], list[dict]]:
    """``(answers, records)`` from rows of record + ``answer``; a row without ``answer`` is an error."""
    answers, records = [], []
    for row, loc in zip(rows, where):
        if not isinstance(row, dict):
            raise ScoringError(f"{source}: {loc}: expected a JSON object (a benchmark record plus 'answer'), "
                               f"got {type(row).__name__}")
        if "answer" not in row:
            raise ScoringError(f"{source}: {loc}: missing field 'answer' (each line is a benchmark record plus "
                               "the model's 'answer')")
        answers.append(row["answer"])
        records.append({k: v for k, v in row.items() if k != "answer"})
    return answers, records


def fill_image_sizes(family, records: list[dict], root: Path, where: Sequence[str], source: str) -> int:
    """Set ``image_size`` on the records whose metric needs it, reading image headers; returns files read."""
    from PIL import Image, UnidentifiedImageError

    cache: dict[Path, tuple[int, int]] = {}
    for rec, loc in zip(records, where):
        if "image_size" in rec or not family.needs_image_size(rec):
            continue
        rel = rec.get("image")
        if not isinstance(rel, str) or not rel:
            raise ScoringError(f"{source}: {loc}: field 'image': missing; the {family.name} metric needs the "
                               "image size (add 'image' or 'image_size': [w, h])")
        path = Path(rel) if Path(rel).is_absolute() else root / rel
        if path not in cache:
            try:
                with Image.open(path) as im:
                    cache[path] = im.size
            except FileNotFoundError:
                raise ScoringError(f"{source}: {loc}: field 'image': {path} does not exist; "
                                   "pass --root with the benchmark's image folder") from None
            except (UnidentifiedImageError, OSError) as e:
                raise ScoringError(f"{source}: {loc}: field 'image': cannot read {path} ({e})") from None
        rec["image_size"] = list(cache[path])
    return len(cache)


def score_records(
    scenario: str, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
    n_boot: int = DEFAULT_N_BOOT,
) -> MetricReport:
    """Score ``answers`` against ``records`` with the scenario's metric family; adds scenario and chance
    level to ``info``. Records needing an image size must already carry ``image_size``."""
    info = get_scenario_info(scenario)
    report = METRICS.get(info.metric).evaluate(list(answers), list(records), ci=ci, seed=seed, n_boot=n_boot)
    report.info = {"scenario": info.name, "chance": info.chance_level(records), **report.info}
    return report


def score_file(
    scenario: str, answers_path: str | os.PathLike, *, root: str | os.PathLike | None = None, ci: bool = True,
    seed: int = 0, n_boot: int = DEFAULT_N_BOOT,
) -> MetricReport:
    """Read an answers file, check it, fill image sizes where needed and score it.

    ``root``: the folder ``image`` paths are relative to (default: the answers file's folder).
    """
    info = get_scenario_info(scenario)
    family = METRICS.get(info.metric)
    source = str(answers_path)
    rows, where = read_answer_rows(answers_path)
    if not rows:
        raise ScoringError(f"{source}: no answers to score")
    answers, records = split_answers(rows, where, source)
    for i, rec in enumerate(records):
        for f in info.gt_fields:
            if f not in rec:
                raise ScoringError(f"{source}: {where[i]}: missing field {f!r} ({info.name} records carry "
                                   f"{', '.join(info.gt_fields)}); is this the right --scenario?")
    fill_image_sizes(family, records, Path(root) if root is not None else Path(answers_path).parent, where, source)
    try:
        return score_records(scenario, answers, records, ci=ci, seed=seed, n_boot=n_boot)
    except RecordError as e:
        raise ScoringError(f"{source}: {where[e.index]}: field {e.field!r}: {e.problem}") from None


def summary(report: MetricReport) -> dict[str, Any]:
    """The flat JSON of ``lamm bench score --json``: the metric names, ``n``, ``unparsed`` and ``ci``
    (metric → ``[low, high]``); nothing else, so the keys are predictable."""
    d = report.to_dict()
    out: dict[str, Any] = dict(d["metrics"])
    out.update({"n": d["n"], "unparsed": d["unparsed"], "ci": d["ci"]})
    return out
