"""Circular accuracy (MMBench's CircularEval) over the rotations ``lamm.bench.circular`` asks.

Every input is one *rotation* of a multiple-choice record (fields ``circular_of``, ``circular_rotation``,
``circular_n``, plus the base family's own); the base family (``multiple_choice``) reads and scores each
rotation, and this module groups them by record:

* ``circular_accuracy`` (headline) — percent of records whose every rotation was answered right (an
  unparsed rotation is wrong);
* ``accuracy`` — percent of records whose rotation 0 (the original order) was answered right: the number
  a non-circular run of the same recipe reports;
* ``rotation_accuracy`` — percent of all rotations answered right (pooled);
* ``unparsed`` — rotations whose answer could not be read (a count, as in ``multiple_choice``).

``n`` is the number of records; the bootstrap intervals resample records (all rotations of a record
together), never single rotations. Every record must come with all of its ``circular_n`` rotations.

>>> circular_scores(["a", "a", "b", "b"], [0, 1, 0, 1], [True, True, True, False])["metrics"]
{'circular_accuracy': 50.0, 'accuracy': 100.0, 'rotation_accuracy': 75.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.base import MetricFamily, MetricReport, RecordError, check_inputs
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_ratios
from lamm.bench.metrics.multiple_choice import category_info

CIRCULAR_METRICS = ("circular_accuracy", "accuracy", "rotation_accuracy")


def circular_scores(
    records: Sequence[str], rotations: Sequence[int], correct: Sequence[bool]
) -> dict[str, Any]:
    """Circular scores from one entry per rotation: its record id, its rotation index and whether it was
    answered right. Returns ``metrics`` (percent; NaN without records), ``per_record`` (record id →
    ``{"rotations", "correct", "all_correct", "rotation0"}``, in first-seen order) and the per-record
    arrays ``all_correct``, ``rotation0``, ``n_correct``, ``n_rotations`` (for bootstrapping).

    >>> s = circular_scores(["q", "q", "q"], [0, 1, 2], [True, False, True])
    >>> s["per_record"]["q"], s["metrics"]["circular_accuracy"]
    ({'rotations': 3, 'correct': 2, 'all_correct': False, 'rotation0': True}, 0.0)
    """
    per: dict[str, dict[str, Any]] = {}
    for rid, k, ok in zip(records, rotations, correct):
        row = per.setdefault(rid, {"rotations": 0, "correct": 0, "all_correct": True, "rotation0": False})
        row["rotations"] += 1
        row["correct"] += bool(ok)
        row["all_correct"] = row["all_correct"] and bool(ok)
        if k == 0:
            row["rotation0"] = bool(ok)
    all_ok = np.array([r["all_correct"] for r in per.values()], dtype=float)
    rot0 = np.array([r["rotation0"] for r in per.values()], dtype=float)
    n_ok = np.array([r["correct"] for r in per.values()], dtype=float)
    n_rot = np.array([r["rotations"] for r in per.values()], dtype=float)
    g = len(per)
    metrics = {
        "circular_accuracy": 100.0 * all_ok.sum() / g if g else float("nan"),
        "accuracy": 100.0 * rot0.sum() / g if g else float("nan"),
        "rotation_accuracy": 100.0 * n_ok.sum() / n_rot.sum() if g else float("nan"),
    }
    return {
        "metrics": {k: float(v) for k, v in metrics.items()},
        "per_record": per,
        "all_correct": all_ok,
        "rotation0": rot0,
        "n_correct": n_ok,
        "n_rotations": n_rot,
    }


class CircularFamily(MetricFamily):
    """A base family's per-rotation scores grouped by record (see the module docstring). The base
    family's headline must be a per-sample 0/1 score (``multiple_choice``: ``accuracy``)."""

    headline = "circular_accuracy"
    metric_names = (*CIRCULAR_METRICS, "unparsed")
    unscaled = frozenset({"unparsed"})

    def __init__(self, base: MetricFamily) -> None:
        self.base = base
        self.name = base.name
        self.required_fields = (*base.required_fields, "circular_of", "circular_rotation", "circular_n")

    def parse(self, answer: Any, record: dict) -> Any:
        """The base family's parse of one rotation's answer."""
        return self.base.parse(answer, record)

    def needs_image_size(self, record: dict) -> bool:
        return self.base.needs_image_size(record)

    def check_record(self, index: int, record: Any) -> None:
        self.base.check_record(index, record)
        super().check_record(index, record)

    def evaluate(
        self,
        answers: Sequence[Any],
        records: Sequence[dict],
        *,
        ci: bool = True,
        seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        """Score every rotation with the base family, then group by record (module docstring)."""
        check_inputs(self, answers, records)
        _check_complete(records)
        base = self.base.evaluate(answers, records, ci=False)
        correct = [row.get(self.base.headline) == 1.0 for row in base.per_sample]
        groups = [str(r["circular_of"]) for r in records]
        rotations = [int(r["circular_rotation"]) for r in records]
        s = circular_scores(groups, rotations, correct)
        per = s["per_record"]
        rows = []
        for row, g, k in zip(base.per_sample, groups, rotations):
            rows.append(
                {**row, "circular": {"record": g, "rotation": k, "record_correct": per[g]["all_correct"]}}
            )
        intervals: dict[str, tuple[float, float]] = {}
        if ci and per:
            ones = np.ones(len(per))
            intervals = bootstrap_ratios(
                {
                    "circular_accuracy": (s["all_correct"], ones, 100.0),
                    "accuracy": (s["rotation0"], ones, 100.0),
                    "rotation_accuracy": (s["n_correct"], s["n_rotations"], 100.0),
                },
                n_boot=n_boot,
                seed=seed,
            )
        hist: dict[str, int] = {}
        for r in per.values():
            key = f"{r['correct']}/{r['rotations']}"
            hist[key] = hist.get(key, 0) + 1
        # per category (MMBench's abilities): records, not rotations, with the headline's meaning
        first = {}
        for r, g in zip(records, groups):
            first.setdefault(g, r)
        unread = {g: False for g in per}
        for row, g in zip(base.per_sample, groups):
            unread[g] = unread[g] or bool(row["unparsed"])
        by_record = category_info([per[g]["all_correct"] for g in per], [unread[g] for g in per],
                                  [first[g] for g in per], self.headline, ci=ci, seed=seed, n_boot=n_boot)
        info = {
            **{k: v for k, v in base.info.items() if k not in ("categories", "l2_categories", "uncategorized")},
            **by_record,
            "circular": {
                "records": len(per),
                "rotations": len(records),
                "records_all_correct": int(s["all_correct"].sum()),
                # records with k of their N rotations right: tells "always wrong" from "order-sensitive"
                "rotations_correct": dict(sorted(hist.items())),
                "unparsed_policy": "an unparsed rotation is wrong: its record is not circularly correct",
            },
        }
        metrics = {**s["metrics"], "unparsed": float(base.unparsed)}
        return MetricReport(self.name, metrics, self.headline, len(per), base.unparsed, intervals, rows, info)


def _check_complete(records: Sequence[dict]) -> None:
    """Every record comes with rotations 0..N-1, each once (a partial set would inflate the score)."""
    seen: dict[str, tuple[int, int, set[int]]] = {}
    for i, r in enumerate(records):
        g, k, n = str(r["circular_of"]), r["circular_rotation"], r["circular_n"]
        if (
            isinstance(k, bool)
            or not isinstance(k, int)
            or isinstance(n, bool)
            or not isinstance(n, int)
            or not 0 <= k < n
        ):
            raise RecordError(
                i, r, "circular_rotation", f"expected a rotation in 0..circular_n-1, got {k!r} of {n!r}"
            )
        first, n0, ks = seen.setdefault(g, (i, n, set()))
        if n != n0:
            raise RecordError(
                i, r, "circular_n", f"{n} rotations, but record {first} of the same question says {n0}"
            )
        if k in ks:
            raise RecordError(i, r, "circular_rotation", f"rotation {k} of {g!r} appears twice")
        ks.add(k)
    for g, (first, n, ks) in seen.items():
        if len(ks) != n:
            missing = sorted(set(range(n)) - ks)
            raise RecordError(
                first,
                records[first],
                "circular_rotation",
                f"question {g!r} lacks rotations {missing} of its {n}; score every rotation of a "
                "record (circular accuracy needs them all)",
            )
