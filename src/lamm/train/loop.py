"""The training loop: plain and visible.

One optimizer step:

1. take this rank's ``grad_accum`` micro-batches (:class:`~lamm.train.data.MixtureSampler`);
2. count the supervised tokens ``N`` of the *global* batch (summed over micro-batches and ranks);
3. for each micro-batch: ``loss_i = Σ token losses_i × world_size / N``, backward (gradient sync
   only on the last; DDP averages over ranks, hence the ``world_size``). The gradient is then that of
   the mean over all ``N`` supervised tokens — the same however the batch is split, unlike averaging
   per-micro-batch means, which over-weights short answers in small micro-batches;
4. clip, step, schedule; log; maybe evaluate; maybe save.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamm.train.checkpointing import (
    apply_stage,
    list_checkpoints,
    load_training_state,
    resolve_resume,
    resolve_stage,
    save_training_checkpoint,
    start_model,
)
from lamm.train.collate import Collator, model_attention_mask, move_batch
from lamm.train.config import TrainConfig, TrainSetupError, missing_local_paths
from lamm.train.data import InstructionDataset, MixtureSampler, SampleSpec
from lamm.train.distributed import DistEnv, Engine, all_reduce_sum, build_engine, setup_distributed, teardown
from lamm.train.meter import Meter, training_flops
from lamm.train.optim import build_optimizer, build_scheduler

Hook = Callable[[int, Any], "dict[str, Any] | None"]


@dataclass
class TrainResult:
    """What a run produced: ``checkpoint`` (the final checkpoint directory, None if not saved),
    ``steps`` done, per-step ``metrics`` rows (as in ``metrics.jsonl``), ``eval`` rows, ``dropped``
    sample count, and ``model`` (the trained ``MultimodalLM``, on rank 0 of the process)."""

    out_dir: Path
    checkpoint: Path | None
    steps: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    model: Any = None

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.metrics if "loss" in r]

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare_model(cfg: TrainConfig, device: torch.device) -> tuple[Any, str]:
    """Build the starting model, set the trainable parameters for the stage, precision, attention
    kernel and gradient checkpointing; returns ``(model on device, stage)``."""
    model = start_model(cfg, device)
    stage = resolve_stage(cfg, model.config.llm_mode)
    apply_stage(model, stage, cfg.train_encoders)
    if cfg.attn_implementation != "auto":
        from lamm.model.lora import unwrap_base
        from lamm.model.varlen_attention import register

        register()

        unwrap_base(model.llm).set_attn_implementation(cfg.attn_implementation)
    if cfg.compile_layers:
        from lamm.model.llm import compile_decoder_layers

        compile_decoder_layers(model.llm)
    if cfg.gradient_checkpointing:
        model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.llm.config.use_cache = False
    if cfg.precision == "bf16":
        # Frozen weights in bf16 halve their memory; trainable ones stay fp32 (the optimizer's master copy).
        for p in model.parameters():
            if not p.requires_grad and p.is_floating_point():
                p.data = p.data.to(torch.bfloat16)
    return model.to(device), stage


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


def forward_batch(module: Any, model: Any, batch: dict[str, Any]) -> Any:
    """Run one collated batch (on the device) with summed token loss."""
    from lamm.model.lora import unwrap_base
    from lamm.model.varlen_attention import NAME as VARLEN

    impl = getattr(unwrap_base(model.llm).config, "_attn_implementation", None)
    dtype = next(model.llm.parameters()).dtype
    mask = model_attention_mask(batch["attention_mask"], impl, torch.float32 if dtype == torch.float32 else torch.bfloat16)
    kwargs = {}
    if impl == VARLEN:
        if "cu_seq_lens" not in batch:
            raise ValueError(f"attn_implementation={VARLEN!r} needs packed batches: set data.packing=true")
        kwargs = {"cu_seq_lens_q": batch["cu_seq_lens"], "cu_seq_lens_k": batch["cu_seq_lens"],
                  "max_length_q": batch["max_seq_len"], "max_length_k": batch["max_seq_len"]}
    return module(input_ids=batch["input_ids"], attention_mask=mask, media=batch["media"], labels=batch["labels"],
                  position_ids=batch["position_ids"], reduction="sum", logits="supervised", attention_kwargs=kwargs)


def accumulate_gradients(engine: Engine, micro: list[dict[str, Any]], cfg: TrainConfig) -> dict[str, float]:
    """Forward + backward over this rank's micro-batches of one step (steps 2–3 of the module docstring).

    Gradients end up as those of ``Σ token losses / N`` over the global batch. Returns global
    ``supervised``, ``tokens``, ``samples`` and ``loss_sum`` (summed token loss, all ranks).
    """
    env, model = engine.env, engine.model
    n_sup, n_tok, n_smp = all_reduce_sum([sum(b["n_supervised"] for b in micro), sum(b["n_tokens"] for b in micro),
                                          sum(b["n_samples"] for b in micro)], env)
    scale = env.world_size / max(n_sup, 1.0)
    loss_sum = 0.0
    for i, mb in enumerate(micro):
        mb = move_batch(mb, env.device)
        with engine.no_sync(sync=i == len(micro) - 1):
            with _autocast(cfg, env.device):
                out = forward_batch(engine.module, model, mb)
            engine.backward(out.loss * scale)
        loss_sum += float(out.loss.detach())
    (loss_sum,) = all_reduce_sum([loss_sum], env)
    return {"supervised": n_sup, "tokens": n_tok, "samples": n_smp, "loss_sum": loss_sum}


@torch.no_grad()
def evaluate(engine: Engine, dataset: InstructionDataset, collate: Collator, cfg: TrainConfig) -> dict[str, float]:
    """Mean supervised-token loss over ``dataset`` (sharded over ranks; every rank runs the same number
    of forwards — FSDP needs that — padding short shards with label-free repeats)."""
    env, model = engine.env, engine.model
    mb = cfg.eval.micro_batch_size or cfg.micro_batch_size
    n = len(dataset)
    per_rank = -(-n // env.world_size)
    per_rank = -(-per_rank // mb) * mb
    mine = [env.rank * per_rank + k for k in range(per_rank)]
    was = model.training
    model.eval()
    total, count = 0.0, 0.0
    try:
        for start in range(0, len(mine), mb):
            idx = mine[start:start + mb]
            # repeats (i >= n) run the forward but supervise nothing; labels are cleared per sample, so the
            # batch may be padded or packed (lamm_varlen attention needs packed rows)
            samples = [dataset[i] for i in idx if i < n]
            if len(samples) < len(idx):
                first = dataset[0]
                samples += [{**first, "labels": torch.full_like(first["labels"], -100)}] * (len(idx) - len(samples))
            batch = move_batch(collate(samples), env.device)
            with _autocast(cfg, env.device):
                out = forward_batch(engine.module, model, batch)
            total += float(out.loss)
            count += float(out.n_supervised)
    finally:
        model.train(was)
    total, count = all_reduce_sum([total, count], env)
    return {"eval_loss": total / max(count, 1.0), "eval_tokens": count}


def train(cfg: TrainConfig, out_dir: str | os.PathLike, resume: bool | str = False,
          progress: bool | Callable[[dict[str, Any]], None] = True, hooks: list[Hook] | None = None,
          stop_after: int | None = None) -> TrainResult:
    """Train per ``cfg``, writing ``metrics.jsonl``, ``train_config.yaml`` and checkpoints under ``out_dir``.

    Args:
        resume: True continues from the newest complete checkpoint in ``out_dir`` (a fresh start when
            there is none); a path resumes from that checkpoint.
        progress: True shows a rich progress bar; False nothing; a callable receives each step's row.
        hooks: ``hook(step, model) -> dict | None`` called at each eval point; rows are logged.
        stop_after: leave after this many steps of this call, saving a checkpoint to resume from
            (time-limited cluster jobs: ``--stop-after N`` then ``--resume``).

    Returns a :class:`TrainResult` with the final checkpoint path and the metrics.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = Path(out_dir)
    env = setup_distributed(cfg)
    try:
        return _train(cfg, out, resume, progress, hooks or [], env, stop_after)
    finally:
        teardown(env)


