"""Seeded corruptions of images, point clouds and question texts (the robustness desideratum).

LAMM shipped corrupted copies of its test sets without the code that made them; these are the
corruptions, deterministic per sample and severity. Each is a :class:`Corruption` in the registry
:data:`CORRUPTIONS`: a name, a modality (``image``, ``pcl``, ``text``), a table of five parameters
(severity 1 = mild to 5 = strong) and a function ``(input, parameter, rng) -> output``.

Every random choice comes from ``np.random.default_rng(stable_hash(seed, sample_id, name, severity))``
(:func:`corruption_rng`), so the same (seed, sample id, name, severity) gives identical output bytes on
any machine and in any order of evaluation. Corruptions marked ``stochastic=False`` (blur, JPEG,
brightness, contrast, pixelate) use no randomness: their output depends on the severity only.

=================  =====  =========================================================================
name               input  severity 1..5 parameter
=================  =====  =========================================================================
gaussian_noise     image  σ of additive N(0, σ²) per channel, 0–1 scale: .04 .08 .12 .18 .26
salt_pepper        image  share of pixels set to black or white (50/50): .01 .03 .06 .10 .17
gaussian_blur      image  σ in pixels at a 224-pixel short side (scaled to the image): 1 2 3 4 6
jpeg               image  JPEG quality of a re-encoding: 25 18 15 10 7
brightness         image  added to every channel, 0–1 scale, clipped: .1 .2 .3 .4 .5
contrast           image  factor on the deviation from the per-channel mean: .4 .3 .2 .1 .05
pixelate           image  downscale factor (box filter, then nearest upscaling): .6 .5 .4 .3 .25
occlusion          image  share of the area covered by a mid-grey rectangle (seeded place and aspect
                          ratio 1:2–2:1): .05 .10 .20 .30 .40
jitter             pcl    σ of xyz noise as a share of the bounding-box diagonal: .003 .006 .009 .012 .015
dropout            pcl    share of points dropped (order kept; at least :data:`DROPOUT_MIN_POINTS`
                          kept): .25 .375 .5 .625 .75
rotation           pcl    largest |angle| about the vertical z axis through the bounding-box centre,
                          degrees; the angle is drawn from ±[max/2, max]: 15 30 45 90 180
outliers           pcl    points added uniformly in the bounding box, share of N (at least 1;
                          colour uniform in 0–1 for xyz+rgb clouds): .01 .02 .05 .10 .20
typos              text   share of words (>= 3 letters) given one swap/deletion/insertion: .1 .2 .3 .45 .6
word_swap          text   share of adjacent word pairs swapped: .1 .2 .3 .4 .5
distractor         text   irrelevant sentences put before the question: 1 2 3 4 5
=================  =====  =========================================================================

Images: a PIL image in (any mode; converted to RGB), an RGB image of the same size out. Point clouds:
float32 ``(N, 3)`` xyz or ``(N, 6)`` xyz+rgb in, the same layout out (``dropout`` and ``outliers``
change N); colours are never changed, except the colours of the points ``outliers`` adds. Text: only
the stem of a multiple-choice question, never its options (``lamm.bench.desiderata.text_corruptions``).
``rotation`` moves the cloud out of the frame of 3D box annotations: on detection and grounding it
measures sensitivity to the frame as much as to the corruption.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from lamm.bench.desiderata import text_corruptions as text
from lamm.bench.scenarios.base import stable_hash
from lamm.registry import Registry

MODALITIES = ("image", "pcl", "text")
#: ``dropout`` never leaves fewer points than this (or all of them, for a smaller cloud)
DROPOUT_MIN_POINTS = 64


@dataclass(frozen=True)
class Corruption:
    """A named corruption: ``levels[severity - 1]`` is the parameter ``fn(input, parameter, rng)`` gets."""

    name: str
    modality: str
    levels: tuple[float, ...]
    fn: Callable[[Any, float, np.random.Generator], Any]
    stochastic: bool = True
    description: str = ""

    def level(self, severity: int) -> float:
        """The parameter of ``severity`` (1–5)."""
        if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
            raise ValueError(f"corruption {self.name!r}: severity must be an integer 1–5, got {severity!r}")
        return self.levels[int(severity) - 1]


#: every corruption by name (did-you-mean errors for unknown names)
CORRUPTIONS: Registry[Corruption] = Registry("corruption")


def corruption(name: str, modality: str, levels: tuple[float, ...], *, stochastic: bool = True,
               description: str = "") -> Callable:
    """Decorator: register ``fn(input, parameter, rng)`` as corruption ``name``."""

    def deco(fn: Callable) -> Callable:
        assert modality in MODALITIES and len(levels) == 5
        CORRUPTIONS.add(name, Corruption(name, modality, tuple(levels), fn, stochastic,
                                         description or (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return deco


def corruption_rng(seed: int, sample_id: str, name: str, severity: int) -> np.random.Generator:
    """The generator of every random choice of one corruption of one sample."""
    return np.random.default_rng(stable_hash(seed, sample_id, name, severity))


def corruptions_for(modality: str) -> list[str]:
    """Names of the corruptions that fit samples of ``modality`` (``image`` / ``pcl``): its own and text."""
    return [n for n in CORRUPTIONS if CORRUPTIONS.get(n).modality in (modality, "text")]


def apply_corruption(name: str, x: Any, severity: int, *, seed: int, sample_id: str) -> Any:
    """Corrupt ``x`` (a PIL image, a float32 ``(N, 3|6)`` array or a str) with corruption ``name``.

    Deterministic: the same (seed, sample id, name, severity) → identical output. Raises ``KeyError``
    (did-you-mean) for an unknown name and ``TypeError`` / ``ValueError`` for an input of the wrong kind.
    """
    c = CORRUPTIONS.get(name)
    level = c.level(severity)
    rng = corruption_rng(seed, str(sample_id), name, int(severity))
    if c.modality == "image":
        if not isinstance(x, Image.Image):
            raise TypeError(f"corruption {name!r} corrupts images (PIL); got {type(x).__name__}")
        return c.fn(x.convert("RGB") if x.mode != "RGB" else x, level, rng)
    if c.modality == "pcl":
        arr = np.asarray(x)
        if arr.ndim != 2 or arr.shape[1] not in (3, 6) or arr.shape[0] == 0:
            raise ValueError(f"corruption {name!r} corrupts point clouds (N, 3|6); got shape {arr.shape}")
        return np.ascontiguousarray(c.fn(arr.astype(np.float64), level, rng), dtype=np.float32)
    if not isinstance(x, str):
        raise TypeError(f"corruption {name!r} corrupts question text; got {type(x).__name__}")
    return c.fn(x, level, rng)


@dataclass(frozen=True)
class CorruptionTransform:
    """``MediaRef.transform`` of a corrupted copy: applies corruption ``name`` to the media it is given.

    A picklable value (not a closure), so refs can cross process boundaries; :attr:`variant` is the
    ``MediaRef.variant`` that keys the copy apart from its clean file in every cache.
    """

    name: str
    severity: int
    seed: int
    sample_id: str

    @property
    def variant(self) -> str:
        """``name@severity#seed/sample_id``, e.g. ``gaussian_noise@3#0/img_17``."""
        return f"{self.name}@{self.severity}#{self.seed}/{self.sample_id}"

    def __call__(self, media: Any) -> Any:
        return apply_corruption(self.name, media, self.severity, seed=self.seed, sample_id=self.sample_id)


