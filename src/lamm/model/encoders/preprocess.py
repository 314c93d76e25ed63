"""Image and point-cloud preprocessing: the one place that turns media into encoder inputs.

Training, evaluation, chat and the server all call these functions, so what a model sees at test time
is exactly what it saw in training (LAMM's evaluation used a different image crop than its training:
a defect we reproduce only behind the explicitly named ``resize="center_crop"`` option).

Images: an RGB ``PIL.Image`` → ``(3, S, S)`` float32, normalised by mean/std. Point clouds: ``(N, 3|6)``
float array → ``(num_points, 3|6)`` float32, sampled with a generator seeded per sample.

Point-cloud frame (the contract every point encoder relies on):
  * columns 0–2 are x, y, z in the source's frame (ScanNet: the axis-aligned scene frame, metres;
    ShapeNet/Objaverse: the object frame), then optionally r, g, b;
  * ``normalize="unit_sphere"`` (object-level data, PointLLM): xyz is centred on its mean and divided
    by the largest distance from that centre, so the cloud lies in the unit ball. Statistics come from
    the whole input cloud (not the sample), so they do not depend on the seed;
    :func:`unit_sphere_transform` returns them to map boxes or points into the same frame;
  * ``normalize="none"`` (scene-level data with metric answers: 3D detection/grounding boxes in metres)
    keeps coordinates untouched so answers and inputs share one frame;
  * rgb is in 0–1: input colour whose maximum exceeds 1 is taken to be 0–255 and divided by 255.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import field_validator

from lamm.config import Config

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


# --------------------------------------------------------------------------------------------- seeds
def sample_seed(sample_id: str, base_seed: int) -> int:
    """A stable per-sample seed: the same (id, base seed) gives the same seed in every process and run.

    Uses SHA-256 (Python's ``hash`` is salted per process). Returns an int in ``[0, 2**63)``, suitable
    for ``np.random.default_rng`` and ``torch.Generator.manual_seed``.

    >>> sample_seed("scene0000_00", 0) == sample_seed("scene0000_00", 0)
    True
    >>> sample_seed("a", 0) != sample_seed("a", 1)
    True
    """
    digest = hashlib.sha256(f"{int(base_seed)}\x1f{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# -------------------------------------------------------------------------------------------- images
class ImagePreprocessConfig(Config):
    """How an image becomes a ``(3, size, size)`` tensor. Defaults: CLIP ViT-L/14 at 224 px as LAMM trained.

    ``resize``:
      * ``"squash"`` (default, LAMM training): resize the whole image to size×size, aspect not kept,
        nothing cropped away (so boxes in 0–1 image coordinates stay valid);
      * ``"center_crop"``: resize the short side to ``size`` then centre-crop (CLIPProcessor; LAMM's
        *evaluation* — a train/eval mismatch, offered only to reproduce LAMM numbers; it cuts off the
        image borders, which breaks 0–1 box answers);
      * ``"pad"``: pad to a square with the mean colour, then resize (LLaVA-1.5 "pad").
    """

    size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    resample: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"
    resize: Literal["squash", "center_crop", "pad"] = "squash"

    @field_validator("size")
    @classmethod
    def _positive_size(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("size must be a positive number of pixels")
        return v

    @field_validator("std")
    @classmethod
    def _positive_std(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in v):
            raise ValueError("std entries must be > 0")
        return v


def _resize(img: Image.Image, cfg: ImagePreprocessConfig) -> Image.Image:
    s, method = cfg.size, _RESAMPLE[cfg.resample]
    if cfg.resize == "pad":
        w, h = img.size
        side = max(w, h)
        fill = tuple(round(m * 255) for m in cfg.mean)
        canvas = Image.new("RGB", (side, side), fill)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    if cfg.resize == "center_crop":
        w, h = img.size
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        img = img.resize((nw, nh), method)
        left, top = (nw - s) // 2, (nh - s) // 2
        return img.crop((left, top, left + s, top + s))
    return img.resize((s, s), method)


def preprocess_image(image: Image.Image, cfg: ImagePreprocessConfig) -> torch.Tensor:
    """One image → ``(3, S, S)`` float32: RGB, resized per ``cfg.resize``, scaled to 0–1, then
    ``(x - mean) / std`` per channel. Grey, palette and RGBA images are converted to RGB (alpha dropped).
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"preprocess_image expects a PIL.Image, got {type(image).__name__}")
    img = _resize(image.convert("RGB"), cfg)
    arr = np.asarray(img, dtype=np.float32) / 255.0  # (S, S, 3)
    mean = np.asarray(cfg.mean, dtype=np.float32)
    std = np.asarray(cfg.std, dtype=np.float32)
    arr = (arr - mean) / std
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def preprocess_images(images: Sequence[Image.Image], cfg: ImagePreprocessConfig) -> torch.Tensor:
    """A list of PIL images → ``(B, 3, S, S)`` float32 (see :func:`preprocess_image`); ``B`` may be 0."""
    if len(images) == 0:
        return torch.empty(0, 3, cfg.size, cfg.size)
    return torch.stack([preprocess_image(im, cfg) for im in images])


