"""The training config: one typed, YAML-serialisable object that says everything a run does.

Batch arithmetic: a *micro-batch* is ``micro_batch_size`` samples on one process; a *step* takes
``grad_accum`` micro-batches on each of ``world_size`` processes, so the global batch is
``micro_batch_size × grad_accum × world_size`` samples. The loss of a step is the mean over every
supervised token of the global batch, whatever the split (see :mod:`lamm.train.loop`).

Lengths are in tokens *as the LLM sees them*: media placeholders expanded to their encoder's token
count. LAMM's "max length 400 after vision" is therefore ``max_length = 256 + 400`` for one image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from lamm.config import Config


class ModelSource(Config):
    """Where the starting model comes from: exactly one of ``checkpoint`` (a directory written by
    ``lamm model init`` or a previous run) and ``preset`` (a model preset name, e.g. ``tiny``).

    ``overrides`` are dotted overrides applied to the preset's model config (e.g.
    ``{"lora.r": 32}``); they are refused with a checkpoint, whose config is fixed by its weights.
    """

    checkpoint: str | None = None
    preset: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.checkpoint is None) == (self.preset is None):
            raise ValueError("give exactly one of model.checkpoint (a directory) and model.preset (e.g. 'tiny')")
        if self.checkpoint is not None and self.overrides:
            raise ValueError("model.overrides apply to a preset only; a checkpoint's config is fixed")
        return self


class DataSource(Config):
    """One instruction file (LAMM JSON array or JSONL) and the vision root its media paths are under.

    ``weight`` scales how often the file is seen per epoch: 2.0 = every record twice, 0.5 = a seeded
    half of its records (a different half each epoch), 0 = not used.
    """

    file: str
    root: str | None = None
    weight: float = 1.0

    @field_validator("weight")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("weight must be >= 0")
        return v

    @property
    def resolved_root(self) -> str:
        """The vision root: ``root`` if given, else the file's folder."""
        return self.root if self.root is not None else str(Path(self.file).parent)


class DataConfig(Config):
    """Training data and how samples become sequences.

    ``too_long`` decides what happens to a sample longer than ``max_length``: ``drop`` it, or
    ``truncate`` its text tail (never inside a media span, and only if a supervised token survives;
    otherwise it is dropped). Dropped samples are counted and reported; if their share exceeds
    ``max_drop_fraction`` (default 0) the run stops before training with an error naming each one.
    """

    train: list[DataSource]
    eval: list[DataSource] = Field(default_factory=list)
    max_length: int = 2048
    packing: bool = False
    pack_length: int | None = None
    too_long: Literal["drop", "truncate"] = "drop"
    max_drop_fraction: float = 0.0
    num_workers: int = 0
    check_records: bool = True
    #: every media file must exist before training starts (one stat per file; a missing one would
    #: otherwise stop the run when its sample is drawn, possibly hours in)
    check_media_exists: bool = True

    @field_validator("train")
    @classmethod
    def _nonempty(cls, v: list[DataSource]) -> list[DataSource]:
        if not v:
            raise ValueError("data.train needs at least one {file, root, weight} entry")
        if not any(s.weight > 0 for s in v):
            raise ValueError("data.train: every weight is 0; nothing to train on")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> DataConfig:
        if self.max_length <= 0:
            raise ValueError("data.max_length must be > 0")
        if self.pack_length is not None and self.pack_length < self.max_length:
            raise ValueError("data.pack_length must be >= data.max_length (a sample must fit in a row)")
        if not 0.0 <= self.max_drop_fraction <= 1.0:
            raise ValueError("data.max_drop_fraction must be in [0, 1]")
        return self

    @property
    def row_length(self) -> int:
        """Tokens per packed row (``pack_length``, default ``max_length``)."""
        return self.pack_length or self.max_length


class OptimConfig(Config):
    """AdamW with linear warm-up then cosine (or constant / linear) decay to ``min_lr_ratio × lr``.

    LAMM: lr 5e-4, betas (0.9, 0.95), weight decay 1e-3. Per-group learning rates default to ``lr``;
    norms, biases and 1-d parameters are never decayed.
    """

    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 1e-3
    clip_grad_norm: float | None = 1.0
    warmup_steps: int | None = None
    warmup_ratio: float = 0.03
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.0
    projector_lr: float | None = None
    lora_lr: float | None = None
    encoder_lr: float | None = None
    llm_lr: float | None = None

    @model_validator(mode="after")
    def _check(self) -> OptimConfig:
        if self.lr <= 0:
            raise ValueError("optim.lr must be > 0")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError("optim.betas must be in [0, 1)")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("optim.warmup_ratio must be in [0, 1)")
        return self


