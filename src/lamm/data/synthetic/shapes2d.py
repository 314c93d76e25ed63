"""Synthetic 2D scenes: saturated coloured primitives on light backgrounds, with exact annotations.

Frame: pixels, origin at the image's top-left corner, x to the right, y down. Boxes follow COCO: a pixel
``(col, row)`` covers ``[col, col+1) x [row, row+1)``, so a box ``[x, y, w, h]`` spans the pixel columns
``x .. x+w-1`` and rows ``y .. y+h-1``; a keypoint ``(kx, ky)`` lies in pixel ``(int(kx), int(ky))``.

Every scene has one *dominant* shape (by construction at least ~2.5x the area of any other shape) and
0 .. ``max_objects - 1`` small distractors, all separated by a gap of at least ``MARGIN_PX`` pixels, plus
optionally one or two dark words for OCR. Shapes are drawn without anti-aliasing so that every pixel
of a shape has exactly its palette colour and boxes can be read off the pixels exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES_2D: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross", "diamond")

# Saturated and far apart in hue; every colour has a channel <= 60, so none can vanish into a
# background, whose channels are all >= 200.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 130, 0),
    "yellow": (235, 200, 0),
    "green": (30, 160, 50),
    "cyan": (0, 180, 200),
    "blue": (30, 70, 220),
    "purple": (140, 40, 180),
}
TEXT_COLOR = (25, 25, 25)  # not a palette colour: text is never mistaken for a shape's colour

WORDS: tuple[str, ...] = (
    "CAT", "DOG", "SUN", "MAP", "BUS", "CAR", "BOX", "PEN", "CUP", "KEY", "ICE", "TEA",
    "BOOK", "TREE", "MILK", "FISH", "BIRD", "CAKE", "LAMP", "ROAD", "DOOR", "RAIN", "SHOP", "STOP",
    "OPEN", "WIND", "GOLD", "LEAF", "SHIP", "MOON", "BELL", "FARM", "HOME", "PARK", "NEST", "WAVE",
    "APPLE", "BREAD", "CLOCK", "HOUSE", "LIGHT", "MUSIC", "PLANT", "RIVER", "SMILE", "TRAIN",
)

# Area of each outline in units of r**2 (r = the size parameter of shape_outline). Shapes are sized by
# *area*, so "the largest shape" means the one with the most pixels whatever its class.
AREA_FACTOR: dict[str, float] = {
    "circle": math.pi,
    "square": 4.0,
    "triangle": 3 * math.sqrt(3) / 4,
    "star": 5 * 0.5 * math.sin(math.pi / 5),
    "hexagon": 3 * math.sqrt(3) / 2,
    "cross": 2 * (2 * 0.68) - 0.68**2,
    "diamond": 2 * 0.7,
}
MAIN_AREA = (0.09, 0.15)  # dominant shape, as a fraction of the image area
DISTRACTOR_AREA = (0.018, 0.035)  # ratio >= 2.5 to the smallest dominant shape
MARGIN_PX = 2  # minimum gap between any two shapes or words
WORD_PROB = 0.4  # share of images that carry words (when words are enabled)
PLACE_TRIES = 40


@dataclass
class Object2D:
    """One rasterised shape: ``bbox`` [x, y, w, h] in pixels (COCO, tight on its pixels), ``area`` in
    pixels, ``keypoint`` its centre (kx, ky) in pixels, ``dominant`` True for the largest shape."""

    category: str
    color: str
    bbox: tuple[int, int, int, int]
    area: int
    keypoint: tuple[float, float]
    dominant: bool


@dataclass
class Scene2D:
    """A rendered RGB image, its shapes in reading order (top-to-bottom, then left-to-right), and the
    words drawn on it (reading order) with their ink boxes [x, y, w, h]."""

    image: Image.Image
    objects: list[Object2D]
    words: list[str]
    word_boxes: list[tuple[int, int, int, int]]
    background: str

    @property
    def dominant(self) -> Object2D:
        return next(o for o in self.objects if o.dominant)


def plural(name: str) -> str:
    """English plural of a shape or object name: ``cross`` -> ``crosses``, ``cube`` -> ``cubes``."""
    return name + ("es" if name.endswith(("s", "x", "sh", "ch")) else "s")


def shape_outline(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Vertices of ``kind`` centred on ``(cx, cy)`` with size ``r`` (pixels, PIL frame); None for circle.

    ``r`` is the circumradius for triangle/star/hexagon, the half side for square, the half arm length
    for cross, the half height for diamond (which is 0.7 as wide, so it never looks like a square).
    The centre ``(cx, cy)`` is inside every shape, so it serves as the keypoint.
    """
    if kind == "circle":
        return None
    if kind == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if kind in ("triangle", "hexagon", "star"):
        n, radii = {"triangle": (3, (r,)), "hexagon": (6, (r,)), "star": (10, (r, 0.5 * r))}[kind]
        return [
            (cx + radii[i % len(radii)] * math.sin(2 * math.pi * i / n),
             cy - radii[i % len(radii)] * math.cos(2 * math.pi * i / n))
            for i in range(n)
        ]
    if kind == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if kind == "cross":
        t = 0.34 * r
        pts = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t),
               (-r, -t), (-t, -t)]
        return [(cx + x, cy + y) for x, y in pts]
    raise ValueError(f"unknown 2D shape {kind!r}; known: {', '.join(SHAPES_2D)}")


