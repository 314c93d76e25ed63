"""Farthest-point sampling, kNN and grouping against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lamm.model.encoders.point_ops import fps_indices, gather_points, group_points, knn_indices

torch.set_num_threads(1)


def fps_reference(xyz: np.ndarray, k: int, start: int = 0) -> list[int]:
    """Textbook FPS, one point at a time, in plain Python over numpy rows."""
    chosen = [start]
    n = len(xyz)
    min_d = [float("inf")] * n
    for _ in range(k - 1):
        last = xyz[chosen[-1]]
        for j in range(n):
            d = float(((xyz[j] - last) ** 2).sum())
            min_d[j] = min(min_d[j], d)
        best = max(range(n), key=lambda j: (min_d[j], -j))  # largest distance, lowest index on ties
        chosen.append(best)
    return chosen


def _cloud(b: int, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, n, 3, generator=g, dtype=dtype) * 2 - 1


def test_fps_matches_reference_loop():
    xyz = _cloud(3, 120, seed=1)
    got = fps_indices(xyz, 17)
    assert got.shape == (3, 17) and got.dtype == torch.long
    for b in range(3):
        assert got[b].tolist() == fps_reference(xyz[b].numpy(), 17)


def test_fps_per_batch_start_and_batch_independence():
    xyz = _cloud(2, 80, seed=2)
    start = torch.tensor([5, 40])
    got = fps_indices(xyz, 10, start=start)
    for b in range(2):
        assert got[b].tolist() == fps_reference(xyz[b].numpy(), 10, start=int(start[b]))
        # a cloud gets the same centres alone as in a batch
        assert torch.equal(fps_indices(xyz[b : b + 1], 10, start=int(start[b]))[0], got[b])


def test_fps_deterministic_distinct_and_spread():
    xyz = _cloud(2, 500, seed=3, dtype=torch.float32)
    a, b = fps_indices(xyz, 64), fps_indices(xyz.clone(), 64)
    assert torch.equal(a, b)
    assert all(len(set(row.tolist())) == 64 for row in a)

    # FPS covers the cloud: the covering radius beats a random subset's by a clear margin.
    def cover_radius(idx):
        c = gather_points(xyz, idx)
        return torch.cdist(xyz, c).min(-1).values.max().item()

    rand_idx = torch.stack(
        [torch.randperm(500, generator=torch.Generator().manual_seed(s))[:64] for s in (0, 1)]
    )
    assert cover_radius(a) < 0.8 * cover_radius(rand_idx)


def test_fps_degenerate_cloud_and_errors():
    xyz = torch.zeros(1, 10, 3)
    xyz[0, 5] = 1.0  # only two distinct points
    idx = fps_indices(xyz, 4)
    assert idx[0, :2].tolist() == [0, 5]
    with pytest.raises(ValueError, match="k=11"):
        fps_indices(xyz, 11)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        fps_indices(torch.zeros(1, 10, 6), 2)


def test_knn_matches_brute_force():
    xyz = _cloud(2, 150, seed=4)
    query = _cloud(2, 12, seed=5)
    got = knn_indices(query, xyz, 9)
    assert got.shape == (2, 12, 9)
    for b in range(2):
        q, p = query[b].numpy(), xyz[b].numpy()
        full = np.sqrt(((q[:, None, :] - p[None, :, :]) ** 2).sum(-1))  # (12, 150)
        ref = np.argsort(full, axis=1, kind="stable")[:, :9]
        assert got[b].tolist() == ref.tolist()  # random float64 clouds have no ties


def test_knn_nearest_first_and_self():
    xyz = _cloud(1, 64, seed=6, dtype=torch.float32)
    idx = knn_indices(xyz, xyz, 4)
    assert torch.equal(idx[0, :, 0], torch.arange(64))
    d = torch.cdist(xyz, xyz).gather(2, idx)
    assert (d[..., 1:] >= d[..., :-1] - 1e-6).all()


def test_group_points_relative_coords_and_colour():
    g = torch.Generator().manual_seed(7)
    pts = torch.cat([torch.rand(2, 100, 3, generator=g), torch.rand(2, 100, 3, generator=g)], -1)
    cidx = fps_indices(pts[..., :3], 8)
    groups, centres = group_points(pts, cidx, 5)
    assert groups.shape == (2, 8, 5, 6) and centres.shape == (2, 8, 3)
    assert torch.allclose(centres, gather_points(pts[..., :3], cidx))
    nb = knn_indices(centres, pts[..., :3], 5)
    absolute = gather_points(pts, nb)
    assert torch.allclose(groups[..., :3] + centres.unsqueeze(2), absolute[..., :3], atol=1e-6)
    assert torch.equal(groups[..., 3:], absolute[..., 3:])  # colour is not made relative
    assert torch.allclose(groups[:, :, 0, :3], torch.zeros(2, 8, 3))  # each centre is its own nearest point
    g3, _ = group_points(pts[..., :3], cidx, 5)
    assert g3.shape == (2, 8, 5, 3)
