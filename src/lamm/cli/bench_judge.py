"""``lamm bench judge | compare``: an LLM judge on finished benchmark runs (language performance).

``lamm.cli.bench`` calls :func:`register` with its typer app. Examples::

    lamm bench judge runs/bench/tiny/flickr30k --judge openai:gpt-4o@https://api.openai.com/v1 --root data/LAMM
    lamm bench compare runs/bench/a/scienceqa runs/bench/b/scienceqa --judge openai:qwen@http://127.0.0.1:8000/v1 \\
        --root data/LAMM --judge-option concurrency=16

Judge replies are cached in ``OUT/cache.sqlite`` (``--cache`` to share one), so a rerun asks nothing again.
The command exits 1 (after writing its outputs) when more than ``--max-failed`` of the judgements failed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Annotated, Any, get_type_hints

import typer

from lamm.cli.chat import parse_engine_options
from lamm.cli.common import console, err_console, user_errors

_JUDGE = Annotated[str, typer.Option("--judge", help="Judge engine spec: openai:MODEL@URL, hf:ID, lamm:DIR, dummy:constant=TEXT.")]
_ROOT = Annotated[Path | None, typer.Option(help="Benchmark root the run(s) used: the ground truth is reloaded from there.")]
_LIMIT = Annotated[int | None, typer.Option(help="Judge a seeded subset of N samples.")]
_CACHE = Annotated[Path | None, typer.Option(help="Response cache for judge replies (default OUT/cache.sqlite).")]
_OPTS = Annotated[list[str] | None, typer.Option("--judge-option", help="Engine option KEY=VALUE (repeatable), e.g. max_retries=2, concurrency=16, timeout=60.")]
_TOKENS = Annotated[int, typer.Option(help="Most tokens of each judge reply.")]
_BATCH = Annotated[int, typer.Option(help="Judge requests per engine call.")]
_SEED = Annotated[int, typer.Option(help="Seed of the --limit subset and of the bootstrap intervals.")]
_MAXF = Annotated[float, typer.Option(help="Exit 1 when the share of failed judgements exceeds this (0–1).")]
_INAROW = Annotated[int, typer.Option(help="Stop (exit 2) after this many failed judge calls in a row; 0: never.")]
_PROGRESS = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def _errors():
    from lamm.bench.judge import JudgeUnavailableError
    from lamm.bench.judge_prompts import JudgeError
    from lamm.bench.scenarios import ScenarioError

    return user_errors(JudgeError, JudgeUnavailableError, ScenarioError, ValueError)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "run"


@dataclass(frozen=True)
class _JudgeOptions:
    """The options ``judge`` and ``compare`` share; :func:`_judge_command` turns each field into a CLI option."""

    judge_spec: _JUDGE
    root: _ROOT = None
    limit: _LIMIT = None
    out: Path | None = None  # annotated per command by _judge_command: the default output differs
    cache: _CACHE = None
    judge_option: _OPTS = None
    prompt: str = ""  # annotated and defaulted per command by _judge_command
    max_new_tokens: _TOKENS = 512
    batch_size: _BATCH = 16
    seed: _SEED = 0
    max_failed: _MAXF = 0.1
    max_consecutive_failures: _INAROW = 16
    progress: _PROGRESS = True


def _judge_command(out_help: str, prompt_default: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate ``fn(<run directory arguments>, opts: _JudgeOptions)`` into a typer command.

    The command's signature is ``fn``'s own arguments followed by one option per :class:`_JudgeOptions` field (in
    field order, so ``--help`` lists them as before); typer calls it with keyword arguments, which are split back
    into ``fn``'s arguments and one ``_JudgeOptions``. One declaration of the shared options, not two copies.
    """
    hints = get_type_hints(_JudgeOptions, include_extras=True)
    hints["out"] = Annotated[Path | None, typer.Option(help=out_help)]
    hints["prompt"] = Annotated[str, typer.Option(help="Judge prompt id (lamm.bench.judge_prompts.JUDGE_PROMPTS).")]
    defaults = {f.name: inspect.Parameter.empty if f.default is MISSING else f.default  # --judge is required
                for f in fields(_JudgeOptions)} | {"prompt": prompt_default}
    shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=hints[name], default=default)
              for name, default in defaults.items()]

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]

        def command(**kwargs: Any) -> None:
            fn(**{p.name: kwargs.pop(p.name) for p in own}, opts=_JudgeOptions(**kwargs))

        params = own + shared
        command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}  # typer resolves hints from here too
        command.__name__, command.__doc__ = fn.__name__, fn.__doc__
        return command

    return wrap


