"""Synthetic 3D point clouds: single primitives (for classification) and scenes of primitives on a floor.

Frame and units: metres, right-handed, **z up**. In scenes the floor is the plane z = 0 centred on the
origin; a viewer stands at -y looking towards +y, so "left" is -x, "right" is +x, "in front of" is -y
(nearer the viewer) and "behind" is +y. Points are float32 ``(N, 6)``: x, y, z, r, g, b with colours in
[0, 1]. Primitives are sampled uniformly on their surfaces (area-weighted, vectorised), rotated about z
by a random yaw and jittered by Gaussian noise clipped to +-``JITTER_MAX`` metres per axis. Boxes are
axis-aligned ``[cx, cy, cz, lx, ly, lz]`` (centre and lengths along x, y, z, metres), computed exactly
from the primitive's geometry, not from its points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lamm.data.synthetic.shapes2d import PALETTE

SHAPES_3D: tuple[str, ...] = ("cube", "sphere", "cylinder", "cone", "torus", "pyramid", "capsule")
JITTER_SIGMA = 0.004
JITTER_MAX = 3 * JITTER_SIGMA
FLOOR_RGB = (0.62, 0.60, 0.56)  # a dull beige, far from every saturated palette colour
FLOOR_SHARE = 0.25  # share of a scene's points on the floor
OBJECT_SIZE = (0.3, 1.0)  # characteristic size of a single-object cloud, metres
SCENE_OBJECT_SIZE = (0.35, 0.9)
FLOOR_SIZE = (3.0, 5.0)  # floor side lengths, metres
MIN_GAP = 0.15  # minimum free space between the footprints of two scene objects, metres


@dataclass
class Primitive:
    """A primitive in its local frame: axis along z, base on z = 0, centred on the z axis, then
    turned by ``yaw`` radians about z. ``params`` are its dimensions in metres."""

    kind: str
    params: dict[str, float]
    yaw: float


@dataclass
class Object3D:
    """A placed primitive: ``center`` and ``size`` of its axis-aligned box (metres)."""

    object_id: int
    category: str
    color: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    yaw: float

    @property
    def bbox(self) -> list[float]:
        """``[cx, cy, cz, lx, ly, lz]`` in metres."""
        return [*self.center, *self.size]


@dataclass
class Scene3D:
    """A scene cloud ``points`` (N, 6) float32, ``instance`` (N,) int: index into ``objects`` or -1 for
    the floor, and the floor's side lengths ``floor_size`` (lx, ly) in metres."""

    points: np.ndarray
    instance: np.ndarray
    objects: list[Object3D]
    floor_size: tuple[float, float]


def sample_primitive(rng: np.random.Generator, kind: str, s: float) -> Primitive:
    """Random dimensions for ``kind`` with characteristic size ``s`` metres, and a random yaw.

    Proportions are kept apart so classes stay distinguishable: a capsule is slimmer and taller than a
    cylinder, a torus is flat, a cube is near-equilateral (+-15%).
    """
    u = rng.uniform
    if kind == "cube":
        p = {"a": s / 2 * u(0.85, 1.15), "b": s / 2 * u(0.85, 1.15), "c": s / 2 * u(0.85, 1.15)}
    elif kind == "sphere":
        p = {"r": s / 2}
    elif kind == "cylinder":
        p = {"r": s * u(0.3, 0.4), "h": s * u(0.9, 1.3)}
    elif kind == "cone":
        p = {"r": s * u(0.4, 0.5), "h": s * u(0.9, 1.3)}
    elif kind == "torus":
        tube = s / 2 * u(0.25, 0.32)
        p = {"R": s / 2 - tube, "r": tube}
    elif kind == "pyramid":
        p = {"a": s * u(0.4, 0.5), "h": s * u(0.8, 1.1)}
    elif kind == "capsule":
        r = s * u(0.18, 0.23)
        p = {"r": r, "h": max(s * u(1.1, 1.4), 3 * r)}
    else:
        raise ValueError(f"unknown 3D shape {kind!r}; known: {', '.join(SHAPES_3D)}")
    return Primitive(kind, {k: float(v) for k, v in p.items()}, float(u(0, 2 * math.pi)))


