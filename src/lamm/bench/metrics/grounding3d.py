"""3D visual grounding (ScanRefer): ``acc25`` and ``acc50`` of the first parsed box.

The answer's **first** box ``[cx, cy, cz, lx, ly, lz]`` (groups of 6 numbers) is compared with the
record's ``object`` (the same six numbers) by axis-aligned 3D IoU; a hit when IoU ≥ 0.25 / ≥ 0.5 (the
ScanRefer convention). LAMM reported only Acc@0.5. An answer without a box is unparsed (a miss).

>>> rec = {"object": [1.2, -0.4, 0.45, 0.55, 0.6, 0.9]}
>>> GROUNDING3D.evaluate(["It is at [1.2, -0.4, 0.45, 0.55, 0.6, 0.9]."], [rec], ci=False).metrics
{'acc25': 100.0, 'acc50': 100.0}
"""

from __future__ import annotations

from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.detection3d import iou_3d
from lamm.bench.parsers import parse_boxes_3d


class Grounding3DMetric(PerSampleFamily):
    """``acc25`` / ``acc50``: the first parsed box reaches IoU 0.25 / 0.5 with ``object``."""

    name = "grounding3d"
    headline = "acc50"
    metric_names = ("acc25", "acc50")
    required_fields = ("object",)

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
        return {"acc25": float(iou >= 0.25), "acc50": float(iou >= 0.5)}


GROUNDING3D = Grounding3DMetric()
METRICS.add("grounding3d", GROUNDING3D)
