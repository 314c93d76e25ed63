"""``lamm quickstart``: the whole loop on synthetic data, on the CPU (see ``lamm.quickstart``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from lamm.cli.common import console, user_errors


def quickstart(
    out: Annotated[Path, typer.Option(help="Output folder (re-running with the same settings resumes what is there; other settings are refused).")] = Path("runs/quickstart"),
    minutes: Annotated[Optional[float], typer.Option(help="Training budget; scales the number of steps (fixed steps per "
                                                       "minute). Default: QuickstartConfig.minutes.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of data, model and training; the same seed gives the same numbers.")] = 0,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides of QuickstartConfig, e.g. bench_limit=50")] = None,
) -> None:
    """Synthetic data → C4 instructions → train a tiny model from scratch → benchmark before/after → report."""
    from rich.table import Table

    from lamm.config import load_config
    from lamm.quickstart import QuickstartConfig, check_same_settings, run_quickstart
    from lamm.quickstart_report import target_rows

    with user_errors():
        budget = [f"minutes={minutes}"] if minutes is not None else []
        cfg = load_config(QuickstartConfig, None, [*budget, f"seed={seed}", *(overrides or [])])
        check_same_settings(cfg, out)
    res = run_quickstart(cfg, out, stage=lambda s: console.rule(f"[bold]{s}"))
    from lamm.quickstart import TARGETS

    table = Table(title="held-out synthetic test split")
    for col in ("task", "metric", "chance", "untrained", "trained", "target"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    fmt = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "–"
    for r in target_rows(res.untrained, res.trained, TARGETS):
        target = "" if r["target"] is None else (("[green]" if r["met"] else "[red]") + f"≥ {r['target']:.1f}")
        table.add_row(r["task"], str(r["metric"]), fmt(r["chance"]), fmt(r["untrained"]), fmt(r["trained"]), target)
    console.print(table)
    for name, path in res.paths.items():
        console.print(f"{name}: [bold]{path}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
