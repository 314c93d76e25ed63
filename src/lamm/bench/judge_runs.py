"""The LLM judge on finished benchmark runs: ``lamm bench judge RUN`` and ``lamm bench compare RUN_A RUN_B``.

A run directory (``lamm bench run``) holds ``answers.jsonl`` (per record: ``id``, ``record_index``,
``question``, ``answer``, ...), ``results.json`` (``family``, ``model``, ...) and ``recipe.yaml``. The answers
do not carry the ground truth, so the scenario is reloaded from the run's recipe under ``root`` and each
row is checked against its record (same index, same id) before :func:`~lamm.bench.judge_prompts.reference_text`
turns the record into the judge's reference.

Answers the engine refused because their prompt did not fit the model's context (empty, with
``extra.error = "context_length_exceeded"``; ``lamm.bench.inferencers``) are not sent to the judge: there is
no answer to grade. They are listed in ``context_refused`` (``judge``) or ``context_refused_a`` /
``context_refused_b`` (``compare``: a sample refused in either run is not compared) and counted in the
reports; the benchmark's own scores already count them as wrong.

Outputs (atomic writes): ``judge.json`` + ``judge.md``, ``compare.json`` + ``compare.md``. They hold no
timings and no cache statistics, so the same judge replies always give the same bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamm.bench.judge import (
    Judge,
    PairItem,
    SingleItem,
    compare_answers,
    grade_answers,
    judgement_rows,
    summarize_pairs,
    summarize_scores,
)
from lamm.bench.judge_prompts import JudgeError, answer_text, get_prompt, reference_text
from lamm.bench.scenarios.base import stable_hash
from lamm.fileio import read_json_or_jsonl, write_json_atomic, write_text_atomic

_ROW_FIELDS = ("id", "record_index", "question", "answer")


def context_refused(row: dict[str, Any]) -> bool:
    """Whether a row of ``answers.jsonl`` (or one of its parts) was refused for the model's context."""
    from lamm.bench.inferencers import is_refused

    extra = row.get("extra")
    return is_refused(extra) or (isinstance(extra, dict) and any(is_refused(v) for v in extra.values()))


@dataclass
class BenchRun:
    """A finished run: its directory, ``results.json``, resolved recipe and ``answers.jsonl`` rows by id."""

    dir: Path
    results: dict[str, Any]
    recipe: Any  # lamm.bench.recipe.Recipe
    rows: dict[str, dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.results.get('model', '?')} / {self.results.get('recipe', self.dir.name)}"


