"""``lamm data build | convert | stats``: attached to the ``data`` group by :func:`register`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, err_console, user_errors


def register(data_app: typer.Typer) -> None:
    """Add ``build``, ``convert`` and ``stats`` to the ``lamm data`` group."""
    data_app.command("build")(build)
    data_app.command("convert")(convert)
    data_app.command("stats")(stats)


def build(
    config: Annotated[Path, typer.Argument(help="BuildConfig YAML, e.g. configs/data/synthetic.yaml.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Dotted overrides, e.g. paths.synthetic=runs/synth out_dir=runs/data seed=1"),
    ] = None,
) -> None:
    """Build instruction data: sources → C4 builders / C1–C3 generators → filter, dedup, split → LAMM JSON.

    Writes {split}.json, stats.json, DATASET_CARD.md and build_report.json under out_dir. A killed build
    with generation jobs resumes where it stopped when run again.
    """
    from rich.progress import Progress

    from lamm.data.build import BuildError, describe_result, load_build_config
    from lamm.data.build import build as run_build
    from lamm.data.builders import BuilderError, TemplateError
    from lamm.data.generate import GenerationError, PromptPackError
    from lamm.data.sources import SourceError

    with user_errors(
        SourceError, BuilderError, TemplateError, PromptPackError, BuildError, GenerationError, ValueError
    ):
        cfg = load_build_config(config, overrides or [])
        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            result = run_build(cfg, progress=progress)
    console.print(describe_result(result), markup=False, highlight=False)  # paths may hold "[...]"


def convert(
    src: Annotated[Path, typer.Argument(help="Input file (JSON array or JSONL).")],
    dst: Annotated[Path, typer.Argument(help="Output file (.jsonl for JSONL, else a JSON array).")],
    to: Annotated[
        str | None, typer.Option("--to", help="Target format: lamm | llava | pointllm | sharegpt.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="Source format: lamm | llava | pointllm | sharegpt.")
    ] = None,
    pcl_template: Annotated[
        str | None, typer.Option(help="From PointLLM: cloud path of an object_id.")
    ] = None,
    task_type: Annotated[
        str | None, typer.Option(help="From LLaVA / ShareGPT: task type when a record has none.")
    ] = None,
    skip_other_modality: Annotated[
        bool, typer.Option(help="To LLaVA / PointLLM: leave out the point-cloud / image records (a mixed "
                                "2D + 3D file) instead of stopping at the first; the count is printed.")
    ] = False,
) -> None:
    """Convert between LAMM and LLaVA / PointLLM / ShareGPT (--to FORMAT from LAMM, --from FORMAT to LAMM)."""
    from rich.markup import escape

    from lamm.data.convert import ConvertError, convert_file

    if to is None and from_ is None:
        err_console.print(
            "[bold red]error:[/] give --to FORMAT (from LAMM) or --from FORMAT (to LAMM), or both"
        )
        raise typer.Exit(2)
    with user_errors(ConvertError):
        n, n_in = convert_file(
            src, dst, from_ or "lamm", to or "lamm", pcl_template=pcl_template, default_task_type=task_type,
            skip_other_modality=skip_other_modality,
        )
    left_out = f"; {n_in - n} records of the other modality left out" if n_in != n else ""
    console.print(f"wrote {n} records ({from_ or 'lamm'} → {to or 'lamm'}) to [bold]{escape(str(dst))}[/]"
                  f"{left_out}")


def stats(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="LAMM instruction files; each is a split named by its stem (by its relative path when "
            "stems collide)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
    card: Annotated[Path | None, typer.Option(help="Also write a markdown dataset card here.")] = None,
) -> None:
    """Counts per task / source / builder / split, length histograms and template usage."""
    from rich.table import Table

    from lamm.data.stats import dataset_card, split_names, stats_for_files
    from lamm.fileio import write_text_atomic

    with user_errors():
        st = stats_for_files(list(files))
    if card is not None:
        names = split_names(list(files))
        write_text_atomic(
            card,
            dataset_card(
                st, name=", ".join(f.name for f in files), files={n: str(f) for n, f in zip(names, files)}
            ),
        )
    if as_json:
        typer.echo(json.dumps(st, indent=1))
        return
    for key in ("task_type", "src_dataset", "builder"):
        table = Table(title=key)
        table.add_column(key)
        for s in st["splits"]:
            table.add_column(s, justify="right")
        table.add_column("total", justify="right")
        for name, n in st["total"][key].items():
            table.add_row(name, *[str(st["splits"][s][key].get(name, 0)) for s in st["splits"]], str(n))
        console.print(table)
    console.print(
        f"records: {st['total']['records']}, media: {st['total']['media']}; answer words: "
        + ", ".join(f"{k}: {v}" for k, v in st["total"]["answer_words"].items()),
        highlight=False,
    )