# -------------------------------------------------------------------------------------- point clouds
class PointPreprocessConfig(Config):
    """How a point cloud becomes a fixed-size float32 array (see the module docstring for the frame).

    Defaults follow PointLLM (8192 points, xyz+rgb, unit sphere). LAMM's 3D scenes: ``num_points=40000``,
    ``use_color=False``, ``normalize="none"``.
    """

    num_points: int = 8192
    use_color: bool = True
    normalize: Literal["unit_sphere", "none"] = "unit_sphere"

    @field_validator("num_points")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("num_points must be > 0")
        return v

    @property
    def channels(self) -> int:
        """Channels of the output: 6 with colour, else 3."""
        return 6 if self.use_color else 3


def unit_sphere_transform(xyz: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and scale that map ``xyz`` (``(N, 3)``) into the unit ball: ``(xyz - centre) / scale``.

    ``centre`` is the mean point (shape ``(3,)``), ``scale`` the largest distance from it (1.0 for a
    cloud that is a single point, so it is never a division by zero). Apply the same map to boxes:
    centres ``(c - centre) / scale``, sizes ``l / scale``.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    centre = xyz.mean(axis=0)
    scale = float(np.sqrt(((xyz - centre) ** 2).sum(axis=1)).max()) if len(xyz) else 0.0
    return centre, (scale if scale > 0 else 1.0)


def preprocess_point_cloud(points: np.ndarray, cfg: PointPreprocessConfig, seed: int) -> np.ndarray:
    """A raw cloud → ``(cfg.num_points, 3 or 6)`` float32 (xyz, then rgb in 0–1 if ``cfg.use_color``).

    Args:
        points: ``(N, 3)`` xyz or ``(N, >=6)`` xyz+rgb(+ignored extra columns such as normals or labels).
        cfg: target size, colour, normalisation.
        seed: seeds ``np.random.default_rng``; derive it with :func:`sample_seed` from the sample id.

    Sampling: ``N >= num_points`` draws ``num_points`` distinct points without replacement; ``N <
    num_points`` keeps every point once and draws the rest with replacement. The output is in a seeded
    random order (so point 0, where farthest-point sampling starts, is a seeded random point).

    Raises:
        ValueError: wrong shape, empty cloud, non-finite values, or colour requested from an xyz-only cloud.
    """
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3 or arr.shape[1] in (4, 5):
        raise ValueError(f"point cloud must have shape (N, 3) or (N, 6+), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError("point cloud is empty (0 points)")
    if cfg.use_color and arr.shape[1] < 6:
        raise ValueError(
            f"point cloud has {arr.shape[1]} columns (xyz only) but use_color=True needs xyz+rgb; "
            "set use_color=False for this data or supply colours"
        )
    cols = arr[:, : cfg.channels].astype(np.float64)
    bad = ~np.isfinite(cols)
    if bad.any():
        raise ValueError(f"point cloud has {int(bad.any(axis=1).sum())} points with NaN/inf values")

    xyz, rgb = cols[:, :3], cols[:, 3:6]
    if cfg.normalize == "unit_sphere":
        centre, scale = unit_sphere_transform(xyz)
        xyz = (xyz - centre) / scale
    if cfg.use_color:
        # Decided on the whole cloud, not the sample, so the scale cannot flip between seeds.
        if rgb.max() > 1.0:
            rgb = rgb / 255.0
        rgb = np.clip(rgb, 0.0, 1.0)

    n, k = xyz.shape[0], cfg.num_points
    rng = np.random.default_rng(seed)
    if n >= k:
        idx = rng.choice(n, size=k, replace=False)
    else:
        idx = np.concatenate([np.arange(n), rng.integers(0, n, size=k - n)])
        rng.shuffle(idx)
    out = np.concatenate([xyz, rgb], axis=1) if cfg.use_color else xyz
    return np.ascontiguousarray(out[idx], dtype=np.float32)
