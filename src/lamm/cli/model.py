"""``lamm model``: init a preset, show a checkpoint's manifest and parameters, import LAMM deltas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from lamm.cli.common import console, user_errors

app = typer.Typer(no_args_is_help=True)


def _model_errors():  # type: ignore[no-untyped-def]
    from lamm.model.checkpoint import CheckpointError
    from lamm.model.import_lamm import DeltaImportError

    return user_errors(CheckpointError, DeltaImportError, ValueError)


@app.command()
def init(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write.")],
    preset: Annotated[str, typer.Option(help="Model preset: tiny | lamm7b.")] = "tiny",
    config: Annotated[Path | None, typer.Option(help="ModelConfig YAML instead of a preset (e.g. configs/model/tiny.yaml).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random init (LLM, projectors and encoders).")] = 0,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. llm_mode=lora lora.r=8")] = None,
) -> None:
    """Write a complete randomly initialised model (the tiny one is what tests and the quickstart train)."""
    import torch

    from lamm.config import load_config
    from lamm.model.checkpoint import save_checkpoint
    from lamm.model.config import ModelConfig, model_preset
    from lamm.model.mllm import MultimodalLM

    with _model_errors():
        cfg = load_config(ModelConfig, config, overrides) if config else model_preset(preset, overrides)
        encoders = {m: e.model_copy(update={"seed": seed}) if hasattr(e, "seed") else e for m, e in cfg.encoders.items()}
        cfg = cfg.model_copy(update={"seed": seed, "encoders": encoders})
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MultimodalLM.from_config(cfg)
        save_checkpoint(model, out, extra_manifest={"init": {"preset": None if config else preset, "seed": seed}})
    counts = model.parameter_counts()["all"]
    console.print(f"wrote [bold]{out}[/]: {counts['total']:,} parameters, {counts['trainable']:,} trainable")


@app.command()
def info(
    directory: Annotated[Path, typer.Argument(help="Checkpoint directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show a checkpoint's manifest and its parameter counts (total / trainable, per component)."""
    from lamm.model.checkpoint import read_manifest

    with _model_errors():
        manifest = read_manifest(directory)
    if as_json:
        typer.echo(json.dumps(manifest, indent=1))
        return
    try:
        summary, params = _info_tables(directory, manifest)
    except (KeyError, TypeError) as e:  # a damaged or hand-edited manifest: say which field, not a traceback
        from rich.markup import escape

        from lamm.cli.common import err_console

        msg = (f"{directory}/manifest.json: missing or malformed field {e}; the manifest is damaged "
               "(`lamm model info --json` shows it as it is)")
        err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False)
        raise typer.Exit(2) from None
    console.print(summary)
    console.print(params)


def _info_tables(directory: Path, manifest: dict) -> tuple[Any, Any]:
    """The summary and parameter tables of ``lamm model info``."""
    from rich.table import Table

    summary = Table(title=f"lamm model info {directory}", show_header=False)
    base = manifest["base_llm"]
    lora = manifest.get("lora")
    rows = [
        ("format", f"{manifest['format']} v{manifest['format_version']}"),
        ("created", manifest.get("created", "")),
        ("template", manifest["template"]),
        ("llm_mode", manifest["llm_mode"]),
        ("base LLM", f"{base['id']} ({base.get('model_type')}, {base.get('dtype')}; weights from {base['source']})"),
        ("base sha256", str(base.get("sha256"))),
        ("LoRA", f"r={lora['r']} alpha={lora['alpha']} dropout={lora['dropout']} on {lora['resolved_targets']}"
         if lora else "-"),
        ("tokenizer", f"{manifest['tokenizer']['source']} ({manifest['tokenizer']['size']} tokens)"),
        ("fingerprint", manifest.get("fingerprint", "")),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items())),
    ]
    for m, e in manifest["encoders"].items():
        frozen = ", frozen" if e["frozen"] else ""
        rows.append((f"encoder {m}", f"{e['type']} {e['id']} — {e['num_tokens']} tokens{frozen}"))
    for k, v in rows:
        summary.add_row(k, v)
    params = Table(title="parameters")
    for col in ("component", "total", "trainable"):
        params.add_column(col, justify="left" if col == "component" else "right")
    for comp, c in manifest["parameters"].items():
        params.add_row(comp, f"{c['total']:,}", f"{c['trainable']:,}", style="bold" if comp == "all" else None)
    return summary, params


@app.command("import-lamm")
def import_lamm(
    delta: Annotated[Path, typer.Argument(help="LAMM delta checkpoint (pytorch_model.pt: llama_proj + LoRA).")],
    base: Annotated[str, typer.Option(help="Base: a lamm checkpoint dir, or the HF LLM (path / hub id) it was trained on.")],
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write.")],
    modality: Annotated[str, typer.Option(help="Which projector llama_proj is: image | pcl.")] = "image",
    lora_alpha: Annotated[float, typer.Option(help="LoRA alpha (LAMM does not store it; its default is 32).")] = 32.0,
    config: Annotated[Path | None, typer.Option(help="ModelConfig YAML around an HF base (default: LAMM v1 layout).")] = None,
    clip: Annotated[str, typer.Option(help="CLIP ViT-L/14 path / hub id for the default LAMM v1 layout.")] = "openai/clip-vit-large-patch14",
) -> None:
    """Import an original LAMM delta into a checkpoint that records (and checks) its base model."""
    from lamm.config import load_config
    from lamm.model.config import ModelConfig
    from lamm.model.import_lamm import import_lamm_delta

    with _model_errors():
        cfg = load_config(ModelConfig, config) if config else None
        path = import_lamm_delta(delta, base, out, modality=modality, lora_alpha=lora_alpha, model_config=cfg, clip=clip)
    console.print(f"imported [bold]{delta}[/] onto {base} → [bold]{path}[/]")
