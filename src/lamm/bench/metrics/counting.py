"""Counting (FSC147): ``mae`` (mean absolute error, in objects — not a percent), exact ``accuracy``, and
``lamm_mae``, LAMM's number.

The count is the first number of the answer, digits ("5", "5.", "5,", "1,000") or words ("five",
"twenty-five", "two dozen"), by ``lamm.bench.parsers.parse_count``. ``mae`` is never capped.
``lamm_mae`` is what ChEF published as "MAE" (FSC147 46.88 for LAMM-13B): each error capped at the
true count, ``min(|pred - gt|, gt)`` — a different metric under the same name, offered by its own name
so LAMM's figures can be reproduced. An unparsed answer is scored as a prediction of 0: its error is
the true count (under both), and it is never exact.

>>> r = COUNTING.evaluate(["5.", "There are twelve.", "many"], [{"num": n} for n in (5, 10, 3)], ci=False)
>>> r.metrics["mae"], round(r.metrics["accuracy"], 2), r.unparsed
(1.6666666666666667, 33.33, 1)
>>> COUNTING.evaluate(["100", "3"], [{"num": 10}, {"num": 5}], ci=False).metrics["lamm_mae"]  # (10 + 2) / 2
6.0
"""

from __future__ import annotations

import math
from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.parsers import parse_count


class CountingMetric(PerSampleFamily):
    """``mae`` (headline, lower is better), ``accuracy`` (exact count), ``lamm_mae`` (capped), vs ``num``."""

    name = "counting"
    headline = "mae"
    metric_names = ("mae", "accuracy", "lamm_mae")
    required_fields = ("num",)
    unscaled = frozenset({"mae", "lamm_mae"})

    def parse(self, answer: Any, record: dict) -> float | None:
        """The first count in the answer, or ``None``."""
        return parse_count(answer)

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        gt = record["num"]
        if isinstance(gt, bool) or not isinstance(gt, (int, float)) or not math.isfinite(gt):
            raise RecordError(index, record, "num", f"expected a number, got {gt!r}")
        pred = 0.0 if parsed is None else float(parsed)
        err = abs(pred - gt)
        exact = float(parsed is not None and pred == gt)
        return {"mae": err, "accuracy": exact, "lamm_mae": min(err, abs(gt))}


COUNTING = CountingMetric()
METRICS.add("counting", COUNTING)
