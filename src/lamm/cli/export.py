"""``lamm export CKPT --out DIR``: merge LoRA into a Hugging Face-loadable LLM, plus projector and
encoder weights and a manifest; the merged logits are checked against the unmerged checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, user_errors


def export_command(
    checkpoint: Annotated[Path, typer.Argument(help="A lamm checkpoint directory (e.g. RUN/checkpoints/step-00001000).")],
    out: Annotated[Path, typer.Option("--out", help=(
        "Output directory: new, empty, or a previous lamm export (holding export_manifest.json), which is "
        "replaced. Any other existing folder, the checkpoint's own folder or one above it, and the current "
        "folder are refused; nothing is deleted."))],
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check merged == unmerged logits on a fixed batch.")] = True,
    atol: Annotated[float, typer.Option(help="Largest allowed absolute logit difference (fp32).")] = 1e-4,
) -> None:
    """Export a checkpoint: merged HF model in OUT/llm, projector/encoder weights, manifest."""
    from lamm.model.checkpoint import CheckpointError
    from lamm.train.export import export_checkpoint

    with user_errors(CheckpointError, ValueError):
        result = export_checkpoint(checkpoint, out, verify=verify, atol=atol)
    diff = "not verified" if result.max_abs_diff is None else f"max |Δlogit| = {result.max_abs_diff:.2e}"
    console.print(f"exported to [bold]{result.out_dir}[/] (LoRA merged: {result.merged}; {diff})")


def register(app: typer.Typer) -> None:
    """Add the top-level ``export`` command to ``app``."""
    app.command("export", help="Merge LoRA and export a checkpoint as a Hugging Face model + media weights.")(export_command)
