"""AdamW parameter groups and the warm-up + decay learning-rate schedule.

Groups are named by what a parameter belongs to — ``projector``, ``lora``, ``encoder``, ``llm`` — each
split into a decayed and a non-decayed half. Norm weights, biases and every 1-d parameter are never
decayed: decaying a LayerNorm gain towards 0 or a bias towards 0 is a regulariser nobody asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from lamm.train.config import OptimConfig

GROUP_KINDS = ("projector", "lora", "encoder", "llm")


def param_kind(name: str) -> str:
    """Which group a parameter of a ``MultimodalLM`` belongs to, from its qualified name."""
    if "lora_" in name:
        return "lora"
    first = name.split(".", 1)[0]
    if first == "projectors":
        return "projector"
    if first == "encoders":
        return "encoder"
    return "llm"


def no_decay(name: str, p: torch.Tensor) -> bool:
    """True for biases, norm weights and any parameter with fewer than 2 dimensions."""
    low = name.lower()
    return p.ndim < 2 or low.endswith((".bias", "ln_f.weight")) or "norm" in low


def param_groups(named_params: Iterable[tuple[str, nn.Parameter]], cfg: OptimConfig) -> list[dict]:
    """AdamW groups over the trainable parameters (``requires_grad``), in a deterministic order.

    Each group carries ``name`` (``"lora/decay"``, ``"projector/no_decay"``, ...), its ``lr`` (the
    group's own lr from ``cfg`` or ``cfg.lr``) and ``weight_decay``. Empty groups are left out.
    """
    lr_of = {"projector": cfg.projector_lr, "lora": cfg.lora_lr, "encoder": cfg.encoder_lr, "llm": cfg.llm_lr}
    buckets: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        buckets.setdefault((param_kind(name), no_decay(name, p)), []).append(p)
    groups = []
    for kind in GROUP_KINDS:
        for nd in (False, True):
            params = buckets.get((kind, nd))
            if not params:
                continue
            groups.append({
                "name": f"{kind}/{'no_decay' if nd else 'decay'}",
                "params": params,
                "lr": lr_of[kind] if lr_of[kind] is not None else cfg.lr,
                "weight_decay": 0.0 if nd else cfg.weight_decay,
            })
    return groups


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``model``'s trainable parameters; raises when nothing is trainable."""
    groups = param_groups(model.named_parameters(), cfg)
    if not groups:
        raise ValueError("no trainable parameters: check the training stage and the model's LoRA settings")
    # On the CPU, the per-parameter loop (foreach=False) gives the same bits however parameters are
    # grouped, which the bit-exact resume and loss-invariance tests rely on. On a GPU, LoRA's ~260 small
    # tensors cost ~7 kernel launches each in that loop (~10 ms a step at the 7B shapes, ~3% of a step);
    # the multi-tensor path (torch's own default there, and the plain recipe's) launches a few per group.
    on_gpu = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, foreach=on_gpu)


def warmup_steps(cfg: OptimConfig, total_steps: int) -> int:
    """``cfg.warmup_steps`` if set, else ``ceil(warmup_ratio × total_steps)``."""
    if cfg.warmup_steps is not None:
        return cfg.warmup_steps
    return math.ceil(cfg.warmup_ratio * total_steps)


class LRLambda:
    """Multiplier of the base lr at optimizer step ``s`` (0-based): linear warm-up from ``1/(w+1)`` to 1
    over ``w`` steps, then cosine / linear decay to ``min_ratio`` at the last step, or constant."""

    def __init__(self, total: int, warmup: int, schedule: str, min_ratio: float) -> None:
        self.total, self.warmup, self.schedule, self.min_ratio = total, warmup, schedule, min_ratio

    def __call__(self, s: int) -> float:
        if s < self.warmup:
            return (s + 1) / (self.warmup + 1)
        if self.schedule == "constant":
            return 1.0
        span = max(1, self.total - self.warmup - 1)
        t = min(1.0, (s - self.warmup) / span)
        if self.schedule == "linear":
            return self.min_ratio + (1 - self.min_ratio) * (1 - t)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int):
    """A ``LambdaLR`` with :class:`LRLambda`; its ``state_dict`` round-trips for resume."""
    fn = LRLambda(total_steps, warmup_steps(cfg, total_steps), cfg.schedule, cfg.min_lr_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
