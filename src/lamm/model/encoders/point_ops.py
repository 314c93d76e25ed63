"""Geometric operations on batched point clouds, in pure PyTorch (no compiled ops).

All functions take batched clouds ``xyz`` of shape ``(B, N, 3)`` (any float dtype, any device) and
return ``int64`` index tensors or gathered values. Coordinates are in whatever unit the cloud is in
(after :func:`lamm.model.encoders.preprocess.preprocess_point_cloud`: the unit sphere for objects,
metres for scenes); distances are Euclidean in that unit.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def fps_indices(xyz: Tensor, k: int, start: int | Tensor = 0) -> Tensor:
    """Farthest-point sampling: indices of ``k`` points that cover the cloud, per batch element.

    Greedy FPS: start at point ``start`` (index 0 by default), then repeatedly add the point whose
    distance to the already chosen set is largest. Deterministic: ties go to the lowest index (as
    ``argmax`` does), and there is no randomness beyond the start index. Because the point-cloud
    preprocessing returns points in a seeded random order, a fixed start index of 0 is a seeded random
    start in effect, so one cloud gives the same centres at training and evaluation time.

    Args:
        xyz: ``(B, N, 3)`` coordinates (extra channels beyond 3 are not allowed; slice first).
        k: number of centres, ``1 <= k <= N``.
        start: start index, an int for all batch elements or a ``(B,)`` int64 tensor.

    Returns:
        ``(B, k)`` int64 indices into ``N``; ``out[:, 0] == start``. If the cloud has fewer than ``k``
        distinct points, the tail repeats already chosen points (distance 0), it never fails.

    Cost: ``k`` sequential steps of ``O(B·N)`` work; the slow part of point tokenisation, so callers may
    compute it once in a data worker and pass the indices to the encoder (``center_idx=``).
    """
    if xyz.dim() != 3 or xyz.shape[-1] != 3:
        raise ValueError(f"fps_indices expects xyz of shape (B, N, 3), got {tuple(xyz.shape)}")
    b, n, _ = xyz.shape
    if not 1 <= k <= n:
        raise ValueError(
            f"fps_indices: k={k} centres requested from a cloud of {n} points (need 1 <= k <= N)"
        )
    device = xyz.device
    out = torch.empty(b, k, dtype=torch.long, device=device)
    # Running squared distance from every point to its nearest chosen centre.
    min_d = torch.full((b, n), float("inf"), dtype=xyz.dtype, device=device)
    if isinstance(start, Tensor):
        far = start.to(device=device, dtype=torch.long).reshape(b).clone()
    else:
        if not 0 <= start < n:
            raise ValueError(f"fps_indices: start={start} is outside [0, {n})")
        far = torch.full((b,), start, dtype=torch.long, device=device)
    # Gather centres with an index tensor rather than Python ints so the loop never syncs with the GPU.
    gather_idx = far.view(b, 1, 1).expand(b, 1, 3)
    for i in range(k):
        out[:, i] = far
        centre = xyz.gather(1, gather_idx)  # (B, 1, 3)
        d = (xyz - centre).square().sum(-1)  # (B, N)
        torch.minimum(min_d, d, out=min_d)
        far = min_d.argmax(-1)
        gather_idx = far.view(b, 1, 1).expand(b, 1, 3)
    return out


@torch.no_grad()
def knn_indices(query: Tensor, xyz: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` nearest points of ``xyz`` to each query point, nearest first.

    Args:
        query: ``(B, M, 3)`` query points (e.g. FPS centres).
        xyz: ``(B, N, 3)`` the cloud.
        k: neighbours per query, ``1 <= k <= N``.

    Returns:
        ``(B, M, k)`` int64 indices into ``N``, sorted by increasing distance. A query that is itself a
        cloud point returns itself first. Ties are broken arbitrarily (``topk``).

    Memory: a ``(B, M, N)`` distance matrix (e.g. 8 × 512 × 8192 floats = 128 MB).
    """
    if query.dim() != 3 or xyz.dim() != 3 or query.shape[-1] != 3 or xyz.shape[-1] != 3:
        raise ValueError(
            f"knn_indices expects (B, M, 3) and (B, N, 3), got {tuple(query.shape)} and {tuple(xyz.shape)}"
        )
    n = xyz.shape[1]
    if not 1 <= k <= n:
        raise ValueError(f"knn_indices: k={k} neighbours requested from a cloud of {n} points")
    # cdist's matrix-product path is fast; its rounding (~1e-7 relative) only reorders near-ties.
    dist = torch.cdist(query, xyz)
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(points: Tensor, idx: Tensor) -> Tensor:
    """Gather per-point features by index.

    Args:
        points: ``(B, N, C)``.
        idx: ``(B, ...)`` int64 indices into ``N`` (e.g. ``(B, G)`` or ``(B, G, K)``).

    Returns:
        ``(B, ..., C)``.
    """
    b, _, c = points.shape
    flat = idx.reshape(b, -1)
    out = points.gather(1, flat.unsqueeze(-1).expand(-1, -1, c))
    return out.reshape(*idx.shape, c)


def group_points(points: Tensor, center_idx: Tensor, group_size: int) -> tuple[Tensor, Tensor]:
    """Point-BERT grouping: kNN neighbourhoods around given centres, in centre-relative coordinates.

    Args:
        points: ``(B, N, C)``, the first 3 channels xyz, any further channels (e.g. rgb in 0–1) kept as is.
        center_idx: ``(B, G)`` int64 centre indices (from :func:`fps_indices`).
        group_size: ``K`` neighbours per centre.

    Returns:
        ``(groups, centres)``: ``groups`` is ``(B, G, K, C)`` with xyz relative to the group's centre (so a
        group's shape does not depend on where it lies; position is encoded separately from ``centres``),
        other channels unchanged; ``centres`` is ``(B, G, 3)`` absolute xyz.
    """
    xyz = points[..., :3]
    centres = gather_points(xyz, center_idx)
    nb_idx = knn_indices(centres, xyz, group_size)
    groups = gather_points(points, nb_idx)  # (B, G, K, C)
    rel = groups[..., :3] - centres.unsqueeze(2)
    groups = torch.cat([rel, groups[..., 3:]], dim=-1) if groups.shape[-1] > 3 else rel
    return groups, centres
