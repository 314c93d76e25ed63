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

Every reader checks what the file *declares* (the ``.npy`` header's shape and dtype, the ``.npz``
member's ``.npy`` header, the PLY ``element vertex`` count) before it reads or decompresses the data:
a declared size the file cannot hold is a truncated or corrupt file, and with ``max_points`` a cloud
declaring more points (or more than ``max_points`` × :data:`MAX_BYTES_PER_POINT` bytes) is refused
with :class:`MediaTooLarge`, so a small compressed upload is never expanded to gigabytes.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError


class MediaError(ValueError):
    """A media file could not be used; the message names the file and the reason."""


class MediaTooLarge(MediaError):
    """A media file declares more data (points, bytes) than the caller's limit allows."""


#: with ``max_points``, the most array bytes accepted per allowed point (64 float64 columns)
MAX_BYTES_PER_POINT = 64 * 8
#: the longest PLY header read before the file is refused as not PLY
MAX_PLY_HEADER_BYTES = 1 << 20


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


def load_point_cloud(path: str | os.PathLike, max_points: int | None = None) -> np.ndarray:
    """Load a point cloud as float32 ``(N, 3)`` or ``(N, 6)`` with colours in [0, 1].

    Raises :class:`MediaError` for a missing, truncated or malformed file, a wrong shape, an empty
    cloud, or non-finite values. ``max_points``: refuse (:class:`MediaTooLarge`) a cloud whose header
    declares more points, or more than ``max_points × MAX_BYTES_PER_POINT`` bytes of array data,
    before any of its data is read or decompressed.
    """
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: point-cloud file not found")
    suffix = p.suffix.lower()
    if suffix in (".npy", ".npz"):
        suffix = _numpy_kind(p) or suffix  # numpy.load goes by content too: a .npz saved as .npy loads
    if suffix == ".npy":
        arr = _read_npy(p, max_points)
    elif suffix == ".npz":
        arr = _read_npz(p, max_points)
    elif suffix == ".ply":
        arr = _read_ply(p, max_points)
    else:
        raise MediaError(f"{p}: unsupported point-cloud format {suffix!r} (use .npy, .npz or .ply)")
    if max_points is not None and len(arr) > max_points:
        raise MediaTooLarge(f"{p}: {len(arr)} points; the limit is {max_points}")
    return _check_points(arr, p)


def _numpy_kind(p: Path) -> str | None:
    """``".npz"`` for a zip archive, ``".npy"`` for a ``.npy`` array, else None (by the first bytes)."""
    try:
        with open(p, "rb") as fh:
            magic = fh.read(6)
    except OSError as e:
        raise MediaError(f"{p}: cannot open point-cloud file ({e.strerror or e})") from None
    if magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):  # a zip: a member, or an empty archive
        return ".npz"
    if magic == b"\x93NUMPY":
        return ".npy"
    return None


def _npy_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Read a ``.npy`` header from ``fh``: ``(shape, dtype, data bytes)``; the data itself is not read.

    The shape includes a sub-array dtype's dimensions; the dtype is then its base."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise MediaError(f"{where}: unsupported .npy format version {version[0]}.{version[1]}; "
                             "save it again with numpy.save")
    except MediaError:
        raise
    except (ValueError, EOFError, OSError, zlib.error, zipfile.BadZipFile) as e:
        raise MediaError(f"{where}: not a plain numeric .npy array or a corrupt header ({e})") from None
    if any(n < 0 for n in shape):
        raise MediaError(f"{where}: .npy header declares a negative shape {shape}")
    full = tuple(shape) + tuple(dtype.shape)
    base = dtype.base
    if base.kind not in "fiu" or base.hasobject:
        raise MediaError(f"{where}: expected a numeric array, got dtype {dtype}")
    return full, base, math.prod(full) * base.itemsize


def _check_declared(shape: tuple[int, ...], nbytes: int, where: str, max_points: int | None) -> None:
    """Shape and size checks from a header, before the data is read (see :func:`load_point_cloud`)."""
    if len(shape) != 2 or shape[1] < 3:
        raise MediaError(f"{where}: expected shape (N, 3) or (N, 6+), got {shape}")
    if max_points is None:
        return
    if shape[0] > max_points:
        raise MediaTooLarge(f"{where}: {shape[0]} points; the limit is {max_points}")
    if nbytes > max_points * MAX_BYTES_PER_POINT:
        raise MediaTooLarge(f"{where}: declares {nbytes} bytes of array data {shape}; the limit is "
                            f"{max_points * MAX_BYTES_PER_POINT} ({MAX_BYTES_PER_POINT} per allowed point)")


