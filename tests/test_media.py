"""Media loading: images in any PIL format, point clouds from npy/npz/ply, and broken files."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from PIL import Image

from lamm.media import MediaError, MediaTooLarge, load_image, load_media, load_point_cloud, save_ply


def test_image_modes_become_rgb(tmp_path):
    for mode, ext in [("L", "png"), ("RGBA", "png"), ("P", "gif"), ("RGB", "jpg"), ("CMYK", "jpg")]:
        img = Image.new(mode, (8, 6))
        p = tmp_path / f"x_{mode}.{ext}"
        img.save(p)
        out = load_image(p)
        assert out.mode == "RGB" and out.size == (8, 6)


def test_rgba_transparent_composited_on_white(tmp_path):
    p = tmp_path / "t.png"
    Image.new("RGBA", (2, 2), (0, 0, 0, 0)).save(p)
    assert load_image(p).getpixel((0, 0)) == (255, 255, 255)


def test_image_errors_name_file(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(MediaError, match="bad.png"):
        load_image(bad)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, format="PNG")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(buf.getvalue()[:60])
    with pytest.raises(MediaError, match="trunc.png"):
        load_image(trunc)


def test_npy_npz_roundtrip_and_color_scaling(tmp_path):
    pts = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    pts[:, 3:] = np.abs(pts[:, 3:]) * 100  # 0-255 style colours
    np.save(tmp_path / "a.npy", pts)
    out = load_point_cloud(tmp_path / "a.npy")
    assert out.shape == (50, 6) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, :3], pts[:, :3])
    np.testing.assert_allclose(out[:, 3:], pts[:, 3:] / 255, rtol=1e-6)
    np.savez(tmp_path / "b.npz", points=pts[:, :3])
    assert load_point_cloud(tmp_path / "b.npz").shape == (50, 3)


def test_scannet_vert_columns_are_cut(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((5, 9), dtype=np.float32))
    assert load_point_cloud(tmp_path / "v.npy").shape == (5, 6)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_roundtrip(tmp_path, binary):
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.normal(size=(20, 3)), rng.uniform(size=(20, 3))], axis=1).astype(np.float32)
    save_ply(tmp_path / "c.ply", pts, binary=binary)
    out = load_point_cloud(tmp_path / "c.ply")
    np.testing.assert_allclose(out[:, :3], pts[:, :3], atol=1e-5)
    np.testing.assert_allclose(out[:, 3:], np.round(pts[:, 3:] * 255) / 255, atol=1e-6)
    save_ply(tmp_path / "d.ply", pts[:, :3], binary=binary)
    assert load_point_cloud(tmp_path / "d.ply").shape == (20, 3)


def test_big_endian_ply(tmp_path):
    pts = np.arange(12, dtype=">f4").reshape(4, 3)
    head = b"ply\nformat binary_big_endian 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    (tmp_path / "be.ply").write_bytes(head + pts.tobytes())
    np.testing.assert_allclose(load_point_cloud(tmp_path / "be.ply"), pts.astype(np.float32))


def test_point_cloud_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        load_point_cloud(tmp_path / "none.npy")
    np.save(tmp_path / "flat.npy", np.zeros(10))
    with pytest.raises(MediaError, match="shape"):
        load_point_cloud(tmp_path / "flat.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(MediaError, match="empty"):
        load_point_cloud(tmp_path / "empty.npy")
    nan = np.zeros((4, 3))
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(MediaError, match="NaN"):
        load_point_cloud(tmp_path / "nan.npy")
    good = io.BytesIO()
    np.save(good, np.zeros((100, 3), dtype=np.float32))
    (tmp_path / "trunc.npy").write_bytes(good.getvalue()[:200])
    with pytest.raises(MediaError, match="trunc.npy"):
        load_point_cloud(tmp_path / "trunc.npy")
    head = b"ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    (tmp_path / "short.ply").write_bytes(head + b"0 0 0\n1 1 1\n")
    with pytest.raises(MediaError, match="truncated"):
        load_point_cloud(tmp_path / "short.ply")
    (tmp_path / "x.xyz").write_text("1 2 3")
    with pytest.raises(MediaError, match="unsupported"):
        load_point_cloud(tmp_path / "x.xyz")


def test_load_media_dispatch(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((3, 3), dtype=np.float32))
    Image.new("RGB", (4, 4)).save(tmp_path / "i.png")
    assert isinstance(load_media("p.npy", tmp_path), np.ndarray)
    assert isinstance(load_media("i.png", tmp_path), Image.Image)


def _npy_bytes(shape: tuple[int, ...], body: bytes, descr: str = "<f4") -> bytes:
    """A ``.npy`` file whose header declares ``shape`` and whose data is ``body`` (possibly too short)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


def _npz_bomb(path, n_points: int) -> None:
    """A compressed ``.npz`` of ``n_points`` zero points, streamed: KBs on disk, 12 bytes a point inside."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, \
            z.open("points.npy", "w", force_zip64=True) as fh:
        fh.write(_npy_bytes((n_points, 3), b""))
        zeros, left = bytes(1 << 20), n_points * 12
        while left:
            fh.write(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))


def test_npz_bomb_is_refused_from_its_header_without_decompressing(tmp_path):
    p = tmp_path / "bomb.npz"
    _npz_bomb(p, 4_000_000)  # 48 MB of float32 inside
    assert p.stat().st_size < 200_000
    want = r"bomb.npz \(array 'points'\): 4000000 points; the limit is 1000"
    tracemalloc.start()
    try:
        with pytest.raises(MediaTooLarge, match=want):
            load_point_cloud(p, max_points=1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak} bytes allocated to refuse the cloud"
    small = tmp_path / "small.npz"
    _npz_bomb(small, 500)  # within the limit: loads
    assert load_point_cloud(small, max_points=1000).shape == (500, 3)


def test_declared_shape_is_checked_before_the_data(tmp_path):
    p = tmp_path / "liar.npy"
    p.write_bytes(_npy_bytes((40_000_000, 3), bytes(24)))
    with pytest.raises(MediaTooLarge, match="40000000 points; the limit is 1000"):
        load_point_cloud(p, max_points=1000)
    # no limit: the header asks for more bytes than the file holds, which is a corrupt file (not MemoryError)
    for shape in [(40_000_000, 3), (99_999_999_999, 3)]:
        p.write_bytes(_npy_bytes(shape, bytes(24)))
        with pytest.raises(MediaError, match=r"liar.npy: truncated or corrupt .npy file: the header"):
            load_point_cloud(p)
    # few points, absurdly many columns: refused by size under a limit
    p.write_bytes(_npy_bytes((10, 10_000_000), b""))
    with pytest.raises(MediaTooLarge, match="bytes of array data"):
        load_point_cloud(p, max_points=1000)
    p.write_bytes(_npy_bytes((5, 3), b"", descr="|O"))
    with pytest.raises(MediaError, match="numeric"):
        load_point_cloud(p)
    p.write_bytes(_npy_bytes((-5, 3), b""))
    with pytest.raises(MediaError, match="negative"):
        load_point_cloud(p)
    z = tmp_path / "liar.npz"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("points.npy", _npy_bytes((1000, 3), bytes(24)))
    with pytest.raises(MediaError, match=r"liar.npz \(array 'points'\): truncated or corrupt"):
        load_point_cloud(z)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("points.npy", b"not an array")
    with pytest.raises(MediaError, match="liar.npz"):
        load_point_cloud(z)
    (tmp_path / "notzip.npz").write_bytes(b"hello world")
    with pytest.raises(MediaError, match="notzip.npz"):
        load_point_cloud(tmp_path / "notzip.npz")


def test_ply_vertex_count_limit_and_malformed_headers(tmp_path):
    pts = np.random.default_rng(2).normal(size=(50, 3)).astype(np.float32)
    save_ply(tmp_path / "c.ply", pts)
    with pytest.raises(MediaTooLarge, match="50 points; the limit is 10"):
        load_point_cloud(tmp_path / "c.ply", max_points=10)
    assert load_point_cloud(tmp_path / "c.ply", max_points=50).shape == (50, 3)
    xyz = "property float x\nproperty float y\nproperty float z\n"
    bad = {
        "count_word": f"ply\nformat ascii 1.0\nelement vertex abc\n{xyz}end_header\n",
        "count_missing": f"ply\nformat ascii 1.0\nelement vertex\n{xyz}end_header\n",
        "count_negative": f"ply\nformat binary_little_endian 1.0\nelement vertex -1\n{xyz}end_header\n",
        "format_missing": "ply\nformat\nend_header\n",
        "property_name_missing": "ply\nformat ascii 1.0\nelement vertex 1\nproperty float\nend_header\n",
        "property_twice": f"ply\nformat binary_little_endian 1.0\nelement vertex 1\n{xyz}property float x\n"
                          "end_header\n",
        "forged_count": f"ply\nformat binary_little_endian 1.0\nelement vertex 999999999999\n{xyz}"
                        "end_header\n",
        "no_newline": f"ply\nformat ascii 1.0\nelement vertex 1\n{xyz}end_header",
        "ragged": f"ply\nformat ascii 1.0\nelement vertex 2\n{xyz}end_header\n1 2 3\n4 5\n",
    }
    for name, text in bad.items():
        (tmp_path / f"{name}.ply").write_bytes(text.encode() + bytes(12))
        with pytest.raises(MediaError, match=f"{name}.ply"):
            load_point_cloud(tmp_path / f"{name}.ply")


def test_numpy_files_are_read_by_content(tmp_path):
    pts = np.ones((4, 3), dtype=np.float32)
    np.savez(tmp_path / "a.npz", pts)  # saved as .npz ...
    (tmp_path / "a.npz").rename(tmp_path / "b.npy")  # ... named .npy: numpy.load goes by content, so do we
    assert load_point_cloud(tmp_path / "b.npy").shape == (4, 3)
