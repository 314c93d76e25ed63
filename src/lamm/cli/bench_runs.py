"""``lamm bench run | suite | report | recipes``: run recipes on a model, run suites, build leaderboards.

``lamm.cli.bench`` calls :func:`register` with its typer app. Examples::

    lamm bench run --model dummy --recipe cifar10 --root data/LAMM/2D_Benchmark --limit 50
    lamm bench run --model lamm:runs/tiny --recipe configs/bench/recipes/synth_vqa_ppl.yaml --root out/synth
    lamm bench suite synthetic --model lamm:runs/tiny --root out/synth --out runs/bench/tiny
    lamm bench report runs/bench/tiny runs/bench/other --out runs/bench/board
    lamm bench recipes

Data-parallel: ``torchrun --nproc-per-node 4 --no-python lamm bench run ...`` (rank 0 writes the outputs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, user_errors


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _errors():
    from lamm.bench.scenarios import ScenarioError

    return user_errors(ScenarioError, ValueError)


def run(
    model: Annotated[str, typer.Option(help="Model spec: lamm:DIR, hf:ID, openai:MODEL@URL, vllm:ID or dummy.")],
    recipe: Annotated[str, typer.Option(help="Recipe name (lamm bench recipes), YAML file, or scenario name.")],
    root: Annotated[Path | None, typer.Option(help="Benchmark root (LAMM-Benchmark folder or `lamm data synth` output).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/bench/<model>/<recipe>).")] = None,
    limit: Annotated[int | None, typer.Option(help="Score a seeded subset of N records.")] = None,
    cache: Annotated[Path | None, typer.Option(help="Response cache (default OUT/cache.sqlite); share it across runs to reuse answers.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted recipe overrides, e.g. inferencer.batch_size=16")] = None,
) -> None:
    """Run one recipe on a model: answers are cached as they come, so a killed run resumes where it stopped."""
    from lamm.bench.recipe import load_recipe
    from lamm.bench.runner import run_recipe

    with _errors():
        rec = load_recipe(recipe, overrides or [])
        out_dir = out or Path("runs") / "bench" / _slug(model) / rec.name
        outcome = run_recipe(rec, model, out_dir=out_dir, root=root, limit=limit, cache_path=cache,
                             show_progress=progress)
    if outcome is None:  # a non-zero rank of a data-parallel run
        return
    r = outcome.results
    if as_json:
        typer.echo(json.dumps(r, ensure_ascii=False))
        return
    ci = r["ci"].get(r["headline"])
    ci_s = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else ""
    score = "–" if r["score"] is None else f"{r['score']:.2f}"
    refused = r.get("context_refused") or 0
    console.print(f"[bold]{r['recipe']}[/] on {r['model']}: {r['headline']} = [bold]{score}[/]{ci_s}  "
                  f"(n={r['n']}, unparsed={r['unparsed']}, context_refused={refused}, "
                  f"generated={outcome.n_generated}, cached={outcome.n_cached})", highlight=False)
    if refused:
        console.print(f"[yellow]{refused} of {r['n_questions']} question(s) did not fit the model's context "
                      f"({r.get('context_length')} tokens) and were scored as wrong (answers.jsonl: "
                      "extra.error = context_length_exceeded)[/]", highlight=False)
    if outcome.n_stale:
        console.print(f"[yellow]{outcome.n_stale} cached answer(s) were for different question/media content "
                      "under the same sample ids and were regenerated (run_info.json: stale_regenerated)[/]",
                      highlight=False)
    console.print(f"wrote {outcome.out_dir}/results.json, answers.jsonl, report.md", highlight=False)


def suite(
    name: Annotated[str, typer.Argument(help="Suite: lamm2d, lamm3d, synthetic, or a suite YAML file.")],
    model: Annotated[str, typer.Option(help="Model spec (as for `lamm bench run`).")],
    root: Annotated[Path, typer.Option(help="Benchmark root for every recipe of the suite.")],
    out: Annotated[Path, typer.Option(help="Output directory: one run directory per recipe plus the leaderboard.")],
    limit: Annotated[int | None, typer.Option(help="Seeded subset of N records per recipe.")] = None,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Skip (and list) recipes whose data is not under --root.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Run every recipe of a suite on one model, then write leaderboard.md / leaderboard.html."""
    from lamm.bench.runner import run_suite

    with _errors():
        summary = run_suite(name, model, out_dir=out, root=root, limit=limit, skip_missing=skip_missing,
                            show_progress=progress)
    from rich.table import Table

    table = Table(title=f"lamm bench suite {summary['suite']} — {summary['model']}")
    for col in ("recipe", "metric", "score"):
        table.add_column(col, justify="right" if col == "score" else "left")
    for r in summary["runs"]:
        table.add_row(r["recipe"], r["headline"], "–" if r["score"] is None else f"{r['score']:.2f}")
    console.print(table)
    for s in summary["skipped"]:
        console.print(f"[yellow]skipped {s['recipe']}:[/] {s['reason']}", highlight=False)
    if "leaderboard" in summary:
        console.print(f"wrote {summary['leaderboard']['markdown']} and {summary['leaderboard']['html']}", highlight=False)


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (searched recursively for results.json).")],
    out: Annotated[Path | None, typer.Option(help="Where to write leaderboard.md/.html (default: the first directory).")] = None,
) -> None:
    """A leaderboard across models and tasks: Markdown and a self-contained HTML page with SVG charts."""
    from lamm.bench.report import write_leaderboard

    with _errors():
        paths = write_leaderboard(list(runs), out or (runs[0] if runs[0].is_dir() else runs[0].parent))
    console.print(Path(paths["markdown"]).read_text(encoding="utf-8"), highlight=False, markup=False)
    console.print(f"wrote {paths['markdown']} and {paths['html']}", highlight=False)