def _train(cfg: TrainConfig, out: Path, resume: bool | str, progress: Any, hooks: list[Hook], env: DistEnv,
           stop_after: int | None) -> TrainResult:
    missing = missing_local_paths(cfg)
    if missing:
        raise TrainSetupError("these paths of the config do not exist (fix them in the YAML or with an override "
                              "such as data.train.0.file=...):\n  " + "\n  ".join(missing))
    if not resume and list_checkpoints(out):  # before the model loads: a 7B load takes minutes
        raise TrainSetupError(f"{out} already holds checkpoints of a run; continue it with --resume "
                              "(resume=True) or train into a new --out directory")
    seed_everything(cfg.seed)
    if cfg.cpu_threads is not None and env.device.type == "cpu":
        torch.set_num_threads(cfg.cpu_threads)
    model, stage = prepare_model(cfg, env.device)
    spec = SampleSpec.from_model(model)
    dataset = InstructionDataset(cfg.data.train, spec, cfg.data, seed=cfg.seed)
    eval_set = (InstructionDataset(cfg.data.eval, spec, cfg.data, seed=cfg.seed, max_records=cfg.eval.max_samples)
                if cfg.data.eval and cfg.eval.every > 0 else None)
    sampler = MixtureSampler(dataset.per_source, [s.weight for s in cfg.data.train], cfg.seed, cfg.micro_batch_size,
                             cfg.grad_accum, env.world_size, env.rank)
    total = cfg.steps if cfg.steps is not None else sampler.steps_for_epochs(cfg.epochs or 1.0)
    sampler.total_steps = total
    trainable_keys = {k for k, p in model.named_parameters() if p.requires_grad}
    from lamm.model.checkpoint import trainable_state_dict

    trainable_keys |= set(trainable_state_dict(model))
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.distributed.strategy == "deepspeed":
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.optim, total)
        engine = build_engine(model, cfg, env, optimizer, scheduler)
    else:
        engine = build_engine(model, cfg, env)
        optimizer = build_optimizer(model, cfg.optim)
        scheduler = build_scheduler(optimizer, cfg.optim, total)
        params = [p for p in model.parameters() if p.requires_grad]  # FSDP swapped them for DTensors
    # what fixes the sample stream: a resume with other weights or another seed would continue a
    # different order (samples repeated or skipped within the epoch)
    data_state = {"global_batch": sampler.global_batch, "epoch_length": sampler.epoch_length,
                  "fingerprint": dataset.fingerprint(), "weights": [s.weight for s in cfg.data.train],
                  "seed": cfg.seed}
    start = 0
    ckpt = resolve_resume(out, resume, env)
    if ckpt is not None:
        state = load_training_state(ckpt, engine, optimizer, scheduler)
        for key, want in data_state.items():
            if key in state["data"] and state["data"][key] != want:  # (checkpoints before weights/seed lack them)
                raise TrainSetupError(f"{ckpt}: cannot resume: data {key} was {state['data'].get(key)!r}, now "
                                      f"{want!r} (the data files or the global batch changed); resume with the "
                                      "run's own train_config.yaml, or start a new --out")
        start = int(state["step"])
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        cfg.dump(out / "train_config.yaml")
        _report_data(dataset, out, progress, eval_set)
    sampler.start_step = start
    collate = Collator(model.tokenizer.pad_token_id, cfg.data.packing, cfg.data.row_length)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.data.num_workers,
        pin_memory=env.device.type == "cuda",
        # a private generator: building the loader must not draw from the global torch RNG (exact resume)
        generator=torch.Generator().manual_seed(cfg.seed))
    meter = Meter(out, total, start, training_flops(model.llm), env.world_size, env.device, cfg.precision, cfg.peak_flops,
                  progress=progress, is_main=env.is_main, log_every=cfg.log_every)
    result = TrainResult(out, None, start, dropped=len(dataset.dropped))
    it = iter(loader)
    try:
        end = total if stop_after is None else min(total, start + stop_after)
        for step in range(start, end):
            t0 = time.perf_counter()
            micro = [next(it) for _ in range(cfg.grad_accum)]
            t_data = time.perf_counter() - t0
            counts = accumulate_gradients(engine, micro, cfg)
            n_sup, n_tok, n_smp, loss_total = (counts[k] for k in ("supervised", "tokens", "samples", "loss_sum"))
            grad_norm = engine.clip_grad_norm(cfg.optim.clip_grad_norm, params)
            lr = optimizer.param_groups[0]["lr"]
            engine.optimizer_step(optimizer, scheduler)
            t_data_wait = t_data
            if env.device.type == "cuda":
                torch.cuda.synchronize(env.device)
            dt = time.perf_counter() - t0
            row = meter.log_step(step + 1, loss=loss_total / max(n_sup, 1.0), lr=lr, grad_norm=grad_norm,
                                 samples=int(n_smp), tokens=int(n_tok), supervised=int(n_sup), step_time=dt,
                                 data_time=t_data_wait, dropped=len(dataset.dropped))
            result.metrics.append(row)
            result.steps = step + 1
            done = step + 1
            if cfg.eval.every > 0 and (done % cfg.eval.every == 0 or done == total):
                ev = {"step": done}
                if eval_set is not None:
                    ev.update(evaluate(engine, eval_set, collate, cfg))
                for hook in hooks:
                    ev.update(hook(done, model) or {})
                meter.log_event(ev)
                result.eval.append(ev)
            save_now = cfg.checkpoint.save_every > 0 and done % cfg.checkpoint.save_every == 0
            if save_now or (done == total and cfg.checkpoint.save_final) or (done == end < total):
                st = {"step": done, "total_steps": total, "stage": stage, "data": data_state,
                      "dropped": len(dataset.dropped), "world_size": env.world_size,
                      "last_loss": row["loss"]}
                path = save_training_checkpoint(out, done, engine, optimizer, scheduler, cfg, st, trainable_keys)
                if path is not None:
                    meter.log_event({"step": done, "checkpoint": str(path)})
                    result.checkpoint = path
    finally:
        meter.close()
        del it
    if result.checkpoint is None and ckpt is not None and start == total:  # resumed a finished run
        result.checkpoint = ckpt
    result.model = model
    return result


