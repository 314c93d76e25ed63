"""``lamm train CONFIG.yaml [key=value ...] --out DIR [--resume]``: train a model from a TrainConfig.

Multi-GPU / multi-process: ``torchrun --nproc-per-node N -m lamm.cli.train CONFIG --out DIR`` (the same
command as ``lamm train``; ``torchrun ... $(which lamm) train ...`` works too).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from lamm.cli.common import console, user_errors


def train_command(
    config: Annotated[Path, typer.Argument(help="TrainConfig YAML (see configs/train/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides, e.g. steps=100 optim.lr=1e-4 'data.train=[{file: a.json}]'.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Run directory: metrics.jsonl, checkpoints/, train_config.yaml.")] = Path("runs/train"),
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the newest complete checkpoint in --out.")] = False,
    stop_after: Annotated[int | None, typer.Option(help="Stop (with a checkpoint) after this many steps; continue later with --resume.")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar (rank 0 only).")] = True,
) -> None:
    """Train a model (align / instruct / full) on LAMM instruction data; saves checkpoints under --out."""
    from lamm.config import load_config
    from lamm.model.checkpoint import CheckpointError
    from lamm.train import TrainConfig, train
    from lamm.train.config import TrainSetupError
    from lamm.train.data import DataError

    with user_errors(DataError, CheckpointError, TrainSetupError):
        cfg = load_config(TrainConfig, config, overrides or [])
        result = train(cfg, out, resume=resume, progress=progress, stop_after=stop_after)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    if result.metrics:
        last = result.metrics[-1]
        console.print(f"step {result.steps}: loss {last['loss']:.4f}, {last['tokens_per_s']:.0f} tokens/s; "
                      f"checkpoint: [bold]{result.checkpoint}[/]")
    else:
        console.print(f"nothing to do: already at step {result.steps}; checkpoint: [bold]{result.checkpoint}[/]")


def register(app: typer.Typer) -> None:
    """Add the top-level ``train`` command to ``app``."""
    app.command("train", help="Train a model from a YAML config (align / instruct / full).")(train_command)


def _main_under_torchrun() -> None:
    """Entry for ``torchrun -m lamm.cli.train``. After a successful multi-process run (checkpoints and
    logs are already written atomically and the process group is torn down) the process leaves with
    ``os._exit``: gloo's C++ threads can otherwise abort at interpreter shutdown ("terminate called
    without an active exception"), turning a finished run into a failed one at random."""
    import os
    import sys

    world = int(os.environ.get("WORLD_SIZE", "1"))
    try:
        typer.run(train_command)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if world > 1:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        raise
    if world > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":  # torchrun --nproc-per-node N -m lamm.cli.train CONFIG --out DIR
    _main_under_torchrun()
