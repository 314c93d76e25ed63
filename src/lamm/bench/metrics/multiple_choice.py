"""Multiple-choice VQA (ScienceQA, AI2D, ScanQA): ``accuracy`` (percent) and ``unparsed`` (a count).

Records carry ``gt_choice`` (0-based index) and ``gt_choices`` (option texts, up to six: A–F). The option
is read by ``lamm.bench.parsers.parse_option`` (Markdown marks dropped; "The answer is (X)" / "[X]" /
"ANSWER: X", "The correct option is X", "Answer - X", "(X)", a leading letter, then a unique option text);
all six letters are read (ChEF lost option F). An unread answer is wrong and counted in ``unparsed``.

Per category: when records carry ``category`` (MMBench's ability, SEED-Bench's dimension) the report's
``info["categories"]`` gives each category's ``accuracy`` (the headline) with its counts and 95% interval
(:func:`category_accuracy`), and ``info["l2_categories"]`` the same for ``l2_category`` (MMBench's
coarser grouping); records without one are counted in ``info["uncategorized"]``. Records without any
category leave ``info`` as it was; the metrics and the headline never change.

>>> recs = [{"gt_choice": 5, "gt_choices": list("abcdef")}, {"gt_choice": 0, "gt_choices": ["yes", "no"]}]
>>> r = MULTIPLE_CHOICE.evaluate(["The answer is (F)", "Hmm."], recs, ci=False)
>>> r.metrics
{'accuracy': 50.0, 'unparsed': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lamm.bench.metrics.base import METRICS, MetricReport, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_ratio
from lamm.bench.parsers import parse_option

#: record field -> key of its per-category breakdown in the report's ``info``
CATEGORY_FIELDS = {"category": "categories", "l2_category": "l2_categories"}


def category_accuracy(
    correct: Sequence[bool], unparsed: Sequence[bool], categories: Sequence[str | None],
    metric: str = "accuracy",
) -> dict[str, dict[str, float]]:
    """Per category (sorted by name): ``metric`` (percent right; named as the family's headline, e.g.
    ``match_rate`` for instruction following), ``questions``, ``correct`` and ``unparsed`` (counts), from
    one entry per question; a question whose category is ``None`` is in none.

    >>> category_accuracy([True, False, True], [False, True, False], ["b", "a", "a"])
    {'a': {'accuracy': 50.0, 'questions': 2, 'correct': 1, 'unparsed': 1}, \
'b': {'accuracy': 100.0, 'questions': 1, 'correct': 1, 'unparsed': 0}}
    """
    out: dict[str, dict[str, float]] = {}
    for cat in sorted({c for c in categories if c is not None}):
        mine = [i for i, c in enumerate(categories) if c == cat]
        right = sum(bool(correct[i]) for i in mine)
        out[cat] = {metric: 100.0 * right / len(mine), "questions": len(mine), "correct": right,
                    "unparsed": sum(bool(unparsed[i]) for i in mine)}
    return out


def _category_of(record: dict, field: str) -> str | None:
    value = record.get(field)
    return value.strip() if isinstance(value, str) and value.strip() else None


def category_info(correct: Sequence[bool], unparsed: Sequence[bool], records: Sequence[dict], metric: str, *,
                  ci: bool, seed: int, n_boot: int) -> dict[str, Any]:
    """The report's per-category ``info`` entries (``categories``, ``l2_categories``, ``uncategorized``)
    from one entry per scored unit (a question; a record of a circular run) and its record; empty when no
    record has a category. Each category's interval resamples its own units from ``seed``."""
    info: dict[str, Any] = {}
    for field, key in CATEGORY_FIELDS.items():
        cats = [_category_of(r, field) for r in records]
        if all(c is None for c in cats):
            continue
        per = category_accuracy(correct, unparsed, cats, metric)
        if ci:
            for name, c in per.items():
                ok = [float(k) for k, cat in zip(correct, cats) if cat == name]
                c[f"{metric}_ci"] = list(bootstrap_ratio(ok, [1.0] * len(ok), n_boot=n_boot, seed=seed))
        info[key] = per
        if field == "category":
            info["uncategorized"] = sum(c is None for c in cats)
    return info


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
        """As ``PerSampleFamily.evaluate``, plus ``metrics["unparsed"]`` (the count, not a percent) and, for
        records with a ``category`` / ``l2_category``, the per-category accuracies in ``info`` (module
        docstring)."""
        report = super().evaluate(answers, records, ci=ci, seed=seed, n_boot=n_boot)
        report.metrics["unparsed"] = float(report.unparsed)
        # the headline is a per-question 0/1 score here and in the subclasses (instruction following)
        correct = [row.get(self.headline) == 1.0 for row in report.per_sample]
        unparsed = [row["unparsed"] for row in report.per_sample]
        report.info.update(category_info(correct, unparsed, records, self.headline, ci=ci, seed=seed,
                                         n_boot=n_boot))
        return report


MULTIPLE_CHOICE = MultipleChoiceMetric()
METRICS.add("multiple_choice", MULTIPLE_CHOICE)
