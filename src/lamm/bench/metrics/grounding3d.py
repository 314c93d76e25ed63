"""3D visual grounding (ScanRefer): ``acc25`` and ``acc50`` of the first parsed box, overall and split
into *unique* / *multiple* referrals.

The answer's **first** box ``[cx, cy, cz, lx, ly, lz]`` (groups of 6 numbers) is compared with the
record's ``object`` (the same six numbers) by axis-aligned 3D IoU; a hit when IoU ≥ 0.25 / ≥ 0.5 (the
ScanRefer convention). LAMM reported only Acc@0.5. An answer without a box is unparsed (a miss).

ScanRefer reports each accuracy overall and on two subsets: *unique* (the target is the only object of
its class in the scene) and *multiple* (distractors of the same class exist). A record says which with
``eval_type`` (``"unique"`` / ``"multiple"``, ScanRefer's name) or a boolean ``unique``; then the report
adds ``acc25_unique``, ``acc50_unique``, ``acc25_multiple``, ``acc50_multiple`` — each the accuracy over
the tagged records of that subset, present when the subset has at least one record. ``info["split"]``
counts the records of each subset and the untagged ones (which count only overall); when no record is
tagged, ``info["split_missing"]`` says so.

>>> rec = {"object": [1.2, -0.4, 0.45, 0.55, 0.6, 0.9]}
>>> GROUNDING3D.evaluate(["It is at [1.2, -0.4, 0.45, 0.55, 0.6, 0.9]."], [rec], ci=False).metrics
{'acc25': 100.0, 'acc50': 100.0}
>>> recs = [{"object": [0, 0, 0, 1, 1, 1], "eval_type": "unique"},
...         {"object": [0, 0, 0, 1, 1, 1], "eval_type": "multiple"}]
>>> r = GROUNDING3D.evaluate(["[0, 0, 0, 1, 1, 1]", "none"], recs, ci=False)
>>> r.metrics["acc50"], r.metrics["acc50_unique"], r.metrics["acc50_multiple"], r.info["split"]
(50.0, 100.0, 0.0, {'unique': 1, 'multiple': 1, 'untagged': 0})
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lamm.bench.metrics.base import METRICS, MetricReport, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.detection3d import iou_3d
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT
from lamm.bench.parsers import parse_boxes_3d

SPLITS = ("unique", "multiple")
_SPLIT_METRICS = {s: (f"acc25_{s}", f"acc50_{s}") for s in SPLITS}


def referral_split(record: dict, index: int) -> str | None:
    """``"unique"``, ``"multiple"`` or ``None`` (untagged) from ``eval_type`` or a boolean ``unique``;
    a value of another kind, or the two fields disagreeing, is a :class:`RecordError`."""
    et, uq = record.get("eval_type"), record.get("unique")
    split = None
    if et is not None:
        if not isinstance(et, str) or et.strip().lower() not in SPLITS:
            raise RecordError(index, record, "eval_type", f"expected 'unique' or 'multiple', got {et!r}; "
                              "fix it or remove the field (the record then counts only overall)")
        split = et.strip().lower()
    if uq is not None:
        if not isinstance(uq, bool):
            raise RecordError(index, record, "unique", f"expected true or false, got {uq!r}")
        from_bool = "unique" if uq else "multiple"
        if split is not None and split != from_bool:
            raise RecordError(index, record, "unique", f"says {from_bool!r} but eval_type says {split!r}; "
                              "keep one of the two fields")
        split = from_bool
    return split


class Grounding3DMetric(PerSampleFamily):
    """``acc25`` / ``acc50``: the first parsed box reaches IoU 0.25 / 0.5 with ``object``; the same per
    unique / multiple subset when records are tagged (see the module docstring)."""

    name = "grounding3d"
    headline = "acc50"
    metric_names = ("acc25", "acc50", *_SPLIT_METRICS["unique"], *_SPLIT_METRICS["multiple"])
    required_fields = ("object",)

    def check_record(self, index: int, record: Any) -> None:
        super().check_record(index, record)
        referral_split(record, index)

    def parse(self, answer: Any, record: dict) -> list[float] | None:
        """The first 3D box of the answer, or ``None``."""
        boxes = parse_boxes_3d(answer)
        return boxes[0] if boxes else None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        gt = record["object"]
        if not isinstance(gt, list) or len(gt) != 6 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in gt
        ):
            raise RecordError(index, record, "object", f"expected [cx, cy, cz, lx, ly, lz], got {gt!r}")
        iou = iou_3d(parsed, gt) if parsed is not None else 0.0
        hit25, hit50 = float(iou >= 0.25), float(iou >= 0.5)
        out: dict[str, Score] = {"acc25": hit25, "acc50": hit50}
        split = referral_split(record, index)
        for s, (m25, m50) in _SPLIT_METRICS.items():
            # (numerator, denominator): a record outside the subset adds nothing to its accuracy
            member = 1.0 if split == s else 0.0
            out[m25], out[m50] = (hit25 * member, member), (hit50 * member, member)
        return out

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        """As ``PerSampleFamily.evaluate``; subset metrics only for subsets with records, per-sample subset
        scores only on the records of that subset, and ``info["split"]`` saying what was found."""
        report = super().evaluate(answers, records, ci=ci, seed=seed, n_boot=n_boot)
        splits = [referral_split(r, i) for i, r in enumerate(records)]
        counts = {s: splits.count(s) for s in SPLITS}
        for s, names in _SPLIT_METRICS.items():
            for row, split in zip(report.per_sample, splits):
                for m in names:
                    if split == s:
                        row[m] = row[m][0]
                    else:
                        del row[m]
            if counts[s] == 0:
                for m in names:
                    report.metrics.pop(m, None)
                    report.ci.pop(m, None)
        report.info["split"] = {**counts, "untagged": splits.count(None)}
        if not any(counts.values()):
            report.info["split_missing"] = ("no record carries eval_type ('unique'/'multiple') or unique "
                                            "(true/false): only overall acc25/acc50 are reported")
        return report


GROUNDING3D = Grounding3DMetric()
METRICS.add("grounding3d", GROUNDING3D)
