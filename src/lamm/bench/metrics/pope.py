"""POPE yes/no object presence (hallucination desideratum): ``f1`` (headline), ``accuracy``, ``precision``,
``recall``, ``yes_ratio`` — all percent, the positive class being "yes".

Records carry ``gt_answer`` "yes" / "no" (``lamm.bench.desiderata.pope`` builds them). With TP, FP, TN, FN
counted over the answers:

* ``accuracy = (TP + TN) / n``; ``precision = TP / (TP + FP)``; ``recall = TP / (TP + FN)``;
* ``f1 = 2 TP / (2 TP + FP + FN)`` (= the harmonic mean of precision and recall; 0 when TP = 0);
* ``yes_ratio = (TP + FP) / n`` — the share of answers that say yes (50 on a balanced set for an unbiased
  model; POPE reports it to expose yes-bias).

A metric with a zero denominator is NaN (``null`` in JSON): e.g. ``precision`` of a model that never says
yes. **Unparsed answers** (neither yes nor no could be read) are counted in ``unparsed`` and treated as
*not-yes*: on a "yes" question one is a false negative; on a "no" question it is not a false positive,
but it is not a true negative either — accuracy scores every unparsed answer as wrong, so ``n`` always
includes them (``info`` gives the confusion matrix and the unparsed answers per gold class).

:func:`parse_yes_no` reads the first decisive word; it never raises:

>>> [parse_yes_no(a) for a in ["Yes, there is a cat.", "No.", "There is no cat.", "I don't see one.",
...                            "I'm not sure.", "There is a cat on the mat.", "The answer is (A)"]]
['yes', 'no', 'no', 'no', None, 'yes', None]
>>> r = POPE.evaluate(["Yes", "yes", "No", "maybe"], [{"gt_answer": g} for g in ("yes", "no", "no", "yes")],
...                   ci=False)
>>> {k: round(v, 2) for k, v in r.metrics.items()}, r.unparsed
({'f1': 50.0, 'accuracy': 50.0, 'precision': 50.0, 'recall': 50.0, 'yes_ratio': 50.0}, 1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, RecordError, check_inputs
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_ratios, bootstrap_weighted

_APOS = r"['’]"
# hedges come first in the alternation: at the same position "not sure" must win over "not"
_HEDGE = (rf"not\s+(?:sure|certain)|unsure|uncertain|unclear|"
          rf"(?:can{_APOS}?t|cannot|can\s+not|couldn{_APOS}?t|could\s+not)\s+(?:tell|determine|say|be\s+sure)|"
          rf"(?:hard|difficult|impossible)\s+to\s+(?:tell|say|determine)|"
          rf"(?:don{_APOS}?t|do\s+not)\s+know|no\s+way\s+to\s+(?:tell|know)")
_NO = (rf"no|not|nope|nah|none|never|nothing|nobody|nowhere|neither|nor|absent|cannot|unable|without|"
       rf"(?:don|doesn|didn|isn|aren|wasn|weren|can|couldn|won|wouldn|shouldn|hasn|haven|hadn|ain){_APOS}?t")
_YES = r"yes|yeah|yep|yup|yea|aye"
_DECISIVE = re.compile(rf"(?<![\w'’])(?:(?P<hedge>{_HEDGE})|(?P<no>{_NO})|(?P<yes>{_YES}))(?![\w'’])",
                       re.IGNORECASE)
# affirmations that count only when the answer holds no decisive word at all ("There is a cat.")
_WEAK_YES = re.compile(r"(?<![\w'’])(?:there\s+(?:is|are|'s|’s)|i\s+(?:can\s+)?see|(?:is|are)\s+(?:present|visible)|"
                       r"contains?|shows?|depicts?|certainly|definitely|indeed|of\s+course|absolutely|sure|"
                       r"correct|affirmative)(?![\w'’])", re.IGNORECASE)


def parse_yes_no(answer: Any) -> str | None:
    """``"yes"`` / ``"no"`` from the first decisive word of ``answer``, ``None`` when unparsed. Never raises.

    Decisive words: yes (yes, yeah, yep, ...), no (no, not, none, never, nothing, "n't" forms, cannot,
    absent, without, ...) and hedges ("not sure", "can't tell", "don't know", ... → ``None``). Without
    any, a plain affirmation ("there is", "I see", "visible", "certainly", ...) reads as yes.
    """
    if not isinstance(answer, str):
        return None
    m = _DECISIVE.search(answer)
    if m is not None:
        return None if m.group("hedge") else ("no" if m.group("no") else "yes")
    return "yes" if _WEAK_YES.search(answer) else None


def _ratio(top: float, bottom: float) -> float:
    return 100.0 * top / bottom if bottom > 0 else float("nan")


def pope_scores(tp: int, fp: int, tn: int, fn: int, n: int) -> dict[str, float]:
    """The five POPE metrics (percent; NaN for a zero denominator) from a confusion matrix.

    ``fn`` includes unparsed answers to "yes" questions; ``n`` is every answer, so the
    ``n - tp - fp - tn - fn`` unparsed answers to "no" questions count as wrong in ``accuracy`` only.

    >>> pope_scores(tp=3, fp=1, tn=4, fn=2, n=10)["f1"]
    66.66666666666667
    """
    return {"f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, n),
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "yes_ratio": _ratio(tp + fp, n)}


def _gold(index: int, record: dict) -> bool:
    g = record["gt_answer"]
    value = g.strip().lower() if isinstance(g, str) else None
    if value not in ("yes", "no"):
        raise RecordError(index, record, "gt_answer", f"expected 'yes' or 'no', got {g!r}")
    return value == "yes"


class PopeMetric(MetricFamily):
    """POPE metrics over yes/no answers (see the module docstring)."""

    name = "pope"
    headline = "f1"
    metric_names = ("f1", "accuracy", "precision", "recall", "yes_ratio")
    required_fields = ("gt_answer",)

    def parse(self, answer: Any, record: dict) -> str | None:
        """``"yes"``, ``"no"`` or ``None`` (:func:`parse_yes_no`)."""
        return parse_yes_no(answer)

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        n = len(records)
        gold = np.array([_gold(i, r) for i, r in enumerate(records)], dtype=bool)
        parsed = [self.parse(a, r) for a, r in zip(answers, records)]
        yes = np.array([p == "yes" for p in parsed], dtype=bool)
        no = np.array([p == "no" for p in parsed], dtype=bool)
        unread = ~(yes | no)
        tp, fp, tn, fn = yes & gold, yes & ~gold, no & ~gold, ~yes & gold  # unparsed: never a yes
        metrics = pope_scores(int(tp.sum()), int(fp.sum()), int(tn.sum()), int(fn.sum()), n)
        rows = [{"index": i, "id": r.get("id"), "parsed": p, "unparsed": p is None,
                 "accuracy": float(tp[i] or tn[i]), "yes": float(yes[i])}
                for i, (r, p) in enumerate(zip(records, parsed))]
        intervals: dict[str, tuple[float, float]] = {}
        if ci and n:
            ones = np.ones(n)
            # the same seed gives bootstrap_ratios and bootstrap_weighted the same resamples of samples
            intervals = bootstrap_ratios({"accuracy": (tp | tn, ones, 100.0), "precision": (tp, yes, 100.0),
                                          "recall": (tp, gold, 100.0), "yes_ratio": (yes, ones, 100.0)},
                                         n_boot=n_boot, seed=seed)
            cols = np.stack([tp, fp, fn]).astype(float).T  # (n, 3)

            def f1(w: np.ndarray) -> np.ndarray:  # F1 is not a per-sample ratio: recompute it per resample
                t, f_p, f_n = (w @ cols).T
                bottom = 2 * t + f_p + f_n
                return np.where(bottom > 0, 200.0 * t / np.where(bottom > 0, bottom, 1.0), np.nan)

            intervals = {"f1": bootstrap_weighted(f1, n, n_boot=n_boot, seed=seed), **intervals}
        strategies = sorted({str(r["strategy"]) for r in records if r.get("strategy") is not None})
        info = {
            "confusion": {"tp": int(tp.sum()), "fp": int(fp.sum()), "tn": int(tn.sum()), "fn": int(fn.sum())},
            "positives": int(gold.sum()), "negatives": int(n - gold.sum()),
            "unparsed_yes_questions": int((unread & gold).sum()), "unparsed_no_questions": int((unread & ~gold).sum()),
            "unparsed_policy": "not-yes (false negative on yes questions); wrong for accuracy",
            "strategies": strategies,
        }
        return MetricReport(self.name, {k: float(v) for k, v in metrics.items()}, self.headline, n,
                            int(unread.sum()), intervals, rows, info)


POPE = PopeMetric()
METRICS.add("pope", POPE)
