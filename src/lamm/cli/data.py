"""``lamm data``: synthesize, validate (and, as they land, build, convert, stats)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from lamm.cli.common import console, user_errors

app = typer.Typer(no_args_is_help=True)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="LAMM instruction or benchmark files (JSON array or JSONL).")],
    root: Annotated[Optional[Path], typer.Option(help="Vision root that image/pcl paths are relative to (default: each file's folder).")] = None,
    kind: Annotated[str, typer.Option(help="instruction | benchmark | auto")] = "auto",
    no_media: Annotated[bool, typer.Option("--no-media", help="Do not open images / point clouds.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable report.")] = False,
    max_problems: Annotated[int, typer.Option(help="Problems printed per file (all are in --json).")] = 50,
) -> None:
    """Validate LAMM files: every problem with file, record, id and field. Exit 1 if any record is invalid."""
    from rich.table import Table

    from lamm.data.records import validate_file

    reports = []
    with user_errors():
        for f in files:
            reports.append(validate_file(f, root=root, kind=kind, check_media=not no_media))
    if as_json:
        typer.echo(json.dumps({"ok": all(r.ok for r in reports), "files": [r.to_json() for r in reports]}, indent=1))
    else:
        table = Table(title="lamm data validate")
        table.add_column("file", overflow="fold")
        for col in ("kind", "records", "invalid", "warnings", "task types / modality"):
            table.add_column(col, overflow="fold")
        for r in reports:
            types = ", ".join(f"{k}:{v}" for k, v in sorted((r.task_types or r.modalities).items()))
            table.add_row(r.file, r.kind, str(r.n_records), str(r.n_invalid), str(r.n_warnings), types)
        console.print(table)
        for r in reports:
            for p in r.problems[:max_problems]:
                style = "red" if p.severity == "error" else "yellow"
                # messages quote boxes and paths ("[x1, y1, x2, y2]", "[/img]"): never read them as markup
                console.print(str(p), style=style, markup=False, highlight=False)
            if len(r.problems) > max_problems:
                more = len(r.problems) - max_problems
                console.print(f"... {more} more problems in {r.file} (use --json for all)", markup=False,
                              highlight=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output directory (the vision / benchmark root).")],
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives byte-identical files.")] = 0,
    config: Annotated[Optional[Path], typer.Option(help="SynthConfig YAML (see configs/data/synth.yaml).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides, e.g. image_size=96 n_train_2d=100")] = None,
) -> None:
    """Write synthetic 2D images and 3D point clouds with exact annotations and LAMM benchmark files."""
    from rich.markup import escape
    from rich.progress import Progress

    from lamm.config import load_config
    from lamm.data.synthetic import SynthConfig, synthesize

    with user_errors():
        cfg = load_config(SynthConfig, config, [f"seed={seed}", *(overrides or [])])
    with Progress(console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        stats = synthesize(out, cfg, progress=progress)
    cfg.dump(Path(out) / "synth_config.yaml")
    console.print(f"wrote synthetic data to [bold]{escape(str(out))}[/]")
    console.print_json(json.dumps(stats))


def _register_build_commands() -> None:
    # build / convert / stats live in their own module (dataset construction)
    from lamm.cli import data_build, data_pope

    data_build.register(app)
    data_pope.register(app)


_register_build_commands()