def surface_area(prim: Primitive) -> float:
    """Surface area in square metres."""
    p, k = prim.params, prim.kind
    if k == "cube":
        return 8 * (p["a"] * p["b"] + p["b"] * p["c"] + p["a"] * p["c"])
    if k == "sphere":
        return 4 * math.pi * p["r"] ** 2
    if k == "cylinder":
        return 2 * math.pi * p["r"] * (p["h"] + p["r"])
    if k == "cone":
        return math.pi * p["r"] * (math.hypot(p["r"], p["h"]) + p["r"])
    if k == "torus":
        return 4 * math.pi**2 * p["R"] * p["r"]
    if k == "pyramid":
        return 4 * p["a"] ** 2 + 4 * p["a"] * math.hypot(p["h"], p["a"])
    return 2 * math.pi * p["r"] * (p["h"] - 2 * p["r"]) + 4 * math.pi * p["r"] ** 2  # capsule


def box_size(prim: Primitive) -> tuple[float, float, float]:
    """Exact lengths (lx, ly, lz) of the axis-aligned box of the turned primitive."""
    p, k = prim.params, prim.kind
    c, s = abs(math.cos(prim.yaw)), abs(math.sin(prim.yaw))
    if k == "cube":
        return 2 * (p["a"] * c + p["b"] * s), 2 * (p["a"] * s + p["b"] * c), 2 * p["c"]
    if k == "pyramid":  # the apex is on the axis, so the base corners bound x and y
        return 2 * p["a"] * (c + s), 2 * p["a"] * (c + s), p["h"]
    if k == "sphere":
        return 2 * p["r"], 2 * p["r"], 2 * p["r"]
    if k == "torus":
        return 2 * (p["R"] + p["r"]), 2 * (p["R"] + p["r"]), 2 * p["r"]
    return 2 * p["r"], 2 * p["r"], p["h"]  # cylinder, cone, capsule: symmetric about z


def _split(rng: np.random.Generator, n: int, areas: list[float]) -> list[int]:
    a = np.asarray(areas, dtype=np.float64)
    return [int(v) for v in rng.multinomial(n, a / a.sum())]


def _disk(rng, n, r, z) -> np.ndarray:
    rad, th = r * np.sqrt(rng.random(n)), rng.uniform(0, 2 * math.pi, n)
    return np.stack([rad * np.cos(th), rad * np.sin(th), np.full(n, z)], axis=1)


def _tube(rng, n, r, z0, z1) -> np.ndarray:
    th = rng.uniform(0, 2 * math.pi, n)
    return np.stack([r * np.cos(th), r * np.sin(th), rng.uniform(z0, z1, n)], axis=1)


def _sphere_cap(rng, n, r, zc, sign=0) -> np.ndarray:
    """Points on a sphere of radius ``r`` centred on (0, 0, zc); ``sign`` +1/-1 keeps one hemisphere."""
    v = rng.normal(size=(n, 3))
    v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    if sign:
        v[:, 2] = sign * np.abs(v[:, 2])
    return v * r + np.array([0.0, 0.0, zc])


def _triangle(rng, n, a, b, c) -> np.ndarray:
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1  # reflect into the triangle: uniform without rejection
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    a, b, c = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


def _torus(rng, n, big, small) -> np.ndarray:
    # The area element is proportional to (R + r cos v); rejection keeps the density uniform.
    chunks, have = [], 0
    while have < n:
        m = 2 * (n - have) + 16
        uu, vv, w = rng.uniform(0, 2 * math.pi, m), rng.uniform(0, 2 * math.pi, m), rng.random(m)
        keep = w < (big + small * np.cos(vv)) / (big + small)
        uu, vv = uu[keep], vv[keep]
        ring = big + small * np.cos(vv)
        chunks.append(np.stack([ring * np.cos(uu), ring * np.sin(uu), small + small * np.sin(vv)], axis=1))
        have += len(uu)
    return np.concatenate(chunks)[:n]


