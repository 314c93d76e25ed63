"""Common types of the metric families: ``MetricReport``, ``MetricFamily``, ``RecordError``, ``METRICS``.

See ``lamm.bench.metrics`` (the package docstring) for the API every family follows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_ratios
from lamm.registry import Registry


class RecordError(ValueError):
    """A benchmark record lacks a field or holds a wrong value.

    ``index`` is the record's 0-based position in the input, so callers can map it to a file line.
    """

    def __init__(self, index: int, record: Any, field_name: str, problem: str) -> None:
        self.index, self.field, self.problem = index, field_name, problem
        rid = record.get("id") if isinstance(record, dict) else None
        self.record_id = rid
        where = f"record {index}" + (f" (id {rid!r})" if rid is not None else "")
        super().__init__(f"{where}: field {field_name!r}: {problem}")


def _clean(x: Any) -> Any:
    """JSON-safe copy: NaN/inf → None, numpy scalars → Python, tuples → lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (np.floating, np.integer)):
        return _clean(x.item())
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass
class MetricReport:
    """Scores of one metric family over one set of answers.

    ``metrics``: name → value (percent unless the family documents otherwise); ``headline``: the name of
    the metric a leaderboard shows; ``n``: samples scored; ``unparsed``: answers the parser could not read
    (scored as wrong); ``ci``: name → 95% bootstrap interval (always the headline when ``ci=True``);
    ``per_sample``: one dict per input, in input order, with ``index``, ``id``, ``parsed`` (JSON-ready),
    ``unparsed`` and the sample's own scores; ``info``: notes (e.g. which synonym sources were used).
    """

    family: str
    metrics: dict[str, float]
    headline: str
    n: int
    unparsed: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    per_sample: list[dict] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, per_sample: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``null``); per-sample rows only when asked."""
        out: dict[str, Any] = {
            "family": self.family,
            "headline": self.headline,
            "metrics": _clean(dict(self.metrics)),
            "n": self.n,
            "unparsed": self.unparsed,
            "ci": {k: _clean(list(v)) for k, v in self.ci.items()},
            "info": _clean(self.info),
        }
        if per_sample:
            out["per_sample"] = _clean(self.per_sample)
        return out

    def to_json(self, *, per_sample: bool = False, indent: int | None = 1) -> str:
        """``to_dict`` serialised as strict JSON."""
        return json.dumps(self.to_dict(per_sample=per_sample), indent=indent, ensure_ascii=False, allow_nan=False)


class MetricFamily:
    """One family of metrics (one task type). Subclasses set the class attributes and implement
    ``parse`` and either ``score`` (per-sample families) or ``evaluate`` (corpus families)."""

    name: str = ""
    headline: str = ""
    metric_names: tuple[str, ...] = ()
    required_fields: tuple[str, ...] = ()
    #: metrics not on the 0–100 scale (e.g. ``mae`` in counts); everything else is percent
    unscaled: frozenset[str] = frozenset()

    def parse(self, answer: Any, record: dict) -> Any:
        """The structured, JSON-ready prediction read from ``answer``; ``None`` means unparsed. Never raises."""
        raise NotImplementedError

    def needs_image_size(self, record: dict) -> bool:
        """Whether scoring ``record`` needs ``record["image_size"] = (w, h)`` (callers fill it in)."""
        return False

    def check_record(self, index: int, record: Any) -> None:
        """Raise ``RecordError`` when ``record`` lacks a field this family needs."""
        if not isinstance(record, dict):
            raise RecordError(index, record, "<record>", f"expected a JSON object, got {type(record).__name__}")
        for f in self.required_fields:
            if f not in record:
                raise RecordError(index, record, f, f"missing (the {self.name} metrics need it)")

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        """Score ``answers[i]`` against ``records[i]`` for all i; see the package docstring."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<metric family {self.name!r}: {', '.join(self.metric_names)}>"


def check_inputs(family: MetricFamily, answers: Sequence[Any], records: Sequence[dict]) -> None:
    """Same length, and every record has what the family needs."""
    if len(answers) != len(records):
        raise ValueError(f"{family.name}: {len(answers)} answers for {len(records)} records; they must pair up")
    for i, r in enumerate(records):
        family.check_record(i, r)


Score = float | tuple[float, float]


class PerSampleFamily(MetricFamily):
    """A family whose metrics are ratios of per-sample sums: ``score`` returns, per metric, either a value
    (denominator 1) or ``(numerator, denominator)``; the metric is ``100 * Σnum / Σden`` (or unscaled)."""

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        """Per-sample scores of one parsed prediction (``parsed`` may be ``None``: score it as wrong)."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Notes stored in the report's ``info``."""
        return {}

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        n = len(records)
        num = {m: np.zeros(n) for m in self.metric_names}
        den = {m: np.zeros(n) for m in self.metric_names}
        rows, unparsed = [], 0
        for i, (answer, record) in enumerate(zip(answers, records)):
            parsed = self.parse(answer, record)
            unparsed += parsed is None
            scores = self.score(parsed, record, i)
            row = {"index": i, "id": record.get("id"), "parsed": parsed, "unparsed": parsed is None}
            for m in self.metric_names:
                s = scores[m]
                num[m][i], den[m][i] = (s if isinstance(s, tuple) else (s, 1.0))
                row[m] = s if not isinstance(s, tuple) else list(s)
            rows.append(row)
        metrics, ratios = {}, {}
        for m in self.metric_names:
            scale = 1.0 if m in self.unscaled else 100.0
            total = den[m].sum()
            metrics[m] = float(scale * num[m].sum() / total) if total > 0 else float("nan")
            ratios[m] = (num[m], den[m], scale)
        intervals = bootstrap_ratios(ratios, n_boot=n_boot, seed=seed) if ci else {}
        return MetricReport(self.name, metrics, self.headline, n, int(unparsed), intervals, rows, self.info())


#: every metric family by name (``METRICS.get("caption")``); filled when ``lamm.bench.metrics`` is imported
METRICS: Registry[MetricFamily] = Registry("metric family")
