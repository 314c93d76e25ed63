"""Multiple-choice VQA (ScienceQA, AI2D, ScanQA): ``accuracy`` (percent) and ``unparsed`` (a count).

Records carry ``gt_choice`` (0-based index) and ``gt_choices`` (option texts, up to six: A–F). The option
is read by ``lamm.bench.parsers.parse_option`` (Markdown marks dropped; "The answer is (X)" / "[X]" /
"ANSWER: X", "The correct option is X", "Answer - X", "(X)", a leading letter, then a unique option text);
all six letters are read (ChEF lost option F). An unread answer is wrong and counted in ``unparsed``.

>>> recs = [{"gt_choice": 5, "gt_choices": list("abcdef")}, {"gt_choice": 0, "gt_choices": ["yes", "no"]}]
>>> r = MULTIPLE_CHOICE.evaluate(["The answer is (F)", "Hmm."], recs, ci=False)
>>> r.metrics
{'accuracy': 50.0, 'unparsed': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lamm.bench.metrics.base import METRICS, MetricReport, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT
from lamm.bench.parsers import parse_option


class MultipleChoiceMetric(PerSampleFamily):
    """``accuracy`` of the option read from the answer; ``unparsed`` answers are counted (and wrong)."""

    name = "multiple_choice"
    headline = "accuracy"
    metric_names = ("accuracy",)
    required_fields = ("gt_choice", "gt_choices")

    def check_record(self, index: int, record: Any) -> None:
        super().check_record(index, record)
        choices, gt = record["gt_choices"], record["gt_choice"]
        if not isinstance(choices, list) or not choices:
            raise RecordError(index, record, "gt_choices", f"expected a non-empty list of options, got {choices!r}")
        if isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < len(choices):
            raise RecordError(index, record, "gt_choice", f"expected an index in 0..{len(choices) - 1}, got {gt!r}")

    def parse(self, answer: Any, record: dict) -> int | None:
        """The chosen option's 0-based index, or ``None``."""
        choices = record.get("gt_choices")
        return parse_option(answer, choices if isinstance(choices, list) else 0)

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        return {"accuracy": float(parsed is not None and parsed == record["gt_choice"])}

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        """As ``PerSampleFamily.evaluate``, plus ``metrics["unparsed"]`` (the count, not a percent)."""
        report = super().evaluate(answers, records, ci=ci, seed=seed, n_boot=n_boot)
        report.metrics["unparsed"] = float(report.unparsed)
        return report


MULTIPLE_CHOICE = MultipleChoiceMetric()
METRICS.add("multiple_choice", MULTIPLE_CHOICE)
