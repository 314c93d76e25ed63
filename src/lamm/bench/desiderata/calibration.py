"""Calibration desideratum (ChEF): expected calibration error of the ``ppl`` option probabilities.

The ``ppl`` inferencer keeps, for every sample, the softmax over its options' log-likelihood scores
(``extra["option_probs"]``). The model's *confidence* in its answer is the largest of those
probabilities; a sample is *correct* when the family's headline per-sample score is 1. A calibrated model
is right 70% of the time when it is 70% confident.

ECE over ``n_bins`` **equal-count** bins (ChEF's choice; equal-width bins leave most bins empty because
confidences crowd near ``1/K``): sort the samples by confidence (stable: ties keep input order), split the
sorted order into ``n_bins`` bins whose sizes differ by at most one (``np.array_split``), then

    ECE = Σ_b |B_b| / n · |acc(B_b) − conf(B_b)|           (reported in percent, 0–100)

with ``acc`` the share of correct samples of the bin and ``conf`` their mean confidence. Fewer samples
than bins give one sample per bin; no samples give NaN.

>>> round(expected_calibration_error([0.9, 0.9, 0.6, 0.6], [1, 1, 1, 0], n_bins=2), 6)
10.0

The runner (``lamm.bench.runner.score_and_write``) adds :func:`calibration_summary` to ``results.json``
(under ``calibration``) and writes :func:`reliability_svg` to ``reliability.svg`` for every ``ppl`` run
of single-question records; :func:`calibration_from_answers` is that hook.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, percentile_interval, resample_counts

N_BINS = 10


def _arrays(confidences: Sequence[float], correct: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidences, dtype=float).reshape(-1)
    corr = np.asarray(correct, dtype=float).reshape(-1)
    if conf.shape != corr.shape:
        raise ValueError(f"calibration: {conf.size} confidences for {corr.size} correctness flags; they must pair up")
    if conf.size and (not np.all(np.isfinite(conf)) or conf.min() < 0.0 or conf.max() > 1.0):
        bad = int(np.flatnonzero(~np.isfinite(conf) | (conf < 0) | (conf > 1))[0])
        raise ValueError(f"calibration: confidence {bad} is {confidences[bad]!r}; expected a probability in [0, 1]")
    if corr.size and not np.all((corr == 0) | (corr == 1)):
        bad = int(np.flatnonzero((corr != 0) & (corr != 1))[0])
        raise ValueError(f"calibration: correctness {bad} is {correct[bad]!r}; expected 0/1 or a bool")
    return conf, corr


def _bins(n: int, n_bins: int) -> list[np.ndarray]:
    """Positions in the sorted order of each bin (``min(n, n_bins)`` bins, sizes differ by at most one)."""
    if n_bins < 1:
        raise ValueError(f"calibration: n_bins must be >= 1, got {n_bins}")
    return np.array_split(np.arange(n), min(n, n_bins)) if n else []


def _ece_sorted(conf: np.ndarray, corr: np.ndarray, n_bins: int) -> float:
    """ECE (percent) of samples already sorted by confidence."""
    n = conf.size
    if n == 0:
        return float("nan")
    total = 0.0
    for b in _bins(n, n_bins):
        total += b.size * abs(corr[b].mean() - conf[b].mean())
    return float(100.0 * total / n)


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[Any], n_bins: int = N_BINS) -> float:
    """ECE in percent (0–100) over ``n_bins`` equal-count bins (see the module docstring).

    ``confidences``: shape ``(n,)``, probabilities in [0, 1] (the max option probability);
    ``correct``: shape ``(n,)``, bools or 0/1. Empty input gives NaN.

    >>> expected_calibration_error([1.0, 1.0], [False, False])
    100.0
    """
    conf, corr = _arrays(confidences, correct)
    order = np.argsort(conf, kind="stable")
    return _ece_sorted(conf[order], corr[order], n_bins)


def reliability_bins(confidences: Sequence[float], correct: Sequence[Any], n_bins: int = N_BINS) -> list[dict[str, Any]]:
    """Per equal-count bin, in order of confidence: ``n``, ``confidence`` (mean), ``accuracy``, and the
    bin's confidence range ``conf_min`` / ``conf_max`` — all in percent.

    >>> reliability_bins([0.9, 0.6, 0.9, 0.6], [1, 0, 1, 1], n_bins=2)[0]
    {'n': 2, 'confidence': 60.0, 'accuracy': 50.0, 'conf_min': 60.0, 'conf_max': 60.0}
    """
    conf, corr = _arrays(confidences, correct)
    order = np.argsort(conf, kind="stable")
    conf, corr = conf[order], corr[order]
    return [{"n": int(b.size), "confidence": float(100 * conf[b].mean()), "accuracy": float(100 * corr[b].mean()),
             "conf_min": float(100 * conf[b].min()), "conf_max": float(100 * conf[b].max())}
            for b in _bins(conf.size, n_bins)]


def ece_interval(confidences: Sequence[float], correct: Sequence[Any], n_bins: int = N_BINS, *,
                 n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Seeded 95% percentile-bootstrap interval of the ECE (samples resampled, bins rebuilt per resample)."""
    conf, corr = _arrays(confidences, correct)
    order = np.argsort(conf, kind="stable")
    conf, corr = conf[order], corr[order]
    reps = []
    for counts in resample_counts(conf.size, n_boot=n_boot, seed=seed):
        for row in counts:
            # repeating positions of the sorted order keeps every resample sorted, ties in input order
            pick = np.repeat(np.arange(conf.size), row)
            reps.append(_ece_sorted(conf[pick], corr[pick], n_bins))
    return percentile_interval(np.asarray(reps)) if reps else (float("nan"), float("nan"))


