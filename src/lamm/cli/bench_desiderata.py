"""``lamm bench desiderata | desiderata-report``: ChEF's six desiderata on one model, and overlays of several.

``lamm.cli.bench`` calls :func:`register` with its typer app. Examples::

    lamm data synth --out runs/synthetic
    lamm bench desiderata --model lamm:runs/tiny/checkpoints/step-00000900 --root runs/synthetic --out runs/des/tiny
    lamm bench desiderata --model dummy --root runs/synthetic --config synthetic --limit 50 \\
        --judge openai:qwen2.5-72b@http://127.0.0.1:8000/v1 --out runs/des/dummy
    lamm bench desiderata-report runs/des/tiny runs/des/dummy --out runs/des/compare

Every run goes to ``OUT/<desideratum>/<run>/`` and shares the answer cache ``OUT/cache.sqlite``: a killed
command resumes, and a rerun asks the model nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lamm.cli.common import console, err_console, user_errors


def _errors():
    from lamm.bench.judge import JudgeUnavailableError
    from lamm.bench.judge_prompts import JudgeError
    from lamm.bench.scenarios import ScenarioError

    return user_errors(ScenarioError, JudgeError, JudgeUnavailableError, ValueError)


def _table(summary: dict[str, Any], title: str) -> Any:
    from rich.table import Table

    from lamm.bench.desiderata.radar import AXES, AXIS_LABELS

    table = Table(title=title)
    for col in ("desideratum", "radar (0–100)", "raw figure", "runs", "status"):
        table.add_column(col, justify="right" if col == "radar (0–100)" else "left", overflow="fold")
    for a in AXES:
        ax = summary["axes"][a]
        runs = summary["runs"].get(a, [])
        done = sum(r["status"] == "ok" for r in runs)
        raw = f"{ax['raw_name']} = {ax['raw']:.2f}" if ax["raw"] is not None else "–"
        table.add_row(AXIS_LABELS[a], "n/a" if ax["value"] is None else f"{ax['value']:.1f}", raw,
                      f"{done}/{len(runs)}", ax["status"])
    return table


def _print_summary(summary: dict[str, Any], title: str) -> None:
    """The rich table, then one line per axis without a value saying why (too long for a table cell)."""
    from lamm.bench.desiderata.radar import AXES, AXIS_LABELS

    console.print(_table(summary, title))
    for a in AXES:
        ax = summary["axes"][a]
        if ax["value"] is None:
            console.print(f"[yellow]{AXIS_LABELS[a]}: n/a[/] — {ax['reason']}", highlight=False)


def desiderata(
    model: Annotated[str, typer.Option(help="Model spec: lamm:DIR, hf:ID, openai:MODEL@URL, vllm:ID or dummy.")],
    root: Annotated[Path, typer.Option(help="Benchmark root: the output of `lamm data synth` for the synthetic configs.")],
    out: Annotated[Path, typer.Option(help="Output folder: one run folder per desideratum and variant, the cache, "
                                          "desiderata.json / .md / .html and radar.svg.")],
    config: Annotated[str | None, typer.Option(help="Desiderata config: a name in configs/bench/desiderata "
                                                    "(synthetic: 2D + 3D) or a YAML file. Default: the built-in "
                                                    "2D-only synthetic config.")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge engine for language performance (openai:MODEL@URL, hf:ID, "
                                                   "dummy:constant=TEXT); without it that axis is not run.")] = None,
    judge_option: Annotated[list[str] | None, typer.Option("--judge-option", help="Judge engine option KEY=VALUE "
                                                                                  "(repeatable), e.g. concurrency=16.")] = None,
    limit: Annotated[int | None, typer.Option(help="Seeded subset of N records per run (default: the config's, else all).")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="List runs whose data is not under --root as "
                                                                      "not run instead of stopping.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted config overrides, e.g. icl.shots=[1] "
                                                               "robustness.severity=5")] = None,
) -> None:
    """Run the six ChEF desiderata (calibration, ICL, instruction following, language, robustness,
    hallucination) on one model: a radar chart, a table and a self-contained HTML page."""
    from lamm.bench.desiderata.suite import load_desiderata_config, run_desiderata
    from lamm.cli.chat import parse_engine_options

    with _errors():
        if limit is not None and limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        if not root.is_dir():
            raise FileNotFoundError(f"--root {root}: no such folder; make one with `lamm data synth --out {root}`")
        cfg = load_desiderata_config(config, overrides or [])
        res = run_desiderata(cfg, model, root, out, limit=limit, judge=judge, judge_options=parse_engine_options(judge_option),
                             skip_missing=skip_missing, show_progress=progress)
    s = res.summary
    _print_summary(s, f"lamm bench desiderata — {s['model']} (config {cfg.name})")
    console.print(f"answers: generated {res.n_generated}, from cache {res.n_cached}"
                  + (f"; judge: asked {res.judge_asked}, from cache {res.judge_cached}" if judge else "")
                  + f"\nwrote {res.paths['json']}, {res.paths['markdown'].name}, {res.paths['radar'].name}, "
                  f"{res.paths['html'].name}", highlight=False)
    failed = [(name, j) for name, j in s["axes"]["language"]["detail"].items()
              if j.get("n") and j["failures"] / j["n"] > cfg.language.max_failed]
    for name, j in failed:
        err_console.print(f"[bold red]error:[/] language/{name}: {j['failures']} of {j['n']} judgements failed (more "
                          f"than language.max_failed {cfg.language.max_failed:g}); see its judge.md", highlight=False)
    if failed:
        raise typer.Exit(1)


def desiderata_report(
    outs: Annotated[list[Path], typer.Argument(help="Output folders of `lamm bench desiderata` (one per model).")],
    out: Annotated[Path, typer.Option(help="Where to write radar.svg, desiderata.md and desiderata.html.")],
) -> None:
    """Overlay finished desiderata runs of several models: one radar chart, a table and an HTML page."""
    from lamm.bench.desiderata.radar import load_summaries, write_desiderata_report

    with _errors():
        paths = write_desiderata_report(list(outs), out)
        entries = load_summaries(list(outs))
    for s, _ in entries:
        _print_summary(s, s["model"])
    console.print(f"wrote {paths['radar']}, {paths['markdown'].name}, {paths['html'].name}", highlight=False)


def register(bench_app: typer.Typer) -> None:
    """Add ``desiderata`` and ``desiderata-report`` to the ``lamm bench`` group."""
    bench_app.command("desiderata")(desiderata)
    bench_app.command("desiderata-report")(desiderata_report)
