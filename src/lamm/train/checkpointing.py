"""Training checkpoints: the starting model, periodic atomic saves, and exact resume.

A run directory ``OUT`` holds ``checkpoints/step-00000040/``, each a complete model checkpoint
(:func:`lamm.model.checkpoint.save_checkpoint`: loadable by ``lamm chat``, ``lamm export``, the
benchmark) plus ``trainer/``: ``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (python, numpy, torch and
CUDA generator states of every rank), ``state.json`` (step, data position, dropped samples) and
``train_config.yaml``; ``trainer/COMPLETE`` is written last. Everything is written into
``.step-00000040.tmp`` and renamed into place, so a killed save leaves no directory that looks complete.
``--resume`` continues from the newest complete one; older ones beyond ``keep_last`` are deleted.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from lamm.fileio import write_json_atomic
from lamm.train.config import TrainConfig
from lamm.train.distributed import DistEnv, Engine, barrier, broadcast_object

STAGE_OF_MODE = {"lora": "instruct", "full": "full", "frozen": "align"}
MODE_OF_STAGE = {v: k for k, v in STAGE_OF_MODE.items()}


def resolve_stage(cfg: TrainConfig, llm_mode: str) -> str:
    """The stage to train: ``cfg.stage``, or the one matching the model's ``llm_mode`` when unset."""
    return cfg.stage if cfg.stage is not None else STAGE_OF_MODE[llm_mode]


def start_model(cfg: TrainConfig, device: Any = None) -> Any:
    """The model training starts from, with ``llm_mode`` matching the stage.

    A preset is built directly on ``device`` when it is a GPU: a random-init 7B takes minutes (and 28 GB
    of fp32) on the CPU, seconds on the GPU. Its random values then differ from a CPU build with the
    same seed (each device has its own generator); save it with ``lamm model init`` to pin them.

    A preset is built with ``llm_mode`` set by the stage (align → frozen, instruct → lora, full → full).
    A checkpoint keeps its mode, except that a ``frozen`` LLM (after an align stage) gets LoRA adapters
    for ``instruct`` or becomes trainable for ``full``; other changes are refused with the fix.
    """
    from lamm.model.checkpoint import load_checkpoint
    from lamm.model.config import model_preset
    from lamm.model.lora import apply_llm_mode
    from lamm.model.mllm import MultimodalLM

    src = cfg.model
    if src.preset is not None:
        overrides = [f"{k}={json.dumps(v)}" for k, v in src.overrides.items()]
        mcfg = model_preset(src.preset, overrides)
        if cfg.stage is not None:
            mcfg = mcfg.model_copy(update={"llm_mode": MODE_OF_STAGE[cfg.stage]})
        on_gpu = device is not None and torch.device(device).type != "cpu"
        return MultimodalLM.from_config(mcfg, device=device if on_gpu else None)
    model = load_checkpoint(src.checkpoint)
    mode = model.config.llm_mode
    stage = resolve_stage(cfg, mode)
    if stage == "align" or MODE_OF_STAGE[stage] == mode:
        return model
    if mode == "frozen":
        model.llm, targets = apply_llm_mode(model.llm, MODE_OF_STAGE[stage], model.config.lora)
        model.lora_targets = targets
        model.config = model.config.model_copy(update={"llm_mode": MODE_OF_STAGE[stage]})
        return model
    raise ValueError(f"model.checkpoint {src.checkpoint}: stage {stage!r} needs llm_mode "
                     f"{MODE_OF_STAGE[stage]!r} but the checkpoint was trained with {mode!r}; "
                     "`lamm export` it (merging LoRA) and start from the exported model, or pick stage "
                     f"{STAGE_OF_MODE[mode]!r}")


def apply_stage(model: Any, stage: str, train_encoders: bool | None) -> None:
    """Set ``requires_grad`` for ``stage``: projectors always train; the LLM's LoRA (instruct) or all of
    it (full); encoders per ``train_encoders`` (None: as each encoder's config built it — its ``freeze``
    flags — except in ``align``, which freezes them)."""
    from lamm.model.lora import is_lora_param

    model.projectors.requires_grad_(True)
    for name, p in model.llm.named_parameters():
        if stage == "full":
            p.requires_grad_(True)
        elif stage == "instruct":
            p.requires_grad_(is_lora_param(name))
        else:
            p.requires_grad_(False)
    for enc in model.encoders.values():
        if train_encoders is not None:
            enc.requires_grad_(train_encoders)
        elif stage == "align":
            enc.requires_grad_(False)
        # else: as the encoder built itself (its freeze flags; EPCL keeps its CLIP blocks frozen)
    model.train()


