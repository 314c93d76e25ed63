"""A small convolutional image encoder trained from scratch (the tiny preset's CPU quickstart).

A ViT needs far more data and steps than a CPU budget of minutes allows; a few strided conv stages with
GroupNorm (batch-size independent: the tiny preset) or BatchNorm (faster from scratch: the quickstart) and residual
blocks learn colour, shape and position cues quickly. The output is a grid of
tokens (row-major, top-left first) with a learned 2D position embedding so the LLM can tell where a
token lies — needed for "where is the red square?" questions and box answers.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import field_validator, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from lamm.config import Config


class CnnImageEncoderConfig(Config):
    """Strided conv stages: each halves the resolution, so ``image_size / 2**len(channels)`` is the grid.

    Default: 64 px → 32 → 16 → 8, i.e. 8×8 = 64 tokens of ``out_dim``; ``pool_to=4`` average-pools the
    grid to 4×4 = 16 tokens (a shorter LLM sequence, coarser positions). ``summary_token=True`` appends
    one token made from the spatial max of the last feature map: a global read-out that a small LLM
    trained from scratch can use long before it learns to search the grid (the quickstart's tiny preset).
    ``pixel_branch=K`` adds a per-pixel branch (two 1×1 convolutions, K channels: colour detectors with
    no spatial mixing) max-pooled to each grid cell and concatenated to the conv features. Trained from
    scratch on shape classification, the deep stages become colour-invariant (a linear probe of colour
    fell from 92% at init to 27% after the quickstart's training); the shallow branch keeps "which
    colour is in this cell" available to the LLM whatever the deep stages learn.
    ``pixel_branch_frozen=True`` keeps the branch at its seeded random init (fixed colour detectors): a
    trainable branch drifts under a shape-only loss towards colour-blind foreground detectors too.
    ``pixel_tokens=G`` gives the branch tokens of its own instead: max-pooled to a G×G grid, projected by
    a separate linear layer and appended after the conv tokens (G² more tokens).
    ``cell_colour=True`` adds to each grid token a fixed code of its cell's mean colour: ``out_dim``
    random features of the cell's mean RGB (seeded, never trained), standardised per token, added
    after the output norm. Nothing learned can wash it out, and it is as strong as the learned part:
    with it, a model whose CNN learned shape first learned the largest shape's colour in 60 steps to
    35% (23% without), and with an oracle colour code on every token to 100%; but from the start of the
    quickstart's curriculum it held back the shape onset (2D classification 42 instead of 99, VQA 21;
    switched on after the shape warm-up, VQA 21 and every other task worse; benchmarks/RESULTS.md, f1,
    f2), so the quickstart does not use it.
    """

    type: Literal["cnn"] = "cnn"
    image_size: int = 64
    in_channels: int = 3
    channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_stage: int = 1
    out_dim: int = 128
    pool_to: int | None = None
    summary_token: bool = False
    pixel_branch: int = 0
    pixel_branch_frozen: bool = False
    pixel_tokens: int | None = None
    cell_colour: bool = False
    norm: Literal["group", "batch"] = "group"
    freeze: bool = False
    seed: int = 0

    @field_validator("channels")
    @classmethod
    def _nonempty(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(c <= 0 for c in v):
            raise ValueError("channels must be a non-empty list of positive widths")
        return v

    @model_validator(mode="after")
    def _grid(self) -> CnnImageEncoderConfig:
        stride = 2 ** len(self.channels)
        if self.image_size % stride:
            raise ValueError(f"image_size={self.image_size} must be divisible by 2**len(channels)={stride}")
        grid = self.image_size // stride
        if self.pixel_branch < 0:
            raise ValueError(f"pixel_branch={self.pixel_branch} must be >= 0 (0 = no pixel branch)")
        if self.pixel_tokens is not None and (not self.pixel_branch or not 1 <= self.pixel_tokens <= self.image_size):
            raise ValueError(f"pixel_tokens={self.pixel_tokens} needs pixel_branch > 0 and a grid of 1..image_size")
        if self.pool_to is not None and not 1 <= self.pool_to <= grid:
            raise ValueError(f"pool_to={self.pool_to} must be between 1 and the conv grid size {grid}")
        return self

    @property
    def grid(self) -> int:
        """Side of the output token grid."""
        return self.pool_to or self.image_size // 2 ** len(self.channels)


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(c)
    # 8 groups where the width allows it: GroupNorm is batch-size independent (batches of 1–8 on a CPU).
    return nn.GroupNorm(math.gcd(8, c), c)


class _ResBlock(nn.Module):
    def __init__(self, c: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm1 = _norm(norm, c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, c)
        # Zero gain on the residual branch: each block starts as the identity, so depth does not slow
        # early training (Goyal et al. 2017).
        nn.init.zeros_(self.norm2.weight)

    def forward(self, x: Tensor) -> Tensor:
        y = F.gelu(self.norm1(self.conv1(x)))
        return F.gelu(x + self.norm2(self.conv2(y)))


class CnnImageEncoder(nn.Module):
    """``(B, 3, S, S)`` preprocessed pixels → ``(B, grid**2, out_dim)`` tokens, row-major."""

    modality = "image"
    config_class = CnnImageEncoderConfig

    def __init__(self, cfg: CnnImageEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            stages: list[nn.Module] = []
            c_in = cfg.in_channels
            for c in cfg.channels:
                layers: list[nn.Module] = [
                    nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                    _norm(cfg.norm, c),
                    nn.GELU(),
                ]
                layers += [_ResBlock(c, cfg.norm) for _ in range(cfg.blocks_per_stage)]
                stages.append(nn.Sequential(*layers))
                c_in = c
            self.stages = nn.Sequential(*stages)
            self.conv_grid = cfg.image_size // 2 ** len(cfg.channels)
            self.pixel: nn.Module | None = None
            if cfg.pixel_branch:
                k = cfg.pixel_branch
                self.pixel = nn.Sequential(nn.Conv2d(cfg.in_channels, k, 1), nn.GELU(), nn.Conv2d(k, k, 1), nn.GELU())
                self.pixel.requires_grad_(not cfg.pixel_branch_frozen)
                if cfg.pixel_tokens is None:
                    c_in += k
            self.grid = cfg.grid
            n_pixel = (cfg.pixel_tokens or 0) ** 2
            self.pixel_proj = nn.Linear(cfg.pixel_branch, cfg.out_dim) if n_pixel else None
            self.num_tokens = self.grid * self.grid + int(cfg.summary_token) + n_pixel
            self.out_dim = cfg.out_dim
            self.proj = nn.Linear(c_in, cfg.out_dim)
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, cfg.out_dim))
            self.norm = nn.LayerNorm(cfg.out_dim)
            self._init_weights()
            if cfg.cell_colour:  # fixed: derived from the seed, so not saved with the weights
                # drawn on the CPU from their own generator: a model built on a GPU (CUDA generator) must get
                # the same values as its checkpoint rebuilt on the CPU
                g = torch.Generator(device="cpu").manual_seed(cfg.seed)
                dev = self.proj.weight.device
                colour_w = 2.0 * torch.randn(cfg.in_channels, cfg.out_dim, generator=g, device="cpu")
                colour_b = torch.randn(cfg.out_dim, generator=g, device="cpu")
                self.register_buffer("colour_w", colour_w.to(dev), persistent=False)
                self.register_buffer("colour_b", colour_b.to(dev), persistent=False)
        self.freeze = cfg.freeze
        if self.freeze:
            self.requires_grad_(False)
            self.eval()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def train(self, mode: bool = True) -> CnnImageEncoder:
        """A frozen encoder stays in eval mode (BatchNorm statistics must not drift)."""
        return super().train(mode and not self.freeze)

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``(B, C, S, S)`` with ``S == image_size`` → ``(B, num_tokens, out_dim)``."""
        s = self.cfg.image_size
        if x.dim() != 4 or x.shape[1] != self.cfg.in_channels or x.shape[-2:] != (s, s):
            raise ValueError(
                f"cnn encoder expects (B, {self.cfg.in_channels}, {s}, {s}) pixels, got {tuple(x.shape)}"
            )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            x = x.to(self.proj.weight.dtype)
            f = self.stages(x)
            if self.pixel is not None and self.pixel_proj is None:  # (B, K, S, S) colour features, max per cell
                f = torch.cat([f, F.adaptive_max_pool2d(self.pixel(x), self.conv_grid)], dim=1)
            summary = f.amax(dim=(2, 3)).unsqueeze(1) if self.cfg.summary_token else None  # (B, 1, C)
            if self.cfg.pool_to is not None:
                f = F.adaptive_avg_pool2d(f, self.cfg.pool_to)
            tokens = f.flatten(2).transpose(1, 2)  # (B, grid*grid, C), row-major
            if summary is not None:
                tokens = torch.cat([tokens, summary], dim=1)
            tokens = self.proj(tokens)
            if self.pixel_proj is not None:  # (B, G*G, out_dim): the branch's own tokens, row-major
                g = self.cfg.pixel_tokens
                colour = F.adaptive_max_pool2d(self.pixel(x), g).flatten(2).transpose(1, 2)
                tokens = torch.cat([tokens, self.pixel_proj(colour)], dim=1)
            out = self.norm(tokens + self.pos_embed)
            if self.cfg.cell_colour:
                out = out + self._cell_colour(x)
            return out

    def _cell_colour(self, x: Tensor) -> Tensor:
        """``(B, num_tokens, out_dim)``: each grid token's fixed colour code, zero on the other tokens."""
        rgb = F.adaptive_avg_pool2d(x, self.grid).flatten(2).transpose(1, 2)  # (B, grid², C) mean colour
        code = F.gelu(rgb @ self.colour_w.to(x.dtype) + self.colour_b.to(x.dtype))
        code = (code - code.mean(-1, keepdim=True)) / (code.std(-1, keepdim=True) + 1e-5)
        return F.pad(code, (0, 0, 0, self.num_tokens - code.shape[1]))
