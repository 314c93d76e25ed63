"""Progress and metrics: a rich progress bar and one JSON line per logged step in ``metrics.jsonl``.

Each row has: ``step``, ``loss`` (mean over the step's supervised tokens), ``lr`` (first group),
``grad_norm``, ``samples``/``tokens``/``supervised_tokens`` of the step (all ranks), throughput
(``samples_per_s``, ``tokens_per_s`` — real, non-padding tokens — and ``supervised_tokens_per_s``),
``mfu`` (model FLOPs utilisation: the LLM's matrix-product FLOPs of the step, counted by
:func:`training_flops`, ``/ time / (peak · devices)``; null when the peak is unknown, e.g. on a CPU
without ``peak_flops`` in the config), ``data_wait`` (share of
the step spent waiting for the data loader), ``peak_mem_gb`` and ``dropped_samples`` (whole run).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lamm.fileio import FileFormatError, append_jsonl, read_appended_jsonl, write_jsonl_atomic

# Dense peak FLOP/s of one device: (bf16/fp16 tensor cores, fp32 without TF32). Sources: vendor
# datasheets (SXM parts). Matched by substring of torch.cuda.get_device_name(), first hit wins.
PEAK_FLOPS: list[tuple[str, float, float]] = [
    ("H200", 989e12, 67e12),
    ("H100", 989e12, 67e12),
    ("A100", 312e12, 19.5e12),
    ("A10", 125e12, 31.2e12),
    ("L40", 181e12, 90.5e12),
    ("L4", 121e12, 30.3e12),
    ("RTX 4090", 165e12, 82.6e12),
    ("RTX 3090", 71e12, 35.6e12),
    ("V100", 125e12, 15.7e12),
    ("T4", 65e12, 8.1e12),
]


def peak_flops(device: torch.device, precision: str, override: float | None = None) -> float | None:
    """Peak FLOP/s of one ``device`` at ``precision`` (``bf16``/``fp32``), or ``override``; None if unknown."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, bf16, fp32 in PEAK_FLOPS:
        if key in name:
            return bf16 if precision == "bf16" else fp32
    return None


@dataclass(frozen=True)
class StepFlops:
    """Model FLOPs of a training step per token, from the LLM's weight matrices (what MFU divides by the peak).

    ``per_token``: every real token passes the LLM body (all weight matrices but the input embedding
    table and the output head): 2 FLOPs per weight forward, 2 for the gradient of its input (always
    needed: every stage trains the projector below the LLM), and 2 more for the weight's own gradient
    when it is trainable (LoRA factors, or every matrix in the ``full`` stage). ``per_supervised``: the
    output head, which the trainer applies only at supervised positions (4 or 6 per weight likewise).
    Not counted: the encoders and projectors (they run per media item, not per token), attention's
    ``L²`` term, norms and element-wise work — so MFU is a slight underestimate on long rows.
    """

    per_token: float
    per_supervised: float

    def of_step(self, tokens: int, supervised: int) -> float:
        """FLOPs of a step over ``tokens`` real tokens of which ``supervised`` carry loss."""
        return self.per_token * tokens + self.per_supervised * supervised


