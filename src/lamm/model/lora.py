"""How the LLM trains: LoRA adapters on the attention projections (LAMM), full fine-tuning, or frozen.

LAMM v1 defaults: ``r=32``, ``alpha=32``, dropout 0.1 on the attention q/k/v/o projections. The target
modules are resolved from the model itself — every linear layer (``nn.Linear`` or GPT-2's ``Conv1D``)
directly inside an attention block — so Llama (``self_attn.{q,k,v,o}_proj``), GPT-2
(``attn.c_attn`` fused qkv + ``attn.c_proj``), GPT-NeoX (``attention.query_key_value`` + ``dense``) and
others get q/k/v/o without a per-architecture table. Names are given to peft as suffixes such as
``self_attn.q_proj`` so that GPT-2's MLP ``c_proj`` is not matched by accident.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator
from torch import nn

from lamm.config import Config

LLMMode = Literal["lora", "full", "frozen"]


class LoraSettings(Config):
    """peft LoRA settings (LAMM v1 defaults). ``target_modules``: None resolves the attention q/k/v/o
    projections automatically (see the module docstring); a list is passed to peft as name suffixes."""

    r: int = 32
    alpha: float = 32.0
    dropout: float = 0.1
    target_modules: list[str] | None = None

    @field_validator("r")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("lora.r must be > 0")
        return v


def _linear_types() -> tuple[type, ...]:
    from transformers.pytorch_utils import Conv1D

    return (nn.Linear, Conv1D)


def resolve_lora_targets(model: nn.Module) -> list[str]:
    """Attention projection names as ``"<attention attr>.<linear attr>"`` suffixes, sorted.

    An attention block is a module whose class name contains ``Attention`` (HF convention); its direct
    linear children are q/k/v/o (or fused qkv + output). Raises if none is found.
    """
    linear = _linear_types()
    targets: set[str] = set()
    for name, mod in model.named_modules():
        if "attention" not in type(mod).__name__.lower():
            continue
        attr = name.rsplit(".", 1)[-1]
        for child_name, child in mod.named_children():
            if isinstance(child, linear):
                targets.add(f"{attr}.{child_name}")
    if not targets:
        raise ValueError(
            f"found no linear layers inside attention blocks of {type(model).__name__}; "
            "set lora.target_modules explicitly (module name suffixes such as 'self_attn.q_proj')"
        )
    return sorted(targets)


def apply_llm_mode(llm: nn.Module, mode: LLMMode, lora: LoraSettings) -> tuple[nn.Module, list[str]]:
    """Prepare ``llm`` for ``mode``; returns ``(llm, lora target suffixes)``.

    * ``lora``: the base is frozen and wrapped by ``peft.get_peft_model`` (only ``lora_A/lora_B`` train);
    * ``full``: every LLM parameter trains; ``frozen``: none does (projector-only alignment stage).
    """
    if mode == "full":
        llm.requires_grad_(True)
        return llm, []
    llm.requires_grad_(False)
    if mode == "frozen":
        return llm, []
    if mode != "lora":
        raise ValueError(f"unknown llm_mode {mode!r}; expected 'lora', 'full' or 'frozen'")
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = list(lora.target_modules) if lora.target_modules else resolve_lora_targets(llm)
    matched = [m for n, m in llm.named_modules() if any(n == t or n.endswith("." + t) for t in targets)]
    if not matched:
        raise ValueError(f"lora.target_modules {targets} match no module of {type(llm).__name__}")
    peft_cfg = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, bias="none",
        task_type="CAUSAL_LM",
        # GPT-2's Conv1D stores weights transposed (in, out); peft must know, or the update is wrong.
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in matched),
    )
    return get_peft_model(llm, peft_cfg), targets


def is_lora_param(name: str) -> bool:
    """Whether a state-dict name belongs to a LoRA adapter."""
    return "lora_" in name


def unwrap_base(llm: nn.Module) -> nn.Module:
    """The HF model under a peft wrapper (LoRA layers stay injected), or ``llm`` itself."""
    get = getattr(llm, "get_base_model", None)
    return get() if callable(get) else llm


def describe_lora(llm: nn.Module) -> dict[str, Any] | None:
    """The active LoRA config as a plain dict (for manifests), or None without peft."""
    cfgs = getattr(llm, "peft_config", None)
    if not cfgs:
        return None
    c = cfgs["default"]
    return {"r": c.r, "alpha": c.lora_alpha, "dropout": c.lora_dropout,
            "target_modules": sorted(c.target_modules) if c.target_modules else None}


def convert_llm_mode(model: Any, mode: LLMMode, lora: LoraSettings | None = None) -> Any:
    """Switch a :class:`~lamm.model.mllm.MultimodalLM` to another ``llm_mode`` in place (e.g. a tiny model
    trained ``full`` → LoRA fine-tuning, or an import of a LoRA delta).

    Existing LoRA is merged first; the merged LLM becomes the new base, so ``model.base_llm_sha256`` is
    recomputed and ``model.config`` updated. A base that changed (merged LoRA, fully trained weights) is
    no longer what ``llm.name_or_path`` loads: ``model.base_llm_derived`` is set and checkpoints save it
    under ``base/llm`` (as for a random-init base).
    """
    from lamm.model.llm import llm_fingerprint

    llm = model.llm
    if hasattr(llm, "merge_and_unload"):
        llm = llm.merge_and_unload()
    new_hash = llm_fingerprint(llm)
    if new_hash != model.base_llm_sha256:
        model.base_llm_derived = True
    model.base_llm_sha256 = new_hash
    lora = lora or model.config.lora
    model.llm, model.lora_targets = apply_llm_mode(llm, mode, lora)
    model.config = model.config.model_copy(update={"llm_mode": mode, "lora": lora})
    return model
