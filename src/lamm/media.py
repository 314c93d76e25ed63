"""Load images and point clouds with errors that name the file and the reason.

Contracts (DESIGN §4):

* an image is an RGB :class:`PIL.Image.Image` (any format PIL reads; palette, grey, RGBA and CMYK are
  converted to RGB, alpha composited on white);
* a point cloud is a float32 array of shape ``(N, 3)`` (xyz) or ``(N, 6)`` (xyz + rgb). Coordinates
  are kept in the file's own frame and unit (metres for ScanNet-style scenes; z up). Colours are
  returned in ``[0, 1]``: 0–255 colours (any channel above 1) are divided by 255.

Readers: ``.npy`` and ``.npz`` (the first array, or the one named ``points``/``xyz``/``data``), and
``.ply`` (ASCII, binary little- and big-endian; ``x y z`` and optional ``red green blue``). Extra
columns of ScanNet's ``*_aligned_vert.npy`` (x y z r g b ...) are cut to the first six.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


class MediaError(ValueError):
    """A media file could not be used; the message names the file and the reason."""


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
POINT_CLOUD_SUFFIXES = {".npy", ".npz", ".ply"}


def resolve_media_path(path: str | os.PathLike, root: str | os.PathLike | None) -> Path:
    """An absolute path is kept; a relative one is joined to ``root`` (the vision/benchmark root)."""
    p = Path(path)
    if p.is_absolute() or root is None:
        return p
    return Path(root) / p


def load_image(path: str | os.PathLike | bytes) -> Image.Image:
    """Load an image file (or encoded bytes) as RGB; raises :class:`MediaError` naming the file."""
    name = "<bytes>" if isinstance(path, bytes) else str(path)
    try:
        src = io.BytesIO(path) if isinstance(path, bytes) else open(path, "rb")
    except FileNotFoundError:
        raise MediaError(f"{name}: image file not found") from None
    except OSError as e:
        raise MediaError(f"{name}: cannot open image ({e.strerror})") from None
    with src:
        try:
            img = Image.open(src)
            img.load()
        except UnidentifiedImageError:
            raise MediaError(f"{name}: not an image PIL can read") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise MediaError(f"{name}: truncated or corrupt image ({e})") from None
    return to_rgb(img)


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white rather than black."""
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def load_point_cloud(path: str | os.PathLike) -> np.ndarray:
    """Load a point cloud as float32 ``(N, 3)`` or ``(N, 6)`` with colours in [0, 1].

    Raises :class:`MediaError` for a missing, truncated or malformed file, a wrong shape, an empty
    cloud, or non-finite values.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: point-cloud file not found")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(p)
    elif suffix == ".npz":
        arr = _read_npz(p)
    elif suffix == ".ply":
        arr = _read_ply(p)
    else:
        raise MediaError(f"{p}: unsupported point-cloud format {suffix!r} (use .npy, .npz or .ply)")
    return _check_points(arr, p)


def _read_npy(p: Path) -> np.ndarray:
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as e:
        raise MediaError(f"{p}: not a plain numeric .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise MediaError(f"{p}: truncated or corrupt .npy file ({e})") from None


def _read_npz(p: Path) -> np.ndarray:
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
            if not keys:
                raise MediaError(f"{p}: .npz file holds no array")
            for preferred in ("points", "xyz", "data", "pc", "pcl"):
                if preferred in keys:
                    return z[preferred]
            return z[keys[0]]
    except MediaError:
        raise
    except (OSError, EOFError, ValueError) as e:
        raise MediaError(f"{p}: truncated or corrupt .npz file ({e})") from None


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _read_ply(p: Path) -> np.ndarray:
    data = p.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MediaError(f"{p}: not a PLY file (missing 'ply' magic or 'end_header')")
    header_end = data.index(b"\n", end) + 1
    header = data[:header_end].decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in header:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property":
            if not elements:
                raise MediaError(f"{p}: PLY property before any element")
            if parts[1] == "list":
                elements[-1][2].append((parts[-1], "list"))
            else:
                if parts[1] not in _PLY_TYPES:
                    raise MediaError(f"{p}: unknown PLY property type {parts[1]!r}")
                elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise MediaError(f"{p}: unsupported PLY format {fmt!r}")
    if not elements or elements[0][0] != "vertex":
        raise MediaError(f"{p}: PLY file has no leading 'vertex' element")
    _, count, props = elements[0]
    if any(t == "list" for _, t in props):
        raise MediaError(f"{p}: PLY vertex element with list properties is not supported")
    names = [n for n, _ in props]
    for axis in ("x", "y", "z"):
        if axis not in names:
            raise MediaError(f"{p}: PLY vertices lack the {axis!r} property")
    body = data[header_end:]
    if fmt == "ascii":
        rows = body.decode("ascii", errors="replace").split("\n")
        rows = [r for r in rows if r.strip()][:count]
        if len(rows) < count:
            raise MediaError(f"{p}: truncated PLY file: header says {count} vertices, found {len(rows)}")
        try:
            table = np.array([[float(v) for v in r.split()[: len(props)]] for r in rows], dtype=np.float64)
        except ValueError as e:
            raise MediaError(f"{p}: malformed PLY vertex line ({e})") from None
        if table.ndim != 2 or table.shape[1] != len(props):
            raise MediaError(f"{p}: PLY vertex lines do not have {len(props)} values each")
        cols = {n: table[:, i] for i, n in enumerate(names)}
    else:
        endian = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(n, endian + t) for n, t in props])
        need = dtype.itemsize * count
        if len(body) < need:
            raise MediaError(f"{p}: truncated PLY file: need {need} bytes of vertices, found {len(body)}")
        rec = np.frombuffer(body[:need], dtype=dtype, count=count)
        cols = {n: rec[n].astype(np.float64) for n in names}
    xyz = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
    if all(c in cols for c in ("red", "green", "blue")):
        rgb = np.stack([cols["red"], cols["green"], cols["blue"]], axis=1)
        return np.concatenate([xyz, rgb], axis=1)
    return xyz


def _check_points(arr: np.ndarray, p: Path) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise MediaError(f"{p}: expected a numeric array, got dtype {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise MediaError(f"{p}: expected shape (N, 3) or (N, 6+), got {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise MediaError(f"{p}: point cloud is empty")
    arr = arr[:, :6] if arr.shape[1] >= 6 else arr[:, :3]
    arr = arr.astype(np.float32, copy=True)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise MediaError(f"{p}: {bad} point(s) hold NaN or infinite values; clean the file")
    if arr.shape[1] == 6 and arr[:, 3:].max() > 1.0:
        arr[:, 3:] /= 255.0
    return arr


def load_media(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Image.Image | np.ndarray:
    """Load an image or a point cloud, chosen by the file suffix, relative to ``root``."""
    p = resolve_media_path(path, root)
    if p.suffix.lower() in POINT_CLOUD_SUFFIXES:
        return load_point_cloud(p)
    return load_image(p)


def save_ply(path: str | os.PathLike, points: np.ndarray, binary: bool = True) -> None:
    """Write ``(N, 3|6)`` points (colours in [0, 1]) as a PLY file (used by tests and the web demo)."""
    from lamm.fileio import write_bytes_atomic

    pts = np.asarray(points, dtype=np.float32)
    has_rgb = pts.shape[1] >= 6
    head = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", f"element vertex {len(pts)}",
            "property float x", "property float y", "property float z"]
    if has_rgb:
        head += ["property uchar red", "property uchar green", "property uchar blue"]
    head.append("end_header")
    out = io.BytesIO()
    out.write(("\n".join(head) + "\n").encode("ascii"))
    rgb = np.clip(np.round(pts[:, 3:6] * 255), 0, 255).astype(np.uint8) if has_rgb else None
    if binary:
        fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("red", "u1"), ("green", "u1"), ("blue", "u1")] if has_rgb else [])
        rec = np.zeros(len(pts), dtype=fields)
        rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
        if has_rgb:
            rec["red"], rec["green"], rec["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
        out.write(rec.tobytes())
    else:
        for i, row in enumerate(pts):
            vals = [f"{v:.6f}" for v in row[:3]] + ([str(int(c)) for c in rgb[i]] if has_rgb else [])
            out.write((" ".join(vals) + "\n").encode("ascii"))
    write_bytes_atomic(path, out.getvalue())