class DistributedConfig(Config):
    """Multi-process training under ``torchrun``.

    ``strategy``: ``auto`` = DDP when ``WORLD_SIZE > 1``, else none; ``fsdp`` = FSDP2 ``fully_shard`` per
    decoder layer; ``deepspeed`` = ZeRO ``zero_stage`` through accelerate (optional, needs
    ``pip install deepspeed``). ``backend``: ``auto`` = nccl on CUDA, gloo on CPU.
    """

    strategy: Literal["auto", "none", "ddp", "fsdp", "deepspeed"] = "auto"
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    zero_stage: Literal[2, 3] = 2
    find_unused_parameters: bool | None = None


class CheckpointConfig(Config):
    """``save_every`` steps (0 = only at the end) a complete checkpoint is written; the last
    ``keep_last`` are kept (0 = keep all)."""

    save_every: int = 0
    keep_last: int = 2
    save_final: bool = True


class EvalConfig(Config):
    """Every ``every`` steps (0 = never; also after the last step when > 0) the mean supervised loss
    on ``data.eval`` (up to ``max_samples``) is logged; Python callers may add hooks to ``train()``."""

    every: int = 0
    max_samples: int | None = 256
    micro_batch_size: int | None = None


class TrainConfig(Config):
    """Everything one training run does. See the module docstring for the batch arithmetic.

    ``stage``: ``align`` trains the projectors only; ``instruct`` the projectors + LoRA (LAMM);
    ``full`` the projectors + the whole LLM. None follows the model's ``llm_mode`` (frozen / lora /
    full). ``train_encoders``: None lets each encoder's ``freeze`` flag decide (frozen in ``align``).
    ``precision: bf16`` runs under bf16 autocast with frozen weights stored in bf16 and trainable ones
    in fp32. ``cpu_threads`` sets ``torch.set_num_threads`` when training on the CPU (None: torch's
    default); 1 avoids OpenMP oversubscription when a data worker shares a 2-core machine.
    """

    model: ModelSource
    stage: Literal["align", "instruct", "full"] | None = None
    train_encoders: bool | None = None
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    steps: int | None = None
    epochs: float | None = None
    micro_batch_size: int = 4
    grad_accum: int = 1
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    #: lamm_varlen: packed samples through a variable-length kernel (lamm.model.varlen_attention)
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "lamm_varlen"] = "auto"
    #: torch.compile each LLM decoder layer (fuses RMSNorm, RoPE, SwiGLU and LoRA's element-wise work;
    #: the identical layers share one compilation). Off by default: compiling costs a minute or more.
    compile_layers: bool = False
    device: str = "auto"
    cpu_threads: int | None = None
    seed: int = 0
    distributed: DistributedConfig = DistributedConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    eval: EvalConfig = EvalConfig()
    log_every: int = 1
    peak_flops: float | None = Field(default=None, description="peak FLOP/s of one device, for MFU")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.steps is not None and self.epochs is not None:
            raise ValueError("give steps or epochs, not both")
        if self.steps is None and self.epochs is None:
            self.__dict__["epochs"] = 1.0  # bypass validate_assignment recursion
        if self.steps is not None and self.steps <= 0:
            raise ValueError("steps must be > 0")
        if self.epochs is not None and self.epochs <= 0:
            raise ValueError("epochs must be > 0")
        if self.micro_batch_size <= 0 or self.grad_accum <= 0:
            raise ValueError("micro_batch_size and grad_accum must be > 0")
        if self.log_every <= 0:
            raise ValueError("log_every must be > 0")
        return self

    def global_batch_size(self, world_size: int = 1) -> int:
        """Samples per optimizer step over all processes."""
        return self.micro_batch_size * self.grad_accum * world_size


class TrainSetupError(ValueError):
    """A run cannot start as configured: a local path that does not exist, an output folder holding
    another run, a resume that does not fit. The message names the field or folder and what to do."""


def _looks_local(value: str) -> bool:
    """A path on this machine rather than a hub id (``org/name``): absolute, ``./``, ``../`` or ``~``."""
    return value.startswith(("/", "./", "../", "~"))


def missing_local_paths(cfg: TrainConfig) -> list[str]:
    """``field: path`` of every path in ``cfg`` that does not exist: data files and roots (always local),
    the start checkpoint, and ``name_or_path`` values in ``model.overrides`` that look local (a hub id
    is left to the loader). Checked before the model loads, so a wrong path costs no load time."""
    problems = []

    def check(field: str, value: Any, local: bool = True) -> None:
        if isinstance(value, str) and (local or _looks_local(value)) and not Path(value).expanduser().exists():
            problems.append(f"{field}: {value}")

    check("model.checkpoint", cfg.model.checkpoint)

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "name_or_path":
                    check(f"{prefix}.{k}", v, local=False)
                else:
                    walk(f"{prefix}.{k}", v)

    walk("model.overrides", cfg.model.overrides)
    for split in ("train", "eval"):
        for i, src in enumerate(getattr(cfg.data, split)):
            check(f"data.{split}.{i}.file", src.file)
            check(f"data.{split}.{i}.root", src.root)
    return problems