def calibration_summary(rows: Iterable[Mapping[str, Any]], n_bins: int = N_BINS, *, ci: bool = True,
                        seed: int = 0, n_boot: int = DEFAULT_N_BOOT) -> dict[str, Any]:
    """Calibration of a likelihood run from per-sample rows ``{"option_probs": [p_1..p_K], "correct": bool}``.

    Returns (percent unless noted) ``ece``, ``ece_ci`` (``[low, high]`` or ``None`` when ``ci`` is off),
    ``accuracy``, ``mean_confidence``, ``overconfidence`` (= mean_confidence − accuracy; positive means
    over-confident), ``n`` (a count), ``n_bins`` (bins actually used) and ``bins``
    (:func:`reliability_bins`). A row whose probabilities are missing or empty raises ``ValueError``
    naming the row: a calibration number over a silently filtered subset would mislead.
    """
    confs, corr = [], []
    for i, row in enumerate(rows):
        probs = row.get("option_probs")
        if not isinstance(probs, (list, tuple)) or not probs:
            raise ValueError(f"calibration: row {i} (id {row.get('id')!r}): 'option_probs' must be a non-empty list "
                             f"of option probabilities (a ppl run), got {probs!r}")
        confs.append(float(max(probs)))
        corr.append(bool(row.get("correct")))
    n = len(confs)
    ece = expected_calibration_error(confs, corr, n_bins)
    acc = float(100 * np.mean(corr)) if n else float("nan")
    mean_conf = float(100 * np.mean(confs)) if n else float("nan")
    interval = list(ece_interval(confs, corr, n_bins, n_boot=n_boot, seed=seed)) if ci and n else None
    bins = reliability_bins(confs, corr, n_bins)
    return {"ece": ece, "ece_ci": interval, "accuracy": acc, "mean_confidence": mean_conf,
            "overconfidence": mean_conf - acc, "n": n, "n_bins": len(bins), "bins": bins}


def _per_sample_correct(score: Any) -> bool:
    """A per-sample headline score is 1: a float ``1.0`` or a ``[num, den]`` pair with num == den > 0."""
    if isinstance(score, (list, tuple)) and len(score) == 2:
        return bool(score[1]) and score[0] == score[1]
    return isinstance(score, (int, float)) and not isinstance(score, bool) and score == 1