def training_flops(llm: nn.Module) -> StepFlops:
    """Count :class:`StepFlops` of ``llm`` (a transformers causal LM, plain or with LoRA) as it is now set up
    (``requires_grad`` says which weights train). A head tied to the input embeddings counts as the head."""
    head = llm.get_output_embeddings()
    emb = llm.get_input_embeddings()
    head_w = head.weight if head is not None else None
    skip = {id(emb.weight)} if emb is not None else set()
    if head_w is not None:
        skip.add(id(head_w))
    body, seen = 0.0, set()
    for p in llm.parameters():
        if id(p) in seen or id(p) in skip or p.dim() < 2:
            continue
        seen.add(id(p))
        body += (6.0 if p.requires_grad else 4.0) * p.numel()
    sup = (6.0 if head_w.requires_grad else 4.0) * head_w.numel() if head_w is not None else 0.0
    return StepFlops(per_token=body, per_supervised=sup)


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory of this process in GiB: CUDA allocator peak on a GPU, max RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Meter:
    """Times steps, writes ``metrics.jsonl`` (main process only) and drives the progress bar.

    ``flops`` counts the model FLOPs of a step (:func:`training_flops`); ``n_devices`` is the world size.
    """

    def __init__(self, out_dir: str | os.PathLike | None, total_steps: int, start_step: int, flops: StepFlops,
                 n_devices: int, device: torch.device, precision: str, peak: float | None,
                 progress: bool | Any = True, is_main: bool = True, log_every: int = 1) -> None:
        self.path = Path(out_dir) / "metrics.jsonl" if out_dir is not None and is_main else None
        self.total, self.step0 = total_steps, start_step
        self.flops, self.n_devices, self.device = flops, n_devices, device
        self.peak = peak_flops(device, precision, peak)
        self.is_main, self.log_every = is_main, log_every
        self.rows: list[dict[str, Any]] = []
        self._t_start = time.perf_counter()
        self._bar = None
        self._callback = progress if callable(progress) else None
        if is_main and progress is True:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), transient=False)
            self._task = self._bar.add_task("train", total=total_steps, completed=start_step, info="")
            self._bar.start()
        if self.path is not None:
            self._truncate_after(start_step)

    def _truncate_after(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint (a killed run's tail) so steps never repeat.

        Read by :func:`lamm.fileio.read_appended_jsonl`: a last line cut by the kill that ended the run
        is dropped (its step is after the checkpoint anyway); a damaged line elsewhere is an error. Rows
        without ``step`` (events) are kept. Rewritten atomically, and only when something is dropped.
        """
        assert self.path is not None
        fix = "fix or delete that line, then resume again"
        log = read_appended_jsonl(self.path, what="metrics row", fix=fix)
        keep = []
        for n, row in zip(log.line_numbers, log.rows):
            at = row.get("step", 0)
            if isinstance(at, bool) or not isinstance(at, int | float):
                raise FileFormatError(f"{self.path}:{n}: not a valid metrics row ('step' is {at!r}, not a "
                                      f"number); {fix}")
            if at <= step:
                keep.append(row)
        if len(keep) < len(log.rows) or log.torn_line is not None or log.unterminated:
            write_jsonl_atomic(self.path, keep)

    def log_step(self, step: int, *, loss: float, lr: float, grad_norm: float | None, samples: int, tokens: int,
                 supervised: int, step_time: float, data_time: float, dropped: int,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record optimizer step ``step`` (1-based). Counts are over all ranks; times in seconds."""
        dt = max(step_time, 1e-9)
        flops = self.flops.of_step(tokens, supervised)
        row: dict[str, Any] = {
            "step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
            "samples": samples, "tokens": tokens, "supervised_tokens": supervised,
            "samples_per_s": samples / dt, "tokens_per_s": tokens / dt, "supervised_tokens_per_s": supervised / dt,
            "mfu": (flops / dt / (self.peak * self.n_devices)) if self.peak else None,
            "step_time_s": step_time, "data_wait": data_time / dt,
            "peak_mem_gb": round(peak_memory_gb(self.device), 4), "dropped_samples": dropped,
            "elapsed_s": time.perf_counter() - self._t_start,
        }
        if extra:
            row.update(extra)
        self.rows.append(row)
        if self.path is not None and (step % self.log_every == 0 or step == self.total):
            append_jsonl(self.path, row)
        if self._bar is not None:
            self._bar.update(self._task, completed=step,
                             info=f"loss {loss:.4f} lr {lr:.2e} {row['tokens_per_s']:.0f} tok/s")
        if self._callback is not None:
            self._callback(row)
        return row

    def log_event(self, row: dict[str, Any]) -> None:
        """Write a non-step row (eval results, checkpoint saved) to ``metrics.jsonl``."""
        self.rows.append(row)
        if self.path is not None:
            append_jsonl(self.path, row)
        if self._bar is not None and "eval_loss" in row:
            self._bar.console.print(f"step {row.get('step')}: eval loss {row['eval_loss']:.4f}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
