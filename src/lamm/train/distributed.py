"""Processes and engines: one CPU, one GPU, or many under ``torchrun`` (DDP, FSDP2, DeepSpeed).

``torchrun --nproc-per-node N -m lamm.cli.train CONFIG --out DIR`` sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; :func:`setup_distributed` joins the process group (nccl on CUDA, gloo on CPU). An
:class:`Engine` hides what differs between strategies — how the model is wrapped, how gradient sync is
skipped during accumulation, how gradients are clipped, how full state dicts are gathered — so the loop
in :mod:`lamm.train.loop` reads the same for all of them.

* ``ddp``: ``DistributedDataParallel``; accumulation micro-batches run under ``no_sync``. Gradients
  are averaged over ranks, so the loop scales each rank's loss by ``world_size``.
* ``fsdp``: FSDP2 ``fully_shard`` on each decoder layer (the LLM's ``_no_split_modules``) and the root;
  parameters, gradients and optimizer state are sharded; checkpoints gather full state dicts.
* ``deepspeed``: ZeRO-2/3 through ``accelerate`` — optional, needs ``pip install deepspeed``; the
  DeepSpeed engine owns accumulation and clipping (see :class:`DeepSpeedEngine`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from lamm.train.config import TrainConfig


@dataclass
class DistEnv:
    """This process: ``rank`` of ``world_size``, its ``device``, and whether we created the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(cfg: TrainConfig) -> DistEnv:
    """Read the ``torchrun`` environment, pick the device, join the process group when ``WORLD_SIZE > 1``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        device = torch.device(cfg.device)
        if device.type == "cuda" and device.index is None:
            device = torch.device(f"cuda:{local}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    env = DistEnv(rank, world, local, device)
    if world > 1:
        backend = cfg.distributed.backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        env.backend = backend
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
            env.owns_group = True
        if dist.get_world_size() != world:
            raise RuntimeError(f"WORLD_SIZE={world} but the process group has {dist.get_world_size()} ranks")
    return env


def teardown(env: DistEnv) -> None:
    """Leave the process group if :func:`setup_distributed` created it."""
    if env.owns_group and dist.is_initialized():
        # every rank leaves together: a rank that tears gloo down while a peer still talks to it can
        # abort at interpreter exit ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few numbers over ranks (float64, exact for token counts)."""
    if not env.distributed:
        return list(values)
    dev = env.device if env.backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=dev)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """``obj`` of rank 0 on every rank."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def resolve_strategy(cfg: TrainConfig, env: DistEnv) -> str:
    s = cfg.distributed.strategy
    if s == "auto":
        return "ddp" if env.distributed else "none"
    if s in ("ddp", "fsdp") and not env.distributed:
        return "none"  # one process: nothing to shard or synchronise
    return s


class Engine:
    """The single-process engine; subclasses change wrapping, sync and state gathering.

    ``module`` is what the loop calls; ``model`` is the underlying ``MultimodalLM``.
    """

    name = "none"
    owns_accumulation = False  # True when the engine steps the optimizer itself (DeepSpeed)

    def __init__(self, model: nn.Module, env: DistEnv) -> None:
        self.model, self.env, self.module = model, env, model

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-batch; ``sync=False`` skips the gradient all-reduce (not the last one)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def clip_grad_norm(self, max_norm: float | None, params: list[nn.Parameter]) -> float | None:
        """Clip to ``max_norm`` (if set) and return the total gradient norm before clipping."""
        if max_norm is None:
            grads = [p.grad for p in params if p.grad is not None]
            return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=False))

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    def full_state_dict(self, keys: set[str]) -> dict[str, torch.Tensor] | None:
        """Full tensors of ``keys`` on rank 0 (None elsewhere); a collective for sharded engines."""
        sd = self.model.state_dict()
        return {k: sd[k].detach().to("cpu").clone() for k in sorted(keys)} if self.env.is_main else None

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        missing = set(tensors) - set(self.model.state_dict())
        if missing:
            raise KeyError(f"checkpoint tensors not in the model: {sorted(missing)[:5]}")
        self.model.load_state_dict(tensors, strict=False)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        return optimizer.state_dict() if self.env.is_main else None

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state)


class DDPEngine(Engine):
    name = "ddp"

    def __init__(self, model: nn.Module, env: DistEnv, find_unused: bool | None) -> None:
        super().__init__(model, env)
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        # MultimodalLM touches every trainable parameter under torch.distributed (zero-weighted dummy
        # media), so the reducer never waits for an unused projector; find_unused stays off by default.
        self.module = DDP(model, device_ids=ids, find_unused_parameters=bool(find_unused))

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if sync else self.module.no_sync()


class FSDPEngine(Engine):
    name = "fsdp"

    def __init__(self, model: nn.Module, env: DistEnv, precision: str) -> None:
        super().__init__(model, env)
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        from lamm.model.lora import unwrap_base

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if precision == "bf16" else MixedPrecisionPolicy()
        base = unwrap_base(model.llm)
        block_names = set(getattr(base, "_no_split_modules", None) or [])
        blocks = [m for m in base.modules() if type(m).__name__ in block_names]
        if not blocks:
            raise ValueError(f"fsdp: found no decoder blocks in {type(base).__name__} (no _no_split_modules)")
        for blk in blocks:
            fully_shard(blk, mesh=mesh, mp_policy=mp)
        fully_shard(model, mesh=mesh, mp_policy=mp)
        self.module = model

    def no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        self.model.set_requires_gradient_sync(sync)
        return contextlib.nullcontext()

    def clip_grad_norm(self, max_norm: float | None, params: list[nn.Parameter]) -> float | None:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm is not None else float("inf"))
        return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)

    def full_state_dict(self, keys: set[str]) -> dict[str, torch.Tensor] | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        sd = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {k: sd[k] for k in sorted(keys)} if self.env.is_main else None

    def load_state_dict(self, tensors: dict[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.model, tensors, options=StateDictOptions(full_state_dict=True, strict=False))

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        sd = get_optimizer_state_dict(self.model, optimizer,
                                      options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return sd if self.env.is_main else None

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.model, optimizer, state, options=StateDictOptions(full_state_dict=True))


class DeepSpeedEngine(Engine):
    """ZeRO-2/3 via ``accelerate``. DeepSpeed divides each backward by ``grad_accum`` and steps the
    optimizer and scheduler itself at the accumulation boundary, so :meth:`backward` undoes the division
    (our loss is already normalised by the global token count) and :meth:`optimizer_step` only counts."""

    name = "deepspeed"
    owns_accumulation = True

    def __init__(self, model: nn.Module, env: DistEnv, cfg: TrainConfig, optimizer: Any, scheduler: Any) -> None:
        super().__init__(model, env)
        try:
            import deepspeed  # noqa: F401
        except ImportError:
            raise ImportError("distributed.strategy=deepspeed needs DeepSpeed: pip install deepspeed "
                              "(or use strategy fsdp, which needs nothing extra)") from None
        from accelerate import Accelerator
        from accelerate.utils import DeepSpeedPlugin

        plugin = DeepSpeedPlugin(zero_stage=cfg.distributed.zero_stage, gradient_accumulation_steps=cfg.grad_accum,
                                 gradient_clipping=cfg.optim.clip_grad_norm or 0.0)
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
        self.accelerator = Accelerator(deepspeed_plugin=plugin, mixed_precision="bf16" if cfg.precision == "bf16" else "no")
        self.module, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.grad_accum = cfg.grad_accum

    def backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(loss * self.grad_accum)

    def clip_grad_norm(self, max_norm: float | None, params: list[nn.Parameter]) -> float | None:
        norm = self.module.get_global_grad_norm() if hasattr(self.module, "get_global_grad_norm") else None
        return float(norm) if norm is not None else None

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
        pass  # the DeepSpeed engine stepped inside backward() at the boundary

    def full_state_dict(self, keys: set[str]) -> dict[str, torch.Tensor] | None:
        sd = self.accelerator.get_state_dict(self.module)
        return {k: sd[k] for k in sorted(keys) if k in sd} if self.env.is_main else None

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
        raise NotImplementedError("optimizer state of DeepSpeed runs is not checkpointed for resume yet; "
                                  "use strategy ddp or fsdp for resumable runs")


def build_engine(model: nn.Module, cfg: TrainConfig, env: DistEnv, optimizer: Any = None, scheduler: Any = None) -> Engine:
    """Wrap ``model`` (already on ``env.device``) for ``cfg.distributed.strategy``."""
    strategy = resolve_strategy(cfg, env)
    if strategy == "none":
        return Engine(model, env)
    if strategy == "ddp":
        return DDPEngine(model, env, cfg.distributed.find_unused_parameters)
    if strategy == "fsdp":
        return FSDPEngine(model, env, cfg.precision)
    if strategy == "deepspeed":
        return DeepSpeedEngine(model, env, cfg, optimizer, scheduler)
    raise ValueError(f"unknown distributed.strategy {strategy!r}")