def _read_npy(p: Path, max_points: int | None = None) -> np.ndarray:
    try:
        with open(p, "rb") as fh:
            shape, _, nbytes = _npy_header(fh, str(p))
            _check_declared(shape, nbytes, str(p), max_points)
            have = os.fstat(fh.fileno()).st_size - fh.tell()
            if have < nbytes:
                raise MediaError(f"{p}: truncated or corrupt .npy file: the header declares shape {shape} "
                                 f"({nbytes} bytes) but {have} bytes follow it")
            fh.seek(0)
            return np.lib.format.read_array(fh, allow_pickle=False)
    except MediaError:
        raise
    except ValueError as e:
        raise MediaError(f"{p}: not a plain numeric .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise MediaError(f"{p}: truncated or corrupt .npy file ({e})") from None
    except MemoryError:
        raise MediaError(f"{p}: the array is too large to load into memory") from None


def _read_npz(p: Path, max_points: int | None = None) -> np.ndarray:
    try:
        with zipfile.ZipFile(p) as z:
            members = {n.removesuffix(".npy"): n for n in z.namelist()}  # numpy.load's keys
            if not members:
                raise MediaError(f"{p}: .npz file holds no array")
            preferred = [k for k in ("points", "xyz", "data", "pc", "pcl") if k in members]
            key = preferred[0] if preferred else next(iter(members))
            info = z.getinfo(members[key])
            where = f"{p} (array {key!r})"
            # the member's own header says how much it holds: check it before decompressing the data
            with z.open(info) as fh:
                shape, _, nbytes = _npy_header(fh, where)
                _check_declared(shape, nbytes, where, max_points)
                have = info.file_size - fh.tell()
            if have < nbytes:
                raise MediaError(f"{where}: truncated or corrupt .npz member: its header declares shape "
                                 f"{shape} ({nbytes} bytes) but the archive lists {have} bytes")
            with z.open(info) as fh:
                return np.lib.format.read_array(fh, allow_pickle=False)
    except MediaError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, NotImplementedError) as e:
        raise MediaError(f"{p}: truncated or corrupt .npz file ({e})") from None
    except MemoryError:
        raise MediaError(f"{p}: the array is too large to load into memory") from None


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def _read_ply(p: Path, max_points: int | None = None) -> np.ndarray:
    try:
        with open(p, "rb") as fh:
            head = fh.read(MAX_PLY_HEADER_BYTES)
            end = head.find(b"end_header")
            if not head.startswith(b"ply") or end < 0:
                raise MediaError(f"{p}: not a PLY file (missing 'ply' magic or 'end_header' within the first "
                                 f"{MAX_PLY_HEADER_BYTES} bytes)")
            nl = head.find(b"\n", end)
            header_end = nl + 1 if nl >= 0 else len(head)
            fmt, count, props = _ply_header(head[:header_end], p)
            if max_points is not None and count > max_points:
                raise MediaTooLarge(f"{p}: {count} points; the limit is {max_points}")
            fh.seek(header_end)
            if fmt == "ascii":
                body = fh.read()
            else:
                need = count * np.dtype([(f"f{i}", t) for i, (_, t) in enumerate(props)]).itemsize
                have = os.fstat(fh.fileno()).st_size - header_end
                if have < need:  # checked before reading: a forged count must not size a buffer
                    raise MediaError(f"{p}: truncated PLY file: need {need} bytes of vertices, found {have}")
                body = fh.read(need)  # what follows the vertices (faces, ...) is not read
    except OSError as e:
        raise MediaError(f"{p}: cannot read PLY file ({e.strerror or e})") from None
    return _ply_vertices(p, fmt, count, props, body)


def _ply_header(header_bytes: bytes, p: Path) -> tuple[str, int, list[tuple[str, str]]]:
    """``(format, vertex count, [(property, numpy type)])`` from a PLY header; malformed → MediaError."""
    header = header_bytes.decode("ascii", errors="replace").splitlines()
    fmt = None
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for lineno, line in enumerate(header, 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{p}: PLY header line {lineno} {line.strip()[:60]!r}"
        if parts[0] == "format":
            if len(parts) < 2:
                raise MediaError(f"{where}: 'format' needs a value (ascii, binary_little_endian, ...)")
            fmt = parts[1]
        elif parts[0] == "element":
            if len(parts) < 3:
                raise MediaError(f"{where}: 'element' needs a name and a count")
            try:
                n = int(parts[2])
            except ValueError:
                raise MediaError(f"{where}: element count {parts[2]!r} is not an integer") from None
            if n < 0:
                raise MediaError(f"{where}: element count {n} is negative")
            elements.append((parts[1], n, []))
        elif parts[0] == "property":
            if not elements:
                raise MediaError(f"{p}: PLY property before any element")
            if len(parts) >= 2 and parts[1] == "list":
                if len(parts) < 5:
                    raise MediaError(f"{where}: 'property list' needs two types and a name")
                elements[-1][2].append((parts[-1], "list"))
            else:
                if len(parts) < 3:
                    raise MediaError(f"{where}: 'property' needs a type and a name")
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
    if len(set(names)) != len(names):
        raise MediaError(f"{p}: PLY vertex element names a property twice ({' '.join(names)})")
    for axis in ("x", "y", "z"):
        if axis not in names:
            raise MediaError(f"{p}: PLY vertices lack the {axis!r} property")
    return fmt, count, props


def _ply_vertices(p: Path, fmt: str, count: int, props: list[tuple[str, str]], body: bytes) -> np.ndarray:
    names = [n for n, _ in props]
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