def sample_surface(prim: Primitive, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` points (float64, metres) uniform on the surface of ``prim`` in its local frame (base on
    z = 0, axis = z), turned by its yaw; no jitter."""
    p, k = prim.params, prim.kind
    if k == "cube":
        half = np.array([p["a"], p["b"], p["c"]])
        axis = rng.choice(3, size=n, p=np.array([p["b"] * p["c"], p["a"] * p["c"], p["a"] * p["b"]])
                          / (p["b"] * p["c"] + p["a"] * p["c"] + p["a"] * p["b"]))
        pts = rng.uniform(-1, 1, size=(n, 3)) * half
        pts[np.arange(n), axis] = np.where(rng.random(n) < 0.5, -1.0, 1.0) * half[axis]
        pts[:, 2] += p["c"]
    elif k == "sphere":
        pts = _sphere_cap(rng, n, p["r"], p["r"])
    elif k == "cylinder":
        r, h = p["r"], p["h"]
        n_side, n_bot, n_top = _split(rng, n, [2 * math.pi * r * h, math.pi * r * r, math.pi * r * r])
        pts = np.concatenate([_tube(rng, n_side, r, 0, h), _disk(rng, n_bot, r, 0), _disk(rng, n_top, r, h)])
    elif k == "cone":
        r, h = p["r"], p["h"]
        n_side, n_bot = _split(rng, n, [math.pi * r * math.hypot(r, h), math.pi * r * r])
        t = np.sqrt(rng.random(n_side))  # distance from the apex grows as sqrt for uniform area
        th = rng.uniform(0, 2 * math.pi, n_side)
        side = np.stack([r * t * np.cos(th), r * t * np.sin(th), h * (1 - t)], axis=1)
        pts = np.concatenate([side, _disk(rng, n_bot, r, 0)])
    elif k == "torus":
        pts = _torus(rng, n, p["R"], p["r"])
    elif k == "pyramid":
        a, h = p["a"], p["h"]
        corners = [(a, a, 0), (-a, a, 0), (-a, -a, 0), (a, -a, 0)]
        counts = _split(rng, n, [4 * a * a] + [a * math.hypot(h, a)] * 4)
        parts = [np.concatenate([_triangle(rng, counts[0] // 2, corners[0], corners[1], corners[2]),
                                 _triangle(rng, counts[0] - counts[0] // 2, corners[0], corners[2], corners[3])])]
        parts += [_triangle(rng, counts[i + 1], corners[i], corners[(i + 1) % 4], (0, 0, h)) for i in range(4)]
        pts = np.concatenate(parts)
    elif k == "capsule":
        r, h = p["r"], p["h"]
        n_side, n_bot, n_top = _split(rng, n, [2 * math.pi * r * (h - 2 * r), 2 * math.pi * r * r,
                                               2 * math.pi * r * r])
        pts = np.concatenate([_tube(rng, n_side, r, r, h - r), _sphere_cap(rng, n_bot, r, r, -1),
                              _sphere_cap(rng, n_top, r, h - r, +1)])
    else:
        raise ValueError(f"unknown 3D shape {k!r}")
    c, s = math.cos(prim.yaw), math.sin(prim.yaw)
    x, y = pts[:, 0].copy(), pts[:, 1].copy()
    pts[:, 0], pts[:, 1] = c * x - s * y, s * x + c * y
    return pts


def jitter(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per-axis Gaussian noise (sigma ``JITTER_SIGMA``), clipped so no point strays beyond ``JITTER_MAX``."""
    return np.clip(rng.normal(0.0, JITTER_SIGMA, size=(n, 3)), -JITTER_MAX, JITTER_MAX)


def _rgb(color: str) -> np.ndarray:
    return np.asarray(PALETTE[color], dtype=np.float64) / 255.0


def sample_object_cloud(
    rng: np.random.Generator, n_points: int = 1024, kind: str | None = None
) -> tuple[np.ndarray, Object3D]:
    """One primitive of class ``kind`` (None: a random one) with a random size (``OBJECT_SIZE``, metres),
    yaw and palette colour.

    Returns ``(points, obj)``: float32 ``(n_points, 6)`` xyz (metres, z up, the box centre at the origin)
    + rgb in [0, 1], and its annotation (box centred on the origin). Clouds are not normalised to the
    unit sphere: size is part of the data, and loaders normalise if their encoder needs it.
    """
    kind = kind or SHAPES_3D[int(rng.integers(len(SHAPES_3D)))]
    color = list(PALETTE)[int(rng.integers(len(PALETTE)))]
    prim = sample_primitive(rng, kind, float(rng.uniform(*OBJECT_SIZE)))
    size = tuple(round(v, 4) for v in box_size(prim))
    xyz = sample_surface(prim, rng, n_points)
    xyz[:, 2] -= prim_height(prim) / 2
    xyz += jitter(rng, n_points)
    pts = np.concatenate([xyz, np.broadcast_to(_rgb(color), (n_points, 3))], axis=1).astype(np.float32)
    return pts, Object3D(0, kind, color, (0.0, 0.0, 0.0), size, round(prim.yaw, 4))


def prim_height(prim: Primitive) -> float:
    """Height (length along z) of the primitive, metres."""
    return box_size(prim)[2]


def sample_scene_3d(rng: np.random.Generator, n_points: int = 4096, max_objects: int = 4) -> Scene3D:
    """A floor (``FLOOR_SIZE`` metres a side, z = 0, centred on the origin) with 2..``max_objects``
    primitives standing on it, footprints at least ``MIN_GAP`` apart.

    Classes and colours come from small per-scene pools, so repeated classes and colours are common and
    referring expressions sometimes need a spatial relation. An object that finds no free spot is left
    out. ``n_points`` are split: ``FLOOR_SHARE`` on the floor, the rest between objects in proportion
    to the square root of their surface area (so small objects still get enough points). Point order is
    shuffled; ``instance`` says which object each point belongs to.
    """
    floor = tuple(float(v) for v in rng.uniform(*FLOOR_SIZE, size=2))
    n_obj = int(rng.integers(min(2, max_objects), max_objects + 1))
    kind_pool = rng.choice(len(SHAPES_3D), size=int(rng.integers(2, 4)), replace=False)
    color_pool = rng.choice(len(PALETTE), size=int(rng.integers(2, 4)), replace=False)
    prims: list[Primitive] = []
    objects: list[Object3D] = []
    for _ in range(n_obj):
        kind = SHAPES_3D[int(kind_pool[rng.integers(len(kind_pool))])]
        color = list(PALETTE)[int(color_pool[rng.integers(len(color_pool))])]
        prim = sample_primitive(rng, kind, float(rng.uniform(*SCENE_OBJECT_SIZE)))
        lx, ly, lz = box_size(prim)
        foot = math.hypot(lx, ly) / 2
        for _try in range(50):
            cx = rng.uniform(-floor[0] / 2 + foot, floor[0] / 2 - foot)
            cy = rng.uniform(-floor[1] / 2 + foot, floor[1] / 2 - foot)
            if all(math.hypot(cx - o.center[0], cy - o.center[1]) >= foot + math.hypot(*o.size[:2]) / 2 + MIN_GAP
                   for o in objects):
                break
        else:
            continue
        # rounded once here so the box written to JSON, to .npy and used for the points is the same
        cx, cy = round(float(cx), 4), round(float(cy), 4)
        objects.append(Object3D(len(objects), kind, color, (cx, cy, round(lz / 2, 4)),
                                (round(lx, 4), round(ly, 4), round(lz, 4)), round(prim.yaw, 4)))
        prims.append(prim)

    n_floor = round(FLOOR_SHARE * n_points)
    weights = [math.sqrt(surface_area(p)) for p in prims]
    counts = _split_even(n_points - n_floor, weights)
    chunks, inst = [], []
    fl = np.zeros((n_floor, 6))
    fl[:, 0] = rng.uniform(-floor[0] / 2, floor[0] / 2, n_floor)
    fl[:, 1] = rng.uniform(-floor[1] / 2, floor[1] / 2, n_floor)
    fl[:, 2] = 0.0
    fl[:, :3] += jitter(rng, n_floor)
    fl[:, 3:] = np.clip(np.asarray(FLOOR_RGB) + rng.normal(0, 0.02, size=(n_floor, 3)), 0, 1)
    chunks.append(fl)
    inst.append(np.full(n_floor, -1))
    for i, (prim, obj, k) in enumerate(zip(prims, objects, counts)):
        xyz = sample_surface(prim, rng, k) + np.array([obj.center[0], obj.center[1], 0.0]) + jitter(rng, k)
        chunks.append(np.concatenate([xyz, np.broadcast_to(_rgb(obj.color), (k, 3))], axis=1))
        inst.append(np.full(k, i))
    order = rng.permutation(n_points)
    points = np.concatenate(chunks)[order].astype(np.float32)
    return Scene3D(points, np.concatenate(inst)[order], objects, (round(floor[0], 4), round(floor[1], 4)))


def _split_even(n: int, weights: list[float]) -> list[int]:
    """Deterministic largest-remainder split of ``n`` in proportion to ``weights``."""
    if not weights:
        return []
    w = np.asarray(weights, dtype=np.float64) / sum(weights) * n
    base = np.floor(w).astype(int)
    for i in np.argsort(-(w - base), kind="stable")[: n - int(base.sum())]:
        base[i] += 1
    return [int(v) for v in base]