def recipes(
    scenarios: Annotated[bool, typer.Option("--scenarios", help="List scenarios instead of recipes.")] = False,
) -> None:
    """List the recipes found (name, scenario, inferencer, prompt, ICL, circular) or the scenarios."""
    from rich.table import Table

    from lamm.bench.recipe import list_recipes, load_recipe, recipe_summary
    from lamm.bench.scenarios import SCENARIOS, load_all

    if scenarios:
        load_all()
        table = Table(title="scenarios")
        # names never wrap or get cut ("synth_cl…" four times would be useless); long text columns fold
        table.add_column("name", no_wrap=True)
        for col in ("suite", "metric family", "task type", "splits", "data"):
            table.add_column(col, overflow="fold")
        for n in SCENARIOS.names():
            s = SCENARIOS.get(n)
            table.add_row(n, s.suite, s.metric or "(recipe)", s.task_type or "(recipe)", ",".join(s.splits) or "any",
                          s.description)
        console.print(table)
        return
    table = Table(title="recipes")
    table.add_column("name", no_wrap=True)
    for col in ("scenario", "split", "inferencer", "prompt", "icl", "circular"):
        table.add_column(col, overflow="fold")
    folders: list[str] = []
    with _errors():
        for name, path in list_recipes().items():
            s = recipe_summary(load_recipe(path))
            table.add_row(name, *(s[k] for k in ("scenario", "split", "inferencer", "prompt", "icl", "circular")))
            if str(Path(path).parent) not in folders:
                folders.append(str(Path(path).parent))
    console.print(table)
    console.print(f"recipe files (NAME.yaml): {', '.join(folders)}", highlight=False)
    console.print("A scenario name (lamm bench recipes --scenarios) also works as --recipe: its default recipe.")


def register(bench_app: typer.Typer) -> None:
    """Add ``run``, ``suite``, ``report`` and ``recipes`` to the ``lamm bench`` group."""
    bench_app.command("run")(run)
    bench_app.command("suite")(suite)
    bench_app.command("report")(report)
    bench_app.command("recipes")(recipes)