# ---------------------------------------------------------------------------------------------- images
def _unit(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0


def _image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8))


@corruption("gaussian_noise", "image", (0.04, 0.08, 0.12, 0.18, 0.26))
def gaussian_noise(img: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Additive Gaussian noise, independent per pixel and channel."""
    a = _unit(img)
    return _image(a + rng.normal(0.0, sigma, a.shape))


@corruption("salt_pepper", "image", (0.01, 0.03, 0.06, 0.10, 0.17))
def salt_pepper(img: Image.Image, share: float, rng: np.random.Generator) -> Image.Image:
    """Impulse noise: a share of the pixels turned black or white (all channels)."""
    a = _unit(img)
    hit = rng.random(a.shape[:2]) < share
    white = rng.random(a.shape[:2]) < 0.5
    a[hit & white] = 1.0
    a[hit & ~white] = 0.0
    return _image(a)


@corruption("gaussian_blur", "image", (1.0, 2.0, 3.0, 4.0, 6.0), stochastic=False)
def gaussian_blur(img: Image.Image, sigma224: float, rng: np.random.Generator) -> Image.Image:
    """Gaussian blur; σ is given at a 224-pixel short side, so the blur is the same share of any image."""
    return img.filter(ImageFilter.GaussianBlur(sigma224 * min(img.size) / 224.0))


@corruption("jpeg", "image", (25, 18, 15, 10, 7), stochastic=False)
def jpeg(img: Image.Image, quality: float, rng: np.random.Generator) -> Image.Image:
    """JPEG compression artefacts: re-encoded at a low quality and decoded."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


@corruption("brightness", "image", (0.1, 0.2, 0.3, 0.4, 0.5), stochastic=False)
def brightness(img: Image.Image, delta: float, rng: np.random.Generator) -> Image.Image:
    """Brighter: a constant added to every channel (clipped at white)."""
    return _image(_unit(img) + delta)


@corruption("contrast", "image", (0.4, 0.3, 0.2, 0.1, 0.05), stochastic=False)
def contrast(img: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Lower contrast: deviations from each channel's mean scaled by a factor below 1."""
    a = _unit(img)
    mean = a.mean(axis=(0, 1), keepdims=True)
    return _image((a - mean) * factor + mean)


@corruption("pixelate", "image", (0.6, 0.5, 0.4, 0.3, 0.25), stochastic=False)
def pixelate(img: Image.Image, factor: float, rng: np.random.Generator) -> Image.Image:
    """Pixelation: box-downscaled by a factor, then nearest-neighbour upscaled to the original size."""
    w, h = img.size
    small = img.resize((max(1, int(w * factor)), max(1, int(h * factor))), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.NEAREST)


@corruption("occlusion", "image", (0.05, 0.10, 0.20, 0.30, 0.40))
def occlusion(img: Image.Image, share: float, rng: np.random.Generator) -> Image.Image:
    """A mid-grey rectangle covering a share of the image, at a seeded place and aspect ratio (1:2–2:1)."""
    w, h = img.size
    aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))  # width / height
    area = share * w * h
    rw = int(np.clip(round(math.sqrt(area * aspect)), 1, w))
    rh = int(np.clip(round(area / rw), 1, h))
    x0, y0 = int(rng.integers(0, w - rw + 1)), int(rng.integers(0, h - rh + 1))
    a = np.array(img, dtype=np.uint8)
    a[y0:y0 + rh, x0:x0 + rw] = 128  # mid-grey: no colour of its own for the model to name
    return Image.fromarray(a)


