"""Seeded bootstrap confidence intervals (percentile method) over samples.

Every interval resamples *samples* (images, scenes, questions) with replacement, ``n_boot`` times, from
``numpy.random.default_rng(seed)``; the same inputs and seed always give the same interval. Resamples
are drawn as count vectors (how often each sample was drawn), so corpus metrics can be recomputed with
per-sample weights instead of duplicated data.

>>> lo, hi = bootstrap_ratio([1, 0, 1, 1], [1, 1, 1, 1], n_boot=200, seed=0)
>>> 0.0 <= lo <= 75.0 <= hi <= 100.0
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

DEFAULT_N_BOOT = 1000
_CHUNK_CELLS = 4_000_000  # count-matrix cells per chunk (~32 MB of int64), bounds memory on 62k samples


def resample_counts(n: int, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> Iterator[np.ndarray]:
    """Yield count matrices of shape ``(chunk, n)``; row ``b`` says how often each sample is in resample ``b``.

    Rows over all chunks number ``n_boot``; each row sums to ``n``.
    """
    if n <= 0 or n_boot <= 0:
        return
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, _CHUNK_CELLS // n))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n)
        done += b


def percentile_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The central ``1 - alpha`` percentile interval of bootstrap replicates (NaNs ignored)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def bootstrap_ratio(
    num, den, *, scale: float = 100.0, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Interval of ``scale * sum(num) / sum(den)`` under resampling of samples.

    ``num`` / ``den`` are per-sample numerators and denominators: for accuracy ``den`` is all ones; for a
    joint-level PCK they are correct and visible joints of each image.
    """
    return bootstrap_ratios({"x": (num, den, scale)}, n_boot=n_boot, seed=seed, alpha=alpha)["x"]


def bootstrap_ratios(
    ratios: dict[str, tuple], *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0, alpha: float = 0.05
) -> dict[str, tuple[float, float]]:
    """``bootstrap_ratio`` for several ``name -> (num, den, scale)`` at once, on the *same* resamples
    (cheaper, and the intervals of related metrics stay comparable)."""
    arrays = {k: (np.asarray(a, dtype=float), np.asarray(b, dtype=float), s) for k, (a, b, s) in ratios.items()}
    if not arrays:
        return {}
    n = len(next(iter(arrays.values()))[0])
    reps: dict[str, list[np.ndarray]] = {k: [] for k in arrays}
    for counts in resample_counts(n, n_boot=n_boot, seed=seed):
        for k, (num, den, scale) in arrays.items():
            top, bottom = counts @ num, counts @ den
            safe = np.where(bottom > 0, bottom, 1.0)
            reps[k].append(np.where(bottom > 0, scale * top / safe, np.nan))
    nan = (float("nan"), float("nan"))
    return {k: percentile_interval(np.concatenate(v), alpha) if v else nan for k, v in reps.items()}


def bootstrap_weighted(
    stat: Callable[[np.ndarray], np.ndarray], n: int, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Interval of a corpus statistic recomputed on resamples.

    ``stat`` maps a count matrix ``(b, n)`` (row = how often each sample is in one resample) to the ``b``
    statistic values; ``stat(np.ones((1, n)))[0]`` must be the point estimate.
    """
    reps = [np.asarray(stat(counts), dtype=float) for counts in resample_counts(n, n_boot=n_boot, seed=seed)]
    if not reps:
        return (float("nan"), float("nan"))
    return percentile_interval(np.concatenate(reps), alpha)