def _judged(opts: _JudgeOptions, run_dirs: list[Path], out_dir: Path, call):
    """Check the run directories, build the judge with its cache and a progress bar, run ``call(judge)``.

    Returns (result, judge). Bad run directories fail (exit 2) before any cache file is created.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lamm.bench.cache import ResponseCache
    from lamm.bench.judge import Judge
    from lamm.bench.judge_runs import load_run

    with _errors():
        for run_dir in run_dirs:
            load_run(run_dir)
        with ResponseCache(opts.cache or out_dir / "cache.sqlite") as cache, Progress(
                TextColumn("[bold]judge"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=err_console, disable=not opts.progress) as bar:
            task = bar.add_task("judge", total=None)
            judge = Judge(opts.judge_spec, cache=cache, max_new_tokens=opts.max_new_tokens, batch_size=opts.batch_size,
                          engine_options=parse_engine_options(opts.judge_option),
                          progress=lambda n: bar.advance(task, n), max_consecutive_failures=opts.max_consecutive_failures)
            try:
                return call(judge), judge
            finally:
                judge.engine.close()


def _check_failures(failures: int, n: int, max_failed: float) -> None:
    if n and failures / n > max_failed:
        err_console.print(f"[bold red]error:[/] {failures} of {n} judgements failed (more than --max-failed "
                          f"{max_failed:g}); see the failed judgements in the report", highlight=False)
        raise typer.Exit(1)


@_judge_command("Where to write judge.json / judge.md (default: RUN_DIR).", "single-v1")
def judge(run_dir: Annotated[Path, typer.Argument(help="A finished `lamm bench run` directory.")],
          opts: _JudgeOptions) -> None:
    """Grade a run's answers 0–10 with an LLM judge (helpfulness, relevance, accuracy, detail)."""
    from lamm.bench.judge_runs import judge_run

    out_dir = opts.out or run_dir
    r, j = _judged(opts, [run_dir], out_dir,
                   lambda jd: judge_run(run_dir, jd, root=opts.root, limit=opts.limit, seed=opts.seed,
                                        prompt_id=opts.prompt, out_dir=out_dir))
    from rich.table import Table

    table = Table(title=f"lamm bench judge — {r['model']} on {r['recipe']} (judge {r['judge']})")
    for col in ("mean score (0–10)", "95% CI", "judged", "scored", "failed (call / unparsable)"):
        table.add_column(col, justify="right")
    ci = r["ci"]
    table.add_row("–" if r["mean_score"] is None else f"{r['mean_score']:.2f}",
                  f"[{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else "–", str(r["n"]), str(r["n_scored"]),
                  f"{r['failures']} ({r['failure_kinds']['call']} / {r['failure_kinds']['unparsable']})")
    console.print(table)
    console.print(f"asked {j.n_asked}, from cache {j.n_cached}; wrote {out_dir}/judge.json, judge.md", highlight=False)
    _check_failures(r["failures"], r["n"], opts.max_failed)


@_judge_command("Where to write compare.json / compare.md (default: RUN_A/compare_vs_<B>).", "pairwise-v1")
def compare(run_a: Annotated[Path, typer.Argument(help="Run directory of model A.")],
            run_b: Annotated[Path, typer.Argument(help="Run directory of model B (same scenario).")],
            opts: _JudgeOptions) -> None:
    """Pairwise comparison of two runs by an LLM judge, asked in both orders: win rate of A over B."""
    from lamm.bench.judge_runs import compare_runs

    out_dir = opts.out or run_a / f"compare_vs_{_slug(str(run_b))}"
    r, j = _judged(opts, [run_a, run_b], out_dir,
                   lambda jd: compare_runs(run_a, run_b, jd, root=opts.root, limit=opts.limit, seed=opts.seed,
                                           prompt_id=opts.prompt, out_dir=out_dir))
    from rich.table import Table

    def ci(name: str) -> str:
        lo, hi = r["ci"][name]
        return f"[{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "–"

    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.2f}"

    table = Table(title=f"lamm bench compare — A: {r['model_a']} vs B: {r['model_b']} (judge {r['judge']})")
    for col in ("statistic", "value", "95% CI"):
        table.add_column(col, justify="left" if col == "statistic" else "right")
    pb = r["position_bias"]
    table.add_row("win rate of A, ties half (%)", f(r["win_rate"]), ci("win_rate"))
    table.add_row("win rate of A, without ties (%)", f(r["win_rate_no_ties"]), ci("win_rate_no_ties"))
    table.add_row("A wins / B wins / ties / failed", f"{r['wins']} / {r['losses']} / {r['ties']} / {r['failures']}", "")
    table.add_row("judge preferred position 1 (%)", f(pb["first_position_rate"]), "")
    console.print(table)
    console.print(f"judged {r['n']} of {r['n_common']} common samples (only in A: {len(r['only_in_a'])}, only in B: "
                  f"{len(r['only_in_b'])}); asked {j.n_asked}, from cache {j.n_cached}; wrote {out_dir}/compare.json, "
                  "compare.md", highlight=False)
    _check_failures(r["failures"], r["n"], opts.max_failed)


def register(bench_app: typer.Typer) -> None:
    """Add ``judge`` and ``compare`` to the ``lamm bench`` group."""
    bench_app.command("judge")(judge)
    bench_app.command("compare")(compare)