def _report_data(dataset: InstructionDataset, out: Path, progress: Any,
                 eval_set: InstructionDataset | None = None) -> None:
    """Write ``data_report.json`` (kept, dropped with reasons, truncated; the same for the eval set;
    training files whose weight gives them no sample per epoch) and say it when dropping."""
    from lamm.fileio import write_json_atomic

    report: dict[str, Any] = {
        "kept": len(dataset), "dropped": len(dataset.dropped), "truncated": dataset.n_truncated,
        "dropped_samples": [str(d) for d in dataset.dropped],
        "max_length": int(dataset.lengths.max()) if len(dataset) else 0,
        "mean_length": float(dataset.lengths.mean()) if len(dataset) else 0.0,
        "unused_sources": dataset.unused_sources(),
    }
    if eval_set is not None:  # eval_loss is computed on what is kept: say what was not
        report.update({"eval_kept": len(eval_set), "eval_dropped": len(eval_set.dropped),
                       "eval_dropped_samples": [str(d) for d in eval_set.dropped]})
    write_json_atomic(out / "data_report.json", report)
    if progress is True:
        if dataset.dropped:
            print(f"dropped {len(dataset.dropped)} too-long sample(s); see {out / 'data_report.json'}")
        if eval_set is not None and eval_set.dropped:
            print(f"dropped {len(eval_set.dropped)} too-long eval sample(s): eval_loss leaves them out; see "
                  f"{out / 'data_report.json'}")
        for note in report["unused_sources"]:
            print(f"warning: {note}")