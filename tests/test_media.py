"""Media loading: images in any PIL format, point clouds from npy/npz/ply, and broken files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lamm.media import MediaError, load_image, load_media, load_point_cloud, save_ply


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
