"""Counting (FSC147): ``mae`` (mean absolute error, in objects — not a percent) and exact ``accuracy``.

The count is the first number of the answer, digits ("5", "5.", "5,", "1,000") or words ("five",
"twenty-five"), by ``lamm.bench.parsers.parse_count``. The error is never capped (ChEF capped it at the
true count, which is a different metric). An unparsed answer is scored as a prediction of 0: its error is
the true count, and it is never exact.

>>> r = COUNTING.evaluate(["5.", "There are twelve.", "many"], [{"num": 5}, {"num": 10}, {"num": 3}], ci=False)
>>> r.metrics["mae"], round(r.metrics["accuracy"], 2), r.unparsed
(1.6666666666666667, 33.33, 1)
"""

from __future__ import annotations

import math
from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.parsers import parse_count


class CountingMetric(PerSampleFamily):
    """``mae`` (headline, lower is better) and ``accuracy`` (exact count) against ``num``."""

    name = "counting"
    headline = "mae"
    metric_names = ("mae", "accuracy")
    required_fields = ("num",)
    unscaled = frozenset({"mae"})

    def parse(self, answer: Any, record: dict) -> float | None:
        """The first count in the answer, or ``None``."""
        return parse_count(answer)

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        gt = record["num"]
        if isinstance(gt, bool) or not isinstance(gt, (int, float)) or not math.isfinite(gt):
            raise RecordError(index, record, "num", f"expected a number, got {gt!r}")
        pred = 0.0 if parsed is None else float(parsed)
        return {"mae": abs(pred - gt), "accuracy": float(parsed is not None and pred == gt)}


COUNTING = CountingMetric()
METRICS.add("counting", COUNTING)
