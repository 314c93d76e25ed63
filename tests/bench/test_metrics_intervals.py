"""Seeded bootstrap intervals."""

from __future__ import annotations

import numpy as np

from lamm.bench.metrics.intervals import (
    bootstrap_ratio,
    bootstrap_ratios,
    bootstrap_weighted,
    resample_counts,
)


def test_resample_counts_rows():
    chunks = list(resample_counts(7, n_boot=25, seed=0))
    counts = np.vstack(chunks)
    assert counts.shape == (25, 7) and (counts.sum(axis=1) == 7).all()
    assert list(resample_counts(0, n_boot=5)) == []


def test_seeded_and_bracketing():
    x = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5, dtype=float)
    a = bootstrap_ratio(x, np.ones_like(x), seed=0, n_boot=500)
    assert a == bootstrap_ratio(x, np.ones_like(x), seed=0, n_boot=500)
    assert a != bootstrap_ratio(x, np.ones_like(x), seed=1, n_boot=500)
    assert a[0] < 70.0 < a[1] and 40.0 < a[0] and a[1] < 95.0


def test_ratio_and_weighted_agree():
    num, den = np.array([3.0, 1.0, 2.0, 0.0]), np.array([4.0, 2.0, 2.0, 3.0])
    a = bootstrap_ratios({"pck": (num, den, 100.0)}, n_boot=300, seed=2)["pck"]
    b = bootstrap_weighted(lambda w: 100 * (w @ num) / (w @ den), 4, n_boot=300, seed=2)
    assert np.allclose(a, b)