def load_run(run_dir: str | os.PathLike) -> BenchRun:
    """Read a run directory; errors name the file, the line and the field, and say what to do."""
    import json

    from lamm.bench.recipe import load_recipe

    d = Path(run_dir)
    if not d.is_dir():
        raise JudgeError(f"{d}: not a directory; give the output directory of `lamm bench run`")
    for name in ("answers.jsonl", "results.json", "recipe.yaml"):
        if not (d / name).is_file():
            raise JudgeError(f"{d}: no {name}; is this a finished `lamm bench run` directory? (rerun it to finish)")
    try:
        results = json.loads((d / "results.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise JudgeError(f"{d / 'results.json'}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(results, dict) or not results.get("family"):
        raise JudgeError(f"{d / 'results.json'}: field 'family': missing; is this a `lamm bench run` result?")
    rows: dict[str, dict[str, Any]] = {}
    for n, row in enumerate(read_json_or_jsonl(d / "answers.jsonl"), start=1):
        missing = [f for f in _ROW_FIELDS if not isinstance(row, dict) or f not in row]
        if missing:
            raise JudgeError(f"{d / 'answers.jsonl'}: line {n}: field {missing[0]!r}: missing; the file is not "
                             "a `lamm bench run` output or is damaged (rerun the benchmark)")
        sid = str(row["id"])
        if sid in rows:
            raise JudgeError(f"{d / 'answers.jsonl'}: line {n}: id {sid!r} appears twice")
        rows[sid] = row
    return BenchRun(d, results, load_recipe(d / "recipe.yaml"), rows)


def select_ids(ids: list[str], limit: int | None, seed: int = 0) -> list[str]:
    """A seeded subset of ``limit`` ids in their original order (nested: a larger limit keeps the smaller)."""
    if limit is None or limit >= len(ids):
        return list(ids)
    if limit < 0:
        raise JudgeError(f"--limit must be >= 0, got {limit}")
    keep = set(sorted(ids, key=lambda i: (stable_hash(seed, "judge", i), i))[:limit])
    return [i for i in ids if i in keep]


def references(run: BenchRun, ids: list[str], root: str | os.PathLike | None) -> dict[str, str]:
    """The reference text of each of ``ids`` from the run's scenario, reloaded under ``root``."""
    from lamm.bench.scenarios import RecordScenario, load_scenario

    scenario = load_scenario(run.recipe.scenario, root)
    family = run.results["family"]
    out = {}
    for sid in ids:
        i = run.rows[sid]["record_index"]
        if not isinstance(i, int) or not 0 <= i < len(scenario.records):
            raise JudgeError(f"{run.dir / 'answers.jsonl'}: id {sid!r}: record_index {i!r} is not a record of "
                             f"{scenario.source} ({len(scenario.records)} records); pass the --root the run used")
        rid = scenario.record_id(i) if isinstance(scenario, RecordScenario) else str(scenario.records[i].get("id"))
        if rid != sid:
            raise JudgeError(f"{run.dir / 'answers.jsonl'}: id {sid!r}: record {i} of {scenario.source} has id "
                             f"{rid!r}; the data under --root is not the data the run answered")
        try:
            out[sid] = reference_text(scenario.records[i], family)
        except JudgeError as e:
            raise JudgeError(f"{scenario.source}: record {i}: {e}") from None
    return out


def _base(judge: Judge, prompt_id: str, kind: str, seed: int, limit: int | None) -> dict[str, Any]:
    prompt = get_prompt(prompt_id, kind)
    return {"judge": judge.spec, "judge_fingerprint": judge.fingerprint, "prompt_id": prompt.id,
            "prompt_sha256": prompt.sha256, "max_new_tokens": judge.max_new_tokens, "limit": limit, "seed": seed}


def judge_run(run_dir: str | os.PathLike, judge: Judge, *, root: str | os.PathLike | None = None,
              limit: int | None = None, seed: int = 0, prompt_id: str = "single-v1",
              out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Grade every answer of a run 0–10 (or a seeded subset of ``limit``); write ``judge.json`` / ``judge.md``
    to ``out_dir`` when given. Returns the ``judge.json`` content."""
    run = load_run(run_dir)
    ids = select_ids(list(run.rows), limit, seed)
    refused = [i for i in ids if context_refused(run.rows[i])]
    ids = [i for i in ids if i not in set(refused)]
    refs = references(run, ids, root)
    items = [SingleItem(i, answer_text(run.rows[i]["question"]), refs[i], answer_text(run.rows[i]["answer"]))
             for i in ids]
    judgements = grade_answers(judge, items, prompt_id)
    result = {"kind": "single", "run": str(run.dir), "recipe": run.results.get("recipe"),
              "scenario": run.results.get("scenario"), "family": run.results["family"],
              "model": run.results.get("model"), **_base(judge, prompt_id, "single", seed, limit),
              "n_answers": len(run.rows), "context_refused": refused, **summarize_scores(judgements, seed=seed),
              "per_sample": judgement_rows(judgements)}
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "judge.json", result)
        write_text_atomic(Path(out_dir) / "judge.md", judge_markdown(result))
    return result


def _same_scenario(a: BenchRun, b: BenchRun) -> None:
    sa = a.recipe.scenario.model_dump(mode="json", exclude={"root"})
    sb = b.recipe.scenario.model_dump(mode="json", exclude={"root"})
    diff = [f"{k}: {sa.get(k)!r} vs {sb.get(k)!r}" for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
    if a.results["family"] != b.results["family"]:
        diff.append(f"metric family: {a.results['family']!r} vs {b.results['family']!r}")
    if diff:
        raise JudgeError(f"{a.dir} and {b.dir} ran different scenarios ({'; '.join(diff)}); a pairwise comparison "
                         "needs the same questions")


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, judge: Judge, *,
                 root: str | os.PathLike | None = None, limit: int | None = None, seed: int = 0,
                 prompt_id: str = "pairwise-v1", out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Pairwise comparison of two runs of the same scenario over the samples both answered (both orders).

    Samples present in only one run are listed, not judged. Writes ``compare.json`` / ``compare.md`` to
    ``out_dir`` when given; returns the ``compare.json`` content (see :func:`~lamm.bench.judge.summarize_pairs`).
    """
    a, b = load_run(run_a), load_run(run_b)
    _same_scenario(a, b)
    common = [i for i in a.rows if i in b.rows]
    only_a = [i for i in a.rows if i not in b.rows]
    only_b = [i for i in b.rows if i not in a.rows]
    if not common:
        raise JudgeError(f"{a.dir} and {b.dir} share no answered sample; nothing to compare")
    for i in common:
        if a.rows[i]["question"] != b.rows[i]["question"]:
            raise JudgeError(f"sample {i!r}: the two runs asked different questions ({a.dir}, {b.dir}); were they "
                             "run on different data?")
    ids = select_ids(common, limit, seed)
    refused_a = [i for i in ids if context_refused(a.rows[i])]
    refused_b = [i for i in ids if context_refused(b.rows[i])]
    ids = [i for i in ids if i not in set(refused_a) | set(refused_b)]
    refs = references(a, ids, root)
    items = [PairItem(i, answer_text(a.rows[i]["question"]), refs[i], answer_text(a.rows[i]["answer"]),
                      answer_text(b.rows[i]["answer"])) for i in ids]
    judgements = compare_answers(judge, items, prompt_id)
    result = {"kind": "pairwise", "run_a": str(a.dir), "run_b": str(b.dir), "model_a": a.results.get("model"),
              "model_b": b.results.get("model"), "recipe_a": a.results.get("recipe"),
              "recipe_b": b.results.get("recipe"), "scenario": a.results.get("scenario"),
              "family": a.results["family"], **_base(judge, prompt_id, "pairwise", seed, limit),
              "n_common": len(common), "only_in_a": only_a, "only_in_b": only_b,
              "context_refused_a": refused_a, "context_refused_b": refused_b,
              **summarize_pairs(judgements, seed=seed), "per_sample": judgement_rows(judgements)}
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / "compare.json", result)
        write_text_atomic(Path(out_dir) / "compare.md", compare_markdown(result))
    return result


# ---------------------------------------------------------------------------------------- reports

def _f(v: Any, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _ci(pair: list | None) -> str:
    return f"[{_f(pair[0])}, {_f(pair[1])}]" if pair and None not in pair else "–"


def _md_escape(text: Any, n: int = 80) -> str:
    s = " ".join(str(text or "").split())
    return (s[:n] + "…" if len(s) > n else s).replace("|", "\\|")


def judge_markdown(r: dict[str, Any], n_failed_shown: int = 20) -> str:
    """``judge.md``: the mean score, its interval and counts, the failed judgements (up to ``n_failed_shown``)."""
    lines = [f"# LLM judge — {r['model']} on {r['recipe']}", "",
             (f"Judge `{r['judge']}`, prompt `{r['prompt_id']}` (sha256 `{r['prompt_sha256']}`), "
             f"seed {r['seed']}; run `{r['run']}`."), "",
             "| mean score (0–10) | 95% CI | judged | scored | failed (call / unparsable) |",
             "|---:|---:|---:|---:|---:|",
             (f"| {_f(r['mean_score'])} | {_ci(r['ci'])} | {r['n']} | {r['n_scored']} | {r['failures']} "
             f"({r['failure_kinds']['call']} / {r['failure_kinds']['unparsable']}) |"), ""]
    refused = r.get("context_refused") or []
    if refused:
        lines += [(f"Not judged: {len(refused)} answer(s) the model's context refused (no answer to grade; the "
                   "benchmark scores them as wrong): " + ", ".join(refused[:20]) + (" …" if len(refused) > 20 else "")),
                  ""]
    failed = [s for s in r["per_sample"] if s["score"] is None]
    if failed:
        lines += ["## Failed judgements (not scored)", "", "| id | reason |", "|---|---|"]
        lines += [f"| {s['id']} | {_md_escape(s['error'], 200)} |" for s in failed[:n_failed_shown]]
        if len(failed) > n_failed_shown:
            lines.append(f"| … | {len(failed) - n_failed_shown} more in judge.json |")
        lines.append("")
    return "\n".join(lines)


def compare_markdown(r: dict[str, Any], n_failed_shown: int = 20) -> str:
    """``compare.md``: win rates with intervals, outcome counts, position bias, samples in one run only."""
    pb = r["position_bias"]
    lines = [f"# Pairwise comparison — A: {r['model_a']} vs B: {r['model_b']} ({r['scenario']})", "",
             (f"A = `{r['run_a']}`, B = `{r['run_b']}`. Judge `{r['judge']}`, prompt `{r['prompt_id']}` "
             f"(sha256 `{r['prompt_sha256']}`), both orders asked, seed {r['seed']}."), "",
             "| statistic | value | 95% CI |", "|---|---:|---:|",
             f"| win rate of A, ties half (%) | {_f(r['win_rate'])} | {_ci(r['ci']['win_rate'])} |",
             f"| win rate of A, without ties (%) | {_f(r['win_rate_no_ties'])} | {_ci(r['ci']['win_rate_no_ties'])} |",
             f"| A wins / B wins / ties | {r['wins']} / {r['losses']} / {r['ties']} | |",
             (f"| failed (call / unparsable order replies) | {r['failures']} ({r['failure_kinds']['call']} / "
             f"{r['failure_kinds']['unparsable']}) | |"),
             f"| mean score A / B (0–10) | {_f(r['mean_score_a'])} / {_f(r['mean_score_b'])} | |",
             f"| judge preferred position 1 (%) | {_f(pb['first_position_rate'])} | |",
             f"| orders disagree (counted as ties) | {pb['inconsistent']} | |",
             f"| same position preferred in both orders: 1st / 2nd | {pb['first_both']} / {pb['second_both']} | |",
             "", (f"Samples judged: {r['n']} of {r['n_common']} answered by both runs; only in A: "
             f"{len(r['only_in_a'])}, only in B: {len(r['only_in_b'])}."), ""]
    for side in ("a", "b"):
        refused = r.get(f"context_refused_{side}") or []
        if refused:
            lines += [(f"Not compared: {len(refused)} sample(s) the model's context refused in {side.upper()}: "
                       + ", ".join(refused[:20]) + (" …" if len(refused) > 20 else "")), ""]
    for side in ("a", "b"):
        ids = r[f"only_in_{side}"]
        if ids:
            lines += [f"Only in {side.upper()}: " + ", ".join(ids[:20]) + (" …" if len(ids) > 20 else ""), ""]
    failed = [s for s in r["per_sample"] if s["outcome"] == "failed"]
    if failed:
        lines += ["## Failed judgements (not scored)", "", "| id | A first | B first |", "|---|---|---|"]
        lines += [f"| {s['id']} | {_md_escape(s['ab']['error'] or 'ok', 60)} | {_md_escape(s['ba']['error'] or 'ok', 60)} |"
                  for s in failed[:n_failed_shown]]
        lines.append("")
    return "\n".join(lines)
