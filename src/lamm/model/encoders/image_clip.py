"""CLIP / SigLIP vision transformer as an image encoder: patch tokens of a chosen layer.

LAMM v1: CLIP ViT-L/14 at 224 px, frozen, the 256 patch tokens of the last transformer block (CLS
dropped, no final norm, no projection), 1024-d. That is this module's default (``feature_layer=-1``,
``select="patch"``); LLaVA uses ``feature_layer=-2``.

Layers after ``feature_layer`` are removed at build time, so a penultimate-layer encoder neither
computes nor stores the last block (and the post-norm / pooling head, never used here, are dropped).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import model_validator
from torch import Tensor, nn

from lamm.config import Config


class ClipImageEncoderConfig(Config):
    """A CLIP (or SigLIP) vision tower from a local path / hub id, or randomly initialised from a config.

    Exactly one of ``name_or_path`` (pretrained weights) and ``vision_config`` (a dict of
    ``CLIPVisionConfig`` / ``SiglipVisionConfig`` fields, random init, e.g. for tests) must be given.
    ``feature_layer`` indexes ``hidden_states`` as transformers does: 0 is the embedding output, ``-1``
    the last block. ``image_size`` must equal the tower's own image size (position embeddings are not
    interpolated).
    """

    type: Literal["clip"] = "clip"
    name_or_path: str | None = None
    vision_config: dict[str, Any] | None = None
    feature_layer: int = -1
    select: Literal["patch", "cls_patch"] = "patch"
    image_size: int = 224
    freeze: bool = True
    family: Literal["clip", "siglip"] = "clip"
    seed: int = 0  # weight init when built from vision_config

    @model_validator(mode="after")
    def _one_source(self) -> ClipImageEncoderConfig:
        if (self.name_or_path is None) == (self.vision_config is None):
            raise ValueError("give exactly one of name_or_path (pretrained) and vision_config (random init)")
        if self.family == "siglip" and self.select == "cls_patch":
            raise ValueError("SigLIP has no CLS token: use select='patch'")
        return self


def _model_classes(family: str) -> tuple[type, type]:
    if family == "siglip":
        from transformers import SiglipVisionConfig, SiglipVisionModel

        return SiglipVisionConfig, SiglipVisionModel
    from transformers import CLIPVisionConfig, CLIPVisionModel

    return CLIPVisionConfig, CLIPVisionModel


class ClipImageEncoder(nn.Module):
    """``(B, 3, S, S)`` preprocessed pixels → ``(B, num_tokens, out_dim)`` hidden states of one layer.

    ``num_tokens`` is ``(S / patch)**2`` patch tokens, plus 1 (CLS first) with ``select="cls_patch"``.
    A frozen encoder runs without autograd and stays in eval mode even under ``.train()``.
    """

    modality = "image"
    config_class = ClipImageEncoderConfig

    def __init__(self, cfg: ClipImageEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        config_cls, model_cls = _model_classes(cfg.family)
        if cfg.name_or_path is not None:
            model = model_cls.from_pretrained(cfg.name_or_path)
        else:
            vcfg = config_cls(**cfg.vision_config)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                model = model_cls(vcfg)
        vc = model.config
        if vc.image_size != cfg.image_size:
            raise ValueError(
                f"image_size={cfg.image_size} but the {cfg.family} tower "
                f"{cfg.name_or_path or '(from vision_config)'} expects {vc.image_size}; set image_size "
                f"(and the image preprocessing size) to {vc.image_size}"
            )
        n_layers = vc.num_hidden_layers
        keep = cfg.feature_layer if cfg.feature_layer >= 0 else n_layers + 1 + cfg.feature_layer
        if not 0 <= keep <= n_layers:
            raise ValueError(
                f"feature_layer={cfg.feature_layer} is out of range for a {n_layers}-layer tower "
                f"(valid: {-(n_layers + 1)}..{n_layers})"
            )
        # transformers 5 flattened the vision model; 4.x nests it under .vision_model.
        core = getattr(model, "vision_model", model)
        core.encoder.layers = core.encoder.layers[:keep]
        for unused in ("post_layernorm", "head"):
            if isinstance(getattr(core, unused, None), nn.Module):
                setattr(core, unused, nn.Identity())
        self.model = model
        self.has_cls = cfg.family == "clip"
        self.drop = 1 if (self.has_cls and cfg.select == "patch") else 0
        grid = vc.image_size // vc.patch_size
        self.num_tokens = grid * grid + (1 if (self.has_cls and cfg.select == "cls_patch") else 0)
        self.out_dim = vc.hidden_size
        self.freeze = cfg.freeze
        if self.freeze:
            self.requires_grad_(False)
            self.eval()

    def train(self, mode: bool = True) -> ClipImageEncoder:
        """Frozen encoders ignore ``train(True)``: dropout in a frozen tower would only add noise."""
        return super().train(mode and not self.freeze)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, 3, S, S)`` normalised pixels → ``(B, num_tokens, out_dim)`` in the tower's dtype."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"image encoder expects (B, 3, H, W) pixels, got {tuple(x.shape)}")
        core = getattr(self.model, "vision_model", self.model)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            h = core.embeddings(x.to(core.embeddings.patch_embedding.weight.dtype))
            pre = getattr(core, "pre_layrnorm", None)  # CLIP only; SigLIP has no pre-norm
            if pre is not None:
                h = pre(h)
            h = core.encoder(inputs_embeds=h)[0]
        return h[:, self.drop :]