def rasterize(kind: str, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """Boolean mask ``(size, size)`` of the pixels ``kind`` covers (PIL rasterisation, no anti-aliasing)."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    outline = shape_outline(kind, cx, cy, r)
    if outline is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.polygon(outline, fill=255)
    return np.asarray(canvas) > 0


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight COCO box [x, y, w, h] of a non-empty boolean mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


@lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    # The bitmap default font renders identically everywhere; FreeType output can change between
    # library versions, which would break byte-identical regeneration.
    return ImageFont.load_default_imagefont()


def word_scale(size: int) -> int:
    """Integer up-scaling of the 6x11 px bitmap font for an image of ``size`` pixels (1 at 64 px,
    2 at 112-160 px, 3 at 224 px), so words stay legible at every resolution."""
    return max(1, round(size / 72))


@lru_cache(maxsize=256)
def render_word(word: str, scale: int) -> np.ndarray:
    """Boolean ink mask of ``word`` in the bitmap font, cropped to its ink, scaled by ``scale``."""
    font = _font()
    _, _, right, bottom = font.getbbox(word)
    canvas = Image.new("L", (right + 2, bottom + 2), 0)
    ImageDraw.Draw(canvas).text((1, 1), word, font=font, fill=255)
    ink = np.asarray(canvas) > 0
    x, y, w, h = mask_bbox(ink)
    ink = ink[y:y + h, x:x + w]
    ink = np.repeat(np.repeat(ink, scale, axis=0), scale, axis=1)
    ink.flags.writeable = False  # cached and shared between calls
    return ink


def _dilate(mask: np.ndarray, m: int) -> np.ndarray:
    """Binary dilation by a (2m+1)^2 square (numpy only; no scipy)."""
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
                mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _background(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """A light background (all channels >= 200): solid, a gentle linear gradient, or faint noise."""
    kind = ("solid", "gradient", "noise")[int(rng.integers(3))]
    base = rng.integers(215, 251, size=3).astype(np.float64)
    if kind == "solid":
        img = np.broadcast_to(base, (size, size, 3))
    elif kind == "gradient":
        other = rng.integers(215, 251, size=3).astype(np.float64)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        img = base + t[..., None] * (other - base)
    else:
        img = base + rng.normal(0.0, 5.0, size=(size, size, 3))
    return np.clip(np.rint(img), 200, 255).astype(np.uint8), kind


def _place_shape(rng, kind, area_px, size, blocked) -> tuple[np.ndarray, float, float] | None:
    """Try random centres until the shape fits inside the image without touching ``blocked``."""
    r = math.sqrt(area_px / AREA_FACTOR[kind])
    lo, hi = r + MARGIN_PX, size - 1 - r - MARGIN_PX
    if hi <= lo:
        return None
    for _ in range(PLACE_TRIES):
        cx, cy = rng.uniform(lo, hi, size=2)
        mask = rasterize(kind, cx, cy, r, size)
        if mask.any() and not (mask & blocked).any():
            return mask, float(cx), float(cy)
    return None


def _place_word(rng, word, size, blocked) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    ink = render_word(word, word_scale(size))
    h, w = ink.shape
    if w + 2 * MARGIN_PX >= size or h + 2 * MARGIN_PX >= size:
        return None
    for _ in range(PLACE_TRIES):
        x = int(rng.integers(MARGIN_PX, size - w - MARGIN_PX))
        y = int(rng.integers(MARGIN_PX, size - h - MARGIN_PX))
        if not blocked[y:y + h, x:x + w].any():
            mask = np.zeros((size, size), dtype=bool)
            mask[y:y + h, x:x + w] = ink
            return mask, mask_bbox(mask)
    return None


def sample_scene_2d(
    rng: np.random.Generator, size: int = 64, max_objects: int = 5, words: bool = True,
    main_kind: str | None = None,
) -> Scene2D:
    """Sample and render one scene of ``size`` x ``size`` RGB pixels.

    One dominant shape (``MAIN_AREA`` of the image), then with probability ``WORD_PROB`` one or two
    words, then up to ``max_objects - 1`` distractors (``DISTRACTOR_AREA``) whose classes come from a
    small per-image pool so that repeated classes (useful for counting) are common. Colours are
    distinct within an image (``max_objects <= len(PALETTE)``), so "the <colour> object" is unique.
    ``main_kind`` fixes the dominant class (the writer cycles through classes to balance them); None
    draws it. A distractor or word that finds no free spot in ``PLACE_TRIES`` tries is left out; the
    annotations always describe exactly what was drawn.
    """
    if not 1 <= max_objects <= len(PALETTE):
        raise ValueError(f"max_objects must be in 1..{len(PALETTE)}, got {max_objects}")
    if main_kind is not None and main_kind not in SHAPES_2D:
        raise ValueError(f"unknown 2D shape {main_kind!r}; known: {', '.join(SHAPES_2D)}")
    pixels, bg_kind = _background(rng, size)
    pixels = pixels.copy()
    blocked = np.zeros((size, size), dtype=bool)
    colors = [list(PALETTE)[i] for i in rng.permutation(len(PALETTE))]
    n_distractors = int(rng.integers(0, max_objects))
    pool = rng.choice(len(SHAPES_2D), size=int(rng.integers(1, 4)), replace=False)
    kinds = [main_kind or SHAPES_2D[int(rng.integers(len(SHAPES_2D)))]]
    kinds += [SHAPES_2D[int(pool[rng.integers(len(pool))])] for _ in range(n_distractors)]
    areas = [rng.uniform(*MAIN_AREA) * size * size]
    areas += [rng.uniform(*DISTRACTOR_AREA) * size * size for _ in range(n_distractors)]
    chosen_words: list[str] = []
    if words and rng.random() < WORD_PROB:
        chosen_words = [WORDS[int(i)] for i in rng.choice(len(WORDS), size=int(rng.integers(1, 3)),
                                                          replace=False)]

    placed: list[Object2D] = []
    word_items: list[tuple[str, tuple[int, int, int, int]]] = []

    def place(i: int) -> None:
        found = _place_shape(rng, kinds[i], areas[i], size, blocked)
        if found is None:
            return
        mask, cx, cy = found
        blocked[:] |= _dilate(mask, MARGIN_PX)
        color = colors[len(placed)]
        pixels[mask] = PALETTE[color]
        # PIL puts vertex coordinate u at the centre of pixel u, i.e. at u + 0.5 in the COCO frame
        kp = (round(cx + 0.5, 2), round(cy + 0.5, 2))
        placed.append(Object2D(kinds[i], color, mask_bbox(mask), int(mask.sum()), kp, dominant=i == 0))

    place(0)  # the biggest goes first on the empty canvas, so it always fits
    for word in chosen_words:
        found = _place_word(rng, word, size, blocked)
        if found is not None:
            mask, box = found
            # the whole text rectangle plus the margin is reserved, so no shape sits between letters
            blocked[max(box[1] - MARGIN_PX, 0):box[1] + box[3] + MARGIN_PX,
                    max(box[0] - MARGIN_PX, 0):box[0] + box[2] + MARGIN_PX] = True
            pixels[mask] = TEXT_COLOR
            word_items.append((word, box))
    for i in range(1, len(kinds)):
        place(i)

    objects = sorted(placed, key=lambda o: (o.bbox[1], o.bbox[0]))
    word_items.sort(key=lambda wb: (wb[1][1], wb[1][0]))
    return Scene2D(
        image=Image.fromarray(pixels),
        objects=objects,
        words=[w for w, _ in word_items],
        word_boxes=[b for _, b in word_items],
        background=bg_kind,
    )