# ----------------------------------------------------------------------------------------- RNG state
def rng_state(device: torch.device) -> dict[str, Any]:
    """Every generator a training step may draw from on this process."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def _gather(obj: Any, env: DistEnv) -> list[Any] | None:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size if env.is_main else None  # type: ignore[assignment]
    dist.gather_object(obj, out, dst=0)
    return out


# -------------------------------------------------------------------------------------------- saving
def step_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def is_complete(path: Path) -> bool:
    return (path / "trainer" / "COMPLETE").is_file() and (path / "COMPLETE").is_file()


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete training checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if p.is_dir() and is_complete(p))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def save_training_checkpoint(run_dir: str | os.PathLike, step: int, engine: Engine, optimizer: Any, scheduler: Any,
                             cfg: TrainConfig, state: dict[str, Any], trainable_keys: set[str]) -> Path | None:
    """Write checkpoint ``step`` (collective: every rank calls it). Returns the path on rank 0."""
    from lamm.model.checkpoint import save_checkpoint

    env = engine.env
    weights = engine.full_state_dict(trainable_keys)
    optim_state = engine.optimizer_state(optimizer)
    rngs = _gather(rng_state(env.device), env)
    final = step_dir(run_dir, step)
    if env.is_main:
        tmp = final.parent / f".{final.name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        extra = {"training": {"step": step, "stage": state.get("stage"), "data": [s.model_dump() for s in cfg.data.train]}}
        save_checkpoint(engine.model, tmp, extra_manifest=extra, state_dict=weights)
        tdir = tmp / "trainer"
        tdir.mkdir()
        torch.save(optim_state, tdir / "optimizer.pt")
        torch.save(scheduler.state_dict(), tdir / "scheduler.pt")
        torch.save(rngs, tdir / "rng.pt")
        write_json_atomic(tdir / "state.json", state)
        cfg.dump(tdir / "train_config.yaml")
        (tdir / "COMPLETE").write_text("ok\n", encoding="utf-8")
        if final.exists():  # an earlier run's save of the same step: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(run_dir, cfg.checkpoint.keep_last)
    barrier(env)
    return final if env.is_main else None


def _prune(run_dir: str | os.PathLike, keep_last: int) -> None:
    if keep_last <= 0:
        return
    for old in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------ resuming
def load_training_state(path: Path, engine: Engine, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and this rank's RNG from checkpoint ``path``; returns
    ``state.json``. The model must have been built the same way (same base, stage and config)."""
    from safetensors.torch import load_file

    from lamm.model.checkpoint import WEIGHTS, read_manifest

    env = engine.env
    manifest = read_manifest(path)
    if manifest["base_llm"].get("sha256") != engine.model.base_llm_sha256 and engine.model.config.llm_mode != "full":
        raise ValueError(f"{path}: the checkpoint's base LLM differs from the one built from the config; "
                         "resume with the same model.* settings")
    engine.load_state_dict(load_file(str(path / WEIGHTS)))
    tdir = path / "trainer"
    optim_state = torch.load(tdir / "optimizer.pt", map_location="cpu", weights_only=False)
    engine.load_optimizer_state(optimizer, optim_state)
    scheduler.load_state_dict(torch.load(tdir / "scheduler.pt", weights_only=False))
    rngs = torch.load(tdir / "rng.pt", weights_only=False)
    state = json.loads((tdir / "state.json").read_text(encoding="utf-8"))
    if len(rngs) == env.world_size:
        set_rng_state(rngs[env.rank], env.device)
    elif env.is_main:
        print(f"warning: {path} was saved by {len(rngs)} processes, resuming on {env.world_size}: "
              "random generators are re-seeded, so dropout noise differs from an uninterrupted run")
    return state


def resolve_resume(run_dir: str | os.PathLike, resume: bool | str, env: DistEnv) -> Path | None:
    """``resume=True``: the newest complete checkpoint of ``run_dir`` (None if there is none);
    a path: that checkpoint. Rank 0 decides, so every rank resumes from the same one."""
    if not resume:
        return None
    if isinstance(resume, (str, os.PathLike)) and not isinstance(resume, bool):
        p = Path(resume)
        if not is_complete(p):
            raise FileNotFoundError(f"{p}: not a complete training checkpoint (no trainer/COMPLETE)")
        return p
    found = latest_checkpoint(run_dir) if env.is_main else None
    found = broadcast_object(str(found) if found else None, env)
    return Path(found) if found else None
