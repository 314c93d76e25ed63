"""Import an original LAMM v1 delta checkpoint (a bare ``torch.save`` dict) into a checkpoint directory.

LAMM saved every trainable parameter of its ``LAMMPEFTModel``: the projector ``llama_proj.{weight,bias}``
and LoRA tensors such as ``llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A[.default].weight``,
with no record of the base model — loaded non-strictly, a delta on the wrong base silently produced
garbage (``reference/LAMM.md`` §1). The import is strict: every tensor must find its place and every
LoRA slot must be filled, and the resulting checkpoint records the base's sha256, so it only ever loads
onto the base it was imported against.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from lamm.model.config import ModelConfig, model_preset
from lamm.model.lora import LoraSettings, convert_llm_mode


class DeltaImportError(ValueError):
    """The delta does not fit the base; the message names the tensors and the fix."""


def _layer_key(name: str) -> str | None:
    """``...layers.3.self_attn.q_proj.lora_A[.default].weight`` → ``layers.3.self_attn.q_proj.lora_A.weight``."""
    if "lora_" not in name or "layers." not in name:
        return None
    tail = name[name.index("layers."):]
    return tail.replace(".default.", ".")


def read_lamm_delta(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a LAMM ``.pt`` delta (a flat dict; a ``{"state_dict"|"module": {...}}`` wrapper is opened)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: LAMM delta checkpoint not found")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise DeltaImportError(f"{p}: not a readable LAMM delta (torch.load: {str(e).splitlines()[0][:200]}); "
                               "the download may be cut short — fetch pytorch_model.pt again") from None
    for wrapper in ("state_dict", "module", "model"):
        if isinstance(obj, dict) and set(obj) == {wrapper}:
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise DeltaImportError(f"{p}: expected a dict of tensors (LAMM's pytorch_model.pt), got {type(obj).__name__}")
    return dict(obj)


def default_import_config(base: str, proj_in: int, proj_out: int, clip: str) -> ModelConfig:
    """LAMM v1 around a pretrained base LLM: CLIP ViT-L/14 at 224 px (256 patch tokens, frozen) and a
    linear projector, LAMM template, LoRA mode."""
    cfg = model_preset("lamm7b").model_dump()
    cfg.update(
        encoders={"image": {"type": "clip", "name_or_path": clip, "image_size": 224, "freeze": True}},
        projectors={"image": {"type": "linear", "in_dim": proj_in, "out_dim": proj_out}},
        image_preprocess={"size": 224}, llm={"name_or_path": base, "dtype": "float16"}, tokenizer=None,
    )
    return ModelConfig.model_validate(cfg)


def import_lamm_delta(delta_path: str | os.PathLike, base: str, out: str | os.PathLike, *, modality: str = "image",
                      lora_alpha: float = 32.0, lora_dropout: float = 0.1, model_config: ModelConfig | None = None,
                      clip: str = "openai/clip-vit-large-patch14") -> Path:
    """Write a checkpoint at ``out`` from LAMM delta ``delta_path`` on ``base``.

    ``base``: a lamm checkpoint directory (its model, switched to LoRA) or a HF LLM path / hub id (then
    ``model_config``, or LAMM v1's layout with the CLIP tower ``clip``). ``modality`` names the projector
    ``llama_proj`` fills. LoRA ``r`` comes from the tensors; ``alpha`` is not stored by LAMM (its default
    is 32). Raises :class:`DeltaImportError` for unknown, missing or mis-shaped tensors.
    """
    from lamm.model.checkpoint import is_checkpoint, load_checkpoint, save_checkpoint
    from lamm.model.mllm import MultimodalLM

    if modality not in ("image", "pcl"):
        raise DeltaImportError(f"--modality {modality!r}: expected image or pcl (the projector llama_proj fills)")

    delta = read_lamm_delta(delta_path)
    for k in ("llama_proj.weight", "llama_proj.bias"):
        if k not in delta:
            raise DeltaImportError(f"{delta_path}: no {k!r} — not a LAMM v1 delta (keys: {sorted(delta)[:5]} ...)")
    proj_w, proj_b = delta.pop("llama_proj.weight"), delta.pop("llama_proj.bias")
    lora = {_layer_key(k): v for k, v in delta.items() if _layer_key(k)}
    unknown = sorted(k for k in delta if not _layer_key(k))
    if unknown:
        raise DeltaImportError(f"{delta_path}: {len(unknown)} tensors that are neither llama_proj nor LoRA, e.g. "
                           f"{unknown[:3]}; this importer handles LAMM v1 (LoRA + projector) deltas only")
    if not lora:
        raise DeltaImportError(f"{delta_path}: holds no LoRA tensors")
    ranks = {v.shape[0] for k, v in lora.items() if ".lora_A." in k}
    if len(ranks) != 1:
        raise DeltaImportError(f"{delta_path}: LoRA A matrices disagree on the rank: {sorted(ranks)}")
    targets = sorted({".".join(k.split(".")[2:4]) for k in lora})  # e.g. self_attn.q_proj
    settings = LoraSettings(r=ranks.pop(), alpha=lora_alpha, dropout=lora_dropout, target_modules=targets)

    if is_checkpoint(base):
        model = load_checkpoint(base)
    else:
        cfg = model_config or default_import_config(base, proj_w.shape[1], proj_w.shape[0], clip)
        model = MultimodalLM.from_config(cfg.model_copy(update={"llm_mode": "frozen"}))
    convert_llm_mode(model, "lora", settings)

    proj = model.projectors[modality] if modality in model.projectors else None  # noqa: SIM401 (ModuleDict)
    if proj is None or not isinstance(proj, torch.nn.Linear) or proj.weight.shape != proj_w.shape:
        got = tuple(proj.weight.shape) if isinstance(proj, torch.nn.Linear) else type(proj).__name__
        raise DeltaImportError(f"llama_proj.weight is {tuple(proj_w.shape)} but the base's {modality} projector is "
                           f"{got}; use a base with a linear {proj_w.shape[1]}→{proj_w.shape[0]} projector")
    ours = {_layer_key(n): p for n, p in model.llm.named_parameters() if _layer_key(n)}
    extra, missing = sorted(set(lora) - set(ours)), sorted(set(ours) - set(lora))
    if extra or missing:
        raise DeltaImportError(f"{delta_path}: LoRA tensors do not fit the base: {len(extra)} without a place "
                           f"(e.g. {extra[:3]}), {len(missing)} slots unfilled (e.g. {missing[:3]}); is the base "
                           "the model this delta was trained on?")
    with torch.no_grad():
        for k, v in lora.items():
            if ours[k].shape != v.shape:
                raise DeltaImportError(f"{delta_path}: {k} is {tuple(v.shape)}, the base expects {tuple(ours[k].shape)}")
            ours[k].copy_(v)
        proj.weight.copy_(proj_w)
        proj.bias.copy_(proj_b)
    digest = hashlib.sha256(Path(delta_path).read_bytes()).hexdigest()
    info: dict[str, Any] = {"path": str(delta_path), "sha256": digest, "format": "LAMM v1 delta",
                            "modality": modality, "base": str(base), "lora_alpha_assumed": lora_alpha}
    return save_checkpoint(model, out, extra_manifest={"imported_from": info})