# ---------------------------------------------------------------------------------------- point clouds
def _extent(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return xyz.min(axis=0), xyz.max(axis=0)


@corruption("jitter", "pcl", (0.003, 0.006, 0.009, 0.012, 0.015))
def jitter(pts: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian xyz noise; σ is a share of the bounding-box diagonal (the cloud's own scale)."""
    lo, hi = _extent(pts[:, :3])
    sigma = share * max(float(np.linalg.norm(hi - lo)), 1e-6)  # a one-point cloud still moves
    out = pts.copy()
    out[:, :3] += rng.normal(0.0, sigma, (len(pts), 3))
    return out


@corruption("dropout", "pcl", (0.25, 0.375, 0.5, 0.625, 0.75))
def dropout(pts: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A share of the points removed at random, the rest in their order; keeps at least
    :data:`DROPOUT_MIN_POINTS` points (all of a smaller cloud)."""
    n = len(pts)
    keep = max(math.ceil(n * (1.0 - share)), min(n, DROPOUT_MIN_POINTS))
    idx = np.sort(rng.choice(n, size=keep, replace=False))
    return pts[idx]


@corruption("rotation", "pcl", (15.0, 30.0, 45.0, 90.0, 180.0))
def rotation(pts: np.ndarray, max_deg: float, rng: np.random.Generator) -> np.ndarray:
    """A rotation about the vertical z axis through the bounding-box centre by a seeded angle of
    magnitude in [max/2, max] degrees and random sign (never a near-identity rotation)."""
    angle = math.radians(rng.uniform(max_deg / 2.0, max_deg)) * (1.0 if rng.random() < 0.5 else -1.0)
    c, s = math.cos(angle), math.sin(angle)
    lo, hi = _extent(pts[:, :3])
    centre = (lo + hi) / 2.0
    out = pts.copy()
    xy = pts[:, :2] - centre[:2]
    out[:, 0] = c * xy[:, 0] - s * xy[:, 1] + centre[0]
    out[:, 1] = s * xy[:, 0] + c * xy[:, 1] + centre[1]
    return out


@corruption("outliers", "pcl", (0.01, 0.02, 0.05, 0.10, 0.20))
def outliers(pts: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Points added uniformly in the bounding box (a share of N, at least one), appended after the
    cloud; for xyz+rgb clouds their colours are uniform in 0–1 (the only colours any corruption sets)."""
    k = max(1, round(share * len(pts)))
    lo, hi = _extent(pts[:, :3])
    extra = rng.uniform(lo, hi, (k, 3))
    if pts.shape[1] == 6:
        extra = np.concatenate([extra, rng.uniform(0.0, 1.0, (k, 3))], axis=1)
    return np.concatenate([pts, extra], axis=0)


# ------------------------------------------------------------------------------------------------ text
corruption("typos", "text", (0.1, 0.2, 0.3, 0.45, 0.6))(text.typos)
corruption("word_swap", "text", (0.1, 0.2, 0.3, 0.4, 0.5))(text.word_swap)
corruption("distractor", "text", (1, 2, 3, 4, 5))(text.distractor)


def describe_corruptions() -> list[dict[str, Any]]:
    """One row per corruption (name, modality, stochastic, levels, description), for listings and docs."""
    return [{"name": c.name, "modality": c.modality, "stochastic": c.stochastic, "levels": list(c.levels),
             "description": c.description} for c in (CORRUPTIONS.get(n) for n in CORRUPTIONS)]
