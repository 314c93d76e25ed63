"""Projectors: map encoder tokens ``(B, N, in_dim)`` into the LLM's embedding space ``(B, N', out_dim)``.

* ``linear`` — LAMM: one ``Linear(in_dim → out_dim)`` with bias; ``N' = N``. Its state dict is
  ``{weight, bias}``, LAMM's ``llama_proj`` layout.
* ``mlp2x_gelu`` — LLaVA-1.5: ``Linear → GELU → Linear``; ``N' = N``; state dict ``{0.*, 2.*}`` as
  LLaVA's ``mm_projector``.
* ``resampler`` — learned queries cross-attend to the tokens (Perceiver / Qwen-VL style); ``N' =
  num_queries`` whatever ``N`` is, which caps the LLM sequence cost of long token sets (e.g. 512 point
  tokens).

Every projector has ``in_dim``, ``out_dim`` and ``num_output_tokens(n_in)`` — the number of placeholder
positions the collator must reserve for an encoder that emits ``n_in`` tokens.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import model_validator
from torch import Tensor, nn

from lamm.config import Config


class ProjectorConfig(Config):
    """Projector type and sizes; ``num_queries``, ``num_heads``, ``depth`` apply to ``resampler`` only.

    The resampler works at width ``out_dim`` (its attention heads split ``out_dim``).
    """

    type: Literal["linear", "mlp2x_gelu", "resampler"] = "linear"
    in_dim: int
    out_dim: int
    num_queries: int = 64
    num_heads: int = 8
    depth: int = 1

    @model_validator(mode="after")
    def _check(self) -> ProjectorConfig:
        if self.in_dim <= 0 or self.out_dim <= 0:
            raise ValueError("in_dim and out_dim must be > 0")
        if self.type == "resampler":
            if self.num_queries <= 0 or self.depth <= 0:
                raise ValueError("resampler needs num_queries > 0 and depth > 0")
            if self.out_dim % self.num_heads:
                raise ValueError(
                    f"resampler: out_dim={self.out_dim} must be divisible by num_heads={self.num_heads}"
                )
        return self


class LinearProjector(nn.Linear):
    """LAMM's projector: ``(B, N, in_dim) → (B, N, out_dim)``, one affine map."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(in_dim, out_dim, bias=True)
        self.in_dim, self.out_dim = in_dim, out_dim

    def num_output_tokens(self, n_in: int) -> int:
        """Token count out for ``n_in`` in: unchanged."""
        return n_in


class MlpProjector(nn.Sequential):
    """LLaVA-1.5's ``mlp2x_gelu``: ``(B, N, in_dim) → (B, N, out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim

    def num_output_tokens(self, n_in: int) -> int:
        """Token count out for ``n_in`` in: unchanged."""
        return n_in


class _ResamplerBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        kv = self.norm_kv(kv)
        q = q + self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]
        return q + self.ff(self.norm_ff(q))


class ResamplerProjector(nn.Module):
    """``(B, N, in_dim) → (B, num_queries, out_dim)``: ``num_queries`` learned queries attend to the tokens.

    Pre-norm cross-attention + MLP blocks at width ``out_dim``, then a final LayerNorm and a linear map.
    Token order of the input does not matter to the output except through the tokens' content, so the
    encoder must put position into its tokens (all our encoders do).
    """

    def __init__(self, cfg: ProjectorConfig) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.num_queries = cfg.in_dim, cfg.out_dim, cfg.num_queries
        d = cfg.out_dim
        self.kv_proj = nn.Linear(cfg.in_dim, d)
        self.queries = nn.Parameter(torch.empty(cfg.num_queries, d))
        self.blocks = nn.ModuleList([_ResamplerBlock(d, cfg.num_heads) for _ in range(cfg.depth)])
        self.norm_out = nn.LayerNorm(d)
        self.proj_out = nn.Linear(d, d)
        nn.init.trunc_normal_(self.queries, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def num_output_tokens(self, n_in: int) -> int:
        """Token count out: always ``num_queries``."""
        return self.num_queries

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(B, N, in_dim)`` → ``(B, num_queries, out_dim)``."""
        kv = self.kv_proj(x)
        q = self.queries.unsqueeze(0).expand(x.shape[0], -1, -1).to(kv.dtype)
        for blk in self.blocks:
            q = blk(q, kv)
        return self.proj_out(self.norm_out(q))


def build_projector(cfg: ProjectorConfig) -> nn.Module:
    """The projector for ``cfg``: an ``nn.Module`` ``(B, N, in_dim) → (B, N', out_dim)`` with
    ``in_dim``, ``out_dim`` and ``num_output_tokens(n_in)``."""
    if cfg.type == "linear":
        return LinearProjector(cfg.in_dim, cfg.out_dim)
    if cfg.type == "mlp2x_gelu":
        return MlpProjector(cfg.in_dim, cfg.out_dim)
    if cfg.type == "resampler":
        return ResamplerProjector(cfg)
    raise KeyError(f"unknown projector type {cfg.type!r} (known: linear, mlp2x_gelu, resampler)")