def calibration_from_answers(lines: Sequence[Mapping[str, Any]], headline: str, *, ci: bool = True,
                             seed: int = 0) -> dict[str, Any] | None:
    """The runner's hook: :func:`calibration_summary` of ``answers.jsonl`` rows, or ``None`` unless every
    row carries the ``ppl`` inferencer's ``extra["option_probs"]`` (multi-question records carry a
    mapping per part there, and are not calibrated). "Correct" = ``scores[headline]`` is 1."""
    if not lines or not all(isinstance(r.get("extra"), Mapping) and "option_probs" in r["extra"] for r in lines):
        return None
    rows = [{"id": r.get("id"), "option_probs": r["extra"]["option_probs"],
             "correct": _per_sample_correct((r.get("scores") or {}).get(headline))} for r in lines]
    return calibration_summary(rows, ci=ci, seed=seed)


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def reliability_svg(bins: Sequence[Mapping[str, Any]], title: str = "", *, ece: float | None = None) -> str:
    """A self-contained SVG reliability diagram (no script, nothing fetched) of :func:`reliability_bins`.

    x: confidence, y: accuracy, both 0–100%. Each bin is a bar spanning its confidence range (at least
    1.5 points wide so a bin of tied confidences stays visible) up to its accuracy; the bin's mean
    confidence is a dot on the diagonal, joined to the bar's top by a red line (the calibration gap).
    Bars under the diagonal are over-confident bins. Same input, same bytes.
    """
    size, pad, top = 320, 40, 30
    span = size - pad - 10

    def x(v: float) -> float:
        return pad + span * min(max(v, 0.0), 100.0) / 100.0

    def y(v: float) -> float:
        return top + (size - pad - top) * (1 - min(max(v, 0.0), 100.0) / 100.0)

    heading = title + (f" — ECE {ece:.2f}%" if ece is not None and math.isfinite(ece) else "")
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img" '
              f'aria-label="reliability diagram{": " + html.escape(title) if title else ""}" '
              'font-family="sans-serif" font-size="10">'),
             f'<text x="{size / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(heading)}</text>',
             (f'<rect x="{_fmt(x(0))}" y="{_fmt(y(100))}" width="{_fmt(x(100) - x(0))}" '
              f'height="{_fmt(y(0) - y(100))}" fill="none" stroke="#888"/>')]
    for t in (0, 25, 50, 75, 100):
        parts.append(f'<text x="{_fmt(x(t))}" y="{_fmt(y(0) + 12)}" text-anchor="middle">{t}</text>'
                     f'<text x="{_fmt(x(0) - 4)}" y="{_fmt(y(t) + 3)}" text-anchor="end">{t}</text>')
    parts.append(f'<text x="{_fmt(x(50))}" y="{size - 6}" text-anchor="middle">confidence (%)</text>'
                 f'<text x="10" y="{_fmt(y(50))}" text-anchor="middle" transform="rotate(-90 10 {_fmt(y(50))})">'
                 'accuracy (%)</text>')
    for b in bins:
        lo, hi = float(b["conf_min"]), float(b["conf_max"])
        if hi - lo < 1.5:  # tied confidences: widen around the mean so the bar is visible
            mid = float(b["confidence"])
            lo, hi = mid - 0.75, mid + 0.75
        acc, conf = float(b["accuracy"]), float(b["confidence"])
        parts.append(f'<rect x="{_fmt(x(lo))}" y="{_fmt(y(acc))}" width="{_fmt(max(x(hi) - x(lo), 1.0))}" '
                     f'height="{_fmt(y(0) - y(acc))}" fill="#4e79a7" fill-opacity="0.6" stroke="#2b4c6f">'
                     f'<title>n={int(b["n"])}, confidence {conf:.1f}% ({b["conf_min"]:.1f}–{b["conf_max"]:.1f}), '
                     f'accuracy {acc:.1f}%</title></rect>')
    parts.append(f'<line x1="{_fmt(x(0))}" y1="{_fmt(y(0))}" x2="{_fmt(x(100))}" y2="{_fmt(y(100))}" '
                 'stroke="#555" stroke-dasharray="4 3"/>')
    for b in bins:
        acc, conf = float(b["accuracy"]), float(b["confidence"])
        parts.append(f'<line x1="{_fmt(x(conf))}" y1="{_fmt(y(acc))}" x2="{_fmt(x(conf))}" y2="{_fmt(y(conf))}" '
                     f'stroke="#e15759" stroke-width="1.5"/><circle cx="{_fmt(x(conf))}" cy="{_fmt(y(conf))}" r="2.5" '
                     'fill="#e15759"/>')
    parts.append("</svg>\n")
    return "".join(parts)
