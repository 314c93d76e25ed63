"""``lamm bench``: benchmark commands. Here ``score``: score a file of answers for one scenario (or a metric
family, circularly where the rows are rotations); the run commands register themselves below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, user_errors

app = typer.Typer(help="Benchmark: run recipes and suites, score answers, reports.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Benchmark: run recipes and suites, score answers, reports."""  # keeps ``bench`` a group of commands


def _fmt(v: object) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


@app.command()
def score(
    answers: Annotated[Path, typer.Option(help="JSONL: each line a benchmark record plus the model's 'answer'.")],
    scenario: Annotated[str | None, typer.Option(
        help="Scenario name, e.g. CIFAR10, ScienceQA, LSP, ScanNet, MME, POPE (lamm bench recipes "
             "--scenarios); 'generic' or none with --metric.")] = None,
    metric: Annotated[str | None, typer.Option(
        help="Metric family for a file of another benchmark (e.g. mme, multiple_choice, classification): "
             "the generic scenario.")] = None,
    circular: Annotated[bool | None, typer.Option(
        "--circular/--no-circular",
        help="Score rows as rotations of a circular run (grouped by circular_of + circular_rotation, or "
             "circular: {record, rotation}); default: when every row carries them.")] = None,
    root: Annotated[Path | None, typer.Option(help="Folder that 'image' paths are relative to (default: the answers file's folder); read only where a metric needs the image size.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print a JSON object: metric names, n, unparsed, ci (MME, or records with a category: "
                       "categories; circular: circular).")] = False,
    ci: Annotated[bool, typer.Option("--ci/--no-ci", help="Seeded 95% bootstrap intervals (1000 resamples; always the headline metric).")] = True,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    per_sample: Annotated[Path | None, typer.Option(help="Also write per-sample parsed predictions and scores (JSONL).")] = None,
) -> None:
    """Score answers with the scenario's metrics (unparsed answers are counted and scored as wrong)."""
    from lamm.bench.metrics import RecordError
    from lamm.bench.report import format_number
    from lamm.bench.scoring import ScoringError, score_file, summary
    from lamm.fileio import write_jsonl_atomic

    with user_errors(ScoringError, RecordError, ImportError):
        report = score_file(scenario, answers, root=root, ci=ci, seed=seed, metric=metric, circular=circular)
    if per_sample is not None:
        write_jsonl_atomic(per_sample, report.to_dict(per_sample=True)["per_sample"])
    if as_json:
        typer.echo(json.dumps(summary(report), ensure_ascii=False))
        return
    from rich.table import Table

    d = report.to_dict()
    circ = d["info"].get("circular") if d["headline"] == "circular_accuracy" else None
    kind = d["family"] + (", circular" if circ else "")
    table = Table(title=f"lamm bench score — {d['info'].get('scenario', scenario)} ({kind})")
    for col in ("metric", "value", "95% CI"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, value in d["metrics"].items():
        lo_hi = d["ci"].get(name)
        interval = f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else ""
        table.add_row(name + (" *" if name == d["headline"] else ""), _fmt(value), interval)
    console.print(table)
    cats = d["info"].get("categories") if d["family"] == "mme" else None
    if cats:
        sub = Table(title="MME subtasks (score = accuracy + acc+, 0–200)")
        sub.add_column("subtask", no_wrap=True)  # a cut name ("code_re…") would be useless
        for col in ("score", "95% CI", "accuracy", "acc+", "questions", "images", "unparsed"):
            sub.add_column(col, justify="right")
        for name, c in cats.items():
            lo_hi = c.get("score_ci")
            interval = f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else ""
            sub.add_row(name, format_number(c.get("score")), interval, format_number(c.get("accuracy")),
                        format_number(c.get("accuracy_plus")), str(c.get("questions")), str(c.get("images")),
                        str(c.get("unparsed")))
        console.print(sub)
    for key, title in (("categories", "category"), ("l2_categories", "l2 category")):
        per = d["info"].get(key) if d["family"] != "mme" else None
        if not isinstance(per, dict) or not per:  # multiple choice with categories (MMBench, SEED-Bench)
            continue
        sub = Table(title=f"{d['headline']} per {title}")
        sub.add_column(title, no_wrap=True)
        for col in (d["headline"], "95% CI", "questions", "unparsed"):
            sub.add_column(col, justify="right")
        for name, c in per.items():
            lo_hi = c.get(f"{d['headline']}_ci")
            sub.add_row(name, format_number(c.get(d["headline"])),
                        f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else "", str(c.get("questions")),
                        str(c.get("unparsed")))
        console.print(sub)
    n_what = "records" if circ else "n"
    chance = d["info"].get("chance")
    console.print(f"{n_what} = {d['n']}   unparsed = {d['unparsed']}"
                  + (f"   chance = {chance:.2f}" if chance else "")
                  + "   (* headline; percent unless the metric is a count, an error or a sum of scores)",
                  highlight=False)
    if circ:
        console.print(f"circular: {circ.get('records_all_correct')} of {circ.get('records')} records right in "
                      f"every rotation ({circ.get('rotations')} rotations); rotations right per record: "
                      + ", ".join(f"{k}: {v}" for k, v in (circ.get("rotations_correct") or {}).items()),
                      highlight=False)


def _register_run_commands() -> None:
    # run / suite / report / recipes live in their own module (the runner side of the benchmark)
    from lamm.cli import bench_desiderata, bench_judge, bench_runs

    bench_runs.register(app)
    bench_judge.register(app)  # judge / compare: the LLM judge on finished runs
    bench_desiderata.register(app)  # desiderata / desiderata-report: ChEF's six desiderata, radar chart


_register_run_commands()
