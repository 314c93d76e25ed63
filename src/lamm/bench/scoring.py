"""Score model answers against benchmark records (the engine of ``lamm bench score``).

An answers file is JSONL (or a JSON array): each row is the scenario's benchmark record plus ``answer``
(for LSP keypoints a mapping joint name → text). Every problem is reported with the file, the record
(0-based, with its id, as the benchmark reader and the runner number them; plus the line in JSONL) and
the field. Images are opened only where a metric needs the image
size (LSP keypoints, Locating-LSP, pixel-coordinate Locating-FSC147): ``image`` is resolved against
``root`` and only the header is read; a row may also carry ``image_size: [w, h]`` itself.

What the rows are scored as (:func:`resolve_target`): a LAMM-Benchmark scenario of the catalog (its
family and ground-truth fields), any other registered scenario (``MME``, ``POPE``, ``Synth-*``: its
family, the fields the family needs), or ``generic`` with a metric family (``metric``: ``mme``,
``multiple_choice``, ...). Circular evaluation (MMBench, ``lamm.bench.circular``): rows that are the
*rotations* of multiple-choice records (each rotation's own ``gt_choices`` / ``gt_choice``) grouped by
``circular_of`` + ``circular_rotation`` (the fields a rotated record carries) or by ``circular: {record,
rotation}`` (as the runner writes them into ``answers.jsonl``) are scored by
``lamm.bench.metrics.circular.CircularFamily``: ``circular_accuracy`` over records, every rotation of a
record needed. ``circular_n`` defaults to the number of ``gt_choices``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamm.bench.metrics import METRICS, MetricFamily, MetricReport, RecordError
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT
from lamm.bench.scenarios.catalog import CATALOG, ScenarioInfo
from lamm.fileio import jsonl_lines, read_json_or_jsonl, read_text_utf8


class ScoringError(ValueError):
    """An answers file cannot be scored; the message names the file, line and field, and the fix."""


@dataclass(frozen=True)
class ScoringTarget:
    """What answers are scored as: the scenario's name, its metric family, the record fields it reads
    (checked on every row first) and, for a LAMM-Benchmark scenario, its catalog entry."""

    scenario: str
    family: str
    gt_fields: tuple[str, ...]
    info: ScenarioInfo | None = None


def resolve_target(scenario: str | None, metric: str | None = None) -> ScoringTarget:
    """The scenario + family answers are scored as (module docstring). ``scenario`` None or ``"generic"``
    needs ``metric``; with another scenario, ``metric`` may only repeat its family. Unknown names raise a
    ``KeyError`` with did-you-mean suggestions.

    >>> resolve_target("MME").family, resolve_target(None, "mme").scenario
    ('mme', 'generic')
    """
    fam = METRICS.get(metric) if metric is not None else None  # did-you-mean before anything else
    if scenario is None or scenario == "generic":
        if fam is None:
            raise ScoringError("give --scenario NAME (lamm bench recipes --scenarios lists them) or, for a "
                               "file of another benchmark, --metric FAMILY (e.g. mme, multiple_choice)")
        return ScoringTarget("generic", fam.name, tuple(fam.required_fields))
    if scenario in CATALOG:
        info: ScenarioInfo | None = CATALOG[scenario]
        family, fields = info.metric, info.gt_fields
    else:
        from lamm.bench.scenarios import get_scenario_spec

        spec = get_scenario_spec(scenario)  # KeyError naming close scenario names
        info = None
        if spec.metric is None:  # a scenario whose recipe names the family
            if fam is None:
                raise ScoringError(f"scenario {scenario!r} is scored by the family its recipe names; "
                                   "give it with --metric FAMILY")
            return ScoringTarget(scenario, fam.name, tuple(fam.required_fields))
        family, fields = spec.metric, tuple(METRICS.get(spec.metric).required_fields)
    if fam is not None and fam.name != family:
        raise ScoringError(f"scenario {scenario!r} is scored by the {family!r} metric family, not "
                           f"{fam.name!r}; drop --metric, or score the file as --scenario generic "
                           f"--metric {fam.name}")
    return ScoringTarget(scenario, family, fields, info)


def family_chance(family: str, records: Sequence[dict]) -> float | None:
    """Score of uniform guessing in the headline of ``family`` over ``records``, as the runner's scenarios
    give it: MME's fair-coin ``score``, 50 for POPE, the mean of 100 / options for multiple choice, 100 /
    the closed vocabulary's size (yes / no, the file's labels or hair colours); else ``None``.

    >>> family_chance("multiple_choice", [{"gt_choices": ["a", "b"]}, {"gt_choices": ["a", "b", "c", "d"]}])
    37.5
    """
    recs = [r for r in records if isinstance(r, dict)]
    if family == "mme":
        from lamm.bench.scenarios.mme import mme_chance

        return mme_chance(recs)
    if family == "pope":
        return 50.0
    if family == "multiple_choice":
        sizes = [len(c) for r in recs if isinstance(c := r.get("gt_choices"), list) and c]
        return 100.0 * sum(1.0 / k for k in sizes) / len(sizes) if sizes else None
    from lamm.bench.scenarios.lamm_files import vocabulary

    opts = vocabulary(family, recs)
    return 100.0 / len(opts) if opts else None


def _circular_info(rec: Any) -> tuple[Any, Any] | None:
    """``(record, rotation)`` of a row that says which rotation of which record it is, else None."""
    if not isinstance(rec, dict):
        return None
    if "circular_of" in rec and "circular_rotation" in rec:
        return rec["circular_of"], rec["circular_rotation"]
    c = rec.get("circular")
    if isinstance(c, dict) and "record" in c and "rotation" in c:
        return c["record"], c["rotation"]
    return None


def is_circular(records: Sequence[Any], where: Sequence[str], source: str) -> bool:
    """Whether rows are the rotations of a circular run: all carry their record and rotation (True), none
    does (False); a mix is a :class:`ScoringError` naming the first row without them."""
    tagged = [_circular_info(r) is not None for r in records]
    if all(tagged) and tagged:
        return True
    if not any(tagged):
        return False
    first = tagged.index(False)
    other = tagged.index(True)
    raise ScoringError(f"{source}: {where[first]}: no circular grouping ('circular_of' + "
                       f"'circular_rotation', or 'circular': {{record, rotation}}) while {where[other]} has "
                       "one; every rotation of a circular run carries it (or pass --no-circular to score "
                       "each rotation as a question)")


def circular_records(records: Sequence[dict], where: Sequence[str], source: str) -> list[dict]:
    """The rows with ``circular_of``, ``circular_rotation`` and ``circular_n`` (from ``circular`` when
    that is how they carry it; ``circular_n`` = the number of ``gt_choices`` unless given)."""
    out = []
    for rec, loc in zip(records, where):
        got = _circular_info(rec)
        if got is None:
            raise ScoringError(f"{source}: {loc}: field 'circular_of': missing; circular scoring needs each "
                               "row's record and rotation ('circular_of' + 'circular_rotation', or "
                               "'circular': {record, rotation} as in a circular run's answers.jsonl)")
        n = rec.get("circular_n")
        if n is None:
            choices = rec.get("gt_choices")
            if not isinstance(choices, list):
                raise ScoringError(f"{source}: {loc}: field 'gt_choices': expected the list of this "
                                   f"rotation's options, got {choices!r} (circular scoring counts the "
                                   "rotations from it)")
            n = len(choices)
        out.append({**rec, "circular_of": str(got[0]), "circular_rotation": got[1], "circular_n": n})
    return out


def scoring_family(target: ScoringTarget, circular: bool) -> MetricFamily:
    """The metric family of ``target``, wrapped in the circular family when ``circular`` (only for
    multiple choice, which it rotates)."""
    fam = METRICS.get(target.family)
    if not circular:
        return fam
    if target.family != "multiple_choice":
        raise ScoringError(f"scenario {target.scenario!r} is scored by {target.family!r}: circular scoring "
                           "groups the rotations of multiple-choice questions (scored by multiple_choice); "
                           "pass --no-circular, or score a multiple-choice scenario")
    from lamm.bench.metrics.circular import CircularFamily

    return CircularFamily(fam)


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
    scenario: str | None, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
    n_boot: int = DEFAULT_N_BOOT, metric: str | None = None, circular: bool = False,
) -> MetricReport:
    """Score ``answers`` against ``records`` with the family of ``scenario`` / ``metric``
    (:func:`resolve_target`), circularly when ``circular`` (the records are rotations: module docstring);
    adds scenario and chance level to ``info``. Records needing an image size must already carry
    ``image_size``."""
    target = resolve_target(scenario, metric)
    records = list(records)
    if circular:
        records = circular_records(records, [f"record {i}" for i in range(len(records))], "<records>")
    family = scoring_family(target, circular)
    report = family.evaluate(list(answers), records, ci=ci, seed=seed, n_boot=n_boot)
    if circular:
        from lamm.bench.circular import circular_chance

        # one entry per record (its rotation 0): the chance of the headline, and of rotation 0 alone
        originals = [r for r in records if r["circular_rotation"] == 0]
        chance = circular_chance(originals)
        report.info.setdefault("circular", {})["chance_accuracy"] = family_chance(target.family, originals)
    else:
        chance = target.info.chance_level(records) if target.info else family_chance(target.family, records)
    report.info = {"scenario": target.scenario, "chance": chance, **report.info}
    return report


def score_file(
    scenario: str | None, answers_path: str | os.PathLike, *, root: str | os.PathLike | None = None,
    ci: bool = True, seed: int = 0, n_boot: int = DEFAULT_N_BOOT, metric: str | None = None,
    circular: bool | None = None,
) -> MetricReport:
    """Read an answers file, check it, fill image sizes where needed and score it.

    ``scenario`` / ``metric``: what to score it as (:func:`resolve_target`); ``circular``: score the rows as
    rotations of a circular run (None: when every row carries its record and rotation, :func:`is_circular`).
    ``root``: the folder ``image`` paths are relative to (default: the answers file's folder).
    """
    target = resolve_target(scenario, metric)
    source = str(answers_path)
    rows, where = read_answer_rows(answers_path)
    if not rows:
        raise ScoringError(f"{source}: no answers to score")
    answers, records = split_answers(rows, where, source)
    for i, rec in enumerate(records):
        for f in target.gt_fields:
            if f not in rec:
                raise ScoringError(f"{source}: {where[i]}: missing field {f!r} ({target.scenario} records "
                                   f"carry {', '.join(target.gt_fields)}); is this the right --scenario?")
    if circular is None:
        circular = is_circular(records, where, source)
    family = scoring_family(target, circular)
    if circular:
        records = circular_records(records, where, source)
    fill_image_sizes(family, records, Path(root) if root is not None else Path(answers_path).parent, where, source)
    try:
        return score_records(target.scenario, answers, records, ci=ci, seed=seed, n_boot=n_boot,
                             metric=target.family, circular=circular)
    except RecordError as e:
        raise ScoringError(f"{source}: {where[e.index]}: field {e.field!r}: {e.problem}") from None


def summary(report: MetricReport) -> dict[str, Any]:
    """The flat JSON of ``lamm bench score --json``: the metric names, ``n``, ``unparsed`` and ``ci``
    (metric → ``[low, high]``); besides them only what a family's numbers cannot be read without, so the
    keys are predictable per family: ``categories`` (MME's per-subtask scores; a multiple-choice file's
    per-category accuracy, with ``l2_categories`` and ``uncategorized``, when its records carry a
    ``category``) and ``circular`` (a circular scoring's records, rotations and rotations right per record)."""
    d = report.to_dict()
    out: dict[str, Any] = dict(d["metrics"])
    out.update({"n": d["n"], "unparsed": d["unparsed"], "ci": d["ci"]})
    for key in ("categories", "l2_categories", "uncategorized", "circular"):
        # per-category scores are a mapping (detection's info["categories"] is its class list: left out)
        if key in d["info"] and (key not in ("categories", "l2_categories") or isinstance(d["info"][key], dict)):
            out[key] = d["info"][key]
    return out
