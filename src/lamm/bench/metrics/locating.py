"""Binary locating (Locating-VOC2012 / -LSP / -FSC147): ``accuracy``, and ``lamm_accuracy``.

The answer's points ``[x, y]`` are read in 0–1 image coordinates; "inside" is strict on every side.
The record's ground-truth field decides the rule:

* ``object`` (VOC2012): ``[{label, bbox: [x1, y1, x2, y2] in 0–1}]``. Scored **per object**: an object
  is located when some parsed point lies inside its box *and* its class (or a synonym) is named. For
  ``accuracy`` the class may be named in the answer **or** in the record's ``query`` (a question such as
  "Where is the horse?" has already named it; a bare "[0.5, 0.6]" answers it). ``lamm_accuracy`` is
  LAMM's rule (ChEF ``InsideBbox``: ``classification_acc(label, answer)``): the class must be named in
  the **answer**. Both pool objects over images.
* ``gt_joints`` (LSP): 14 ``[x, y, ...]`` in pixels; the target box spans all 14 joints; points are
  scaled by ``record["image_size"] = (w, h)``. One target per image.
* ``points`` (FSC147): either boxes ``[x1, y1, x2, y2]`` (a point inside any box is correct) or dot
  annotations ``[x, y]`` (the target box spans all dots, like LSP's joints). Coordinates above 1 are
  pixels and are normalised by ``image_size``. One target per image.

For the single-target kinds ``accuracy`` judges only the **first** point of the answer, so listing many
points cannot score; ``lamm_accuracy`` accepts any point, as LAMM did. An answer with no point is unparsed.

>>> rec = {"object": [{"label": "horse", "bbox": [0.1, 0.2, 0.8, 0.9]}, {"label": "person", "bbox": [0.3, 0.1, 0.5, 0.5]}]}
>>> LOCATING.evaluate(["The horse is at [0.5, 0.6]."], [rec], ci=False).metrics["accuracy"]
50.0
"""

from __future__ import annotations

from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.keypoints import image_size
from lamm.bench.metrics.synonyms import LabelMatcher
from lamm.bench.parsers import parse_points

_KINDS = ("object", "gt_joints", "points")


def _inside(p: list[float], box: list[float]) -> bool:
    return box[0] < p[0] < box[2] and box[1] < p[1] < box[3]


def _numbers(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def _kind(record: dict) -> str | None:
    return next((k for k in _KINDS if k in record), None)


class LocatingMetric(PerSampleFamily):
    """``accuracy`` / ``lamm_accuracy`` of "a predicted point lies inside the target box"."""

    name = "locating"
    headline = "accuracy"
    metric_names = ("accuracy", "lamm_accuracy")

    def __init__(self) -> None:
        self._matchers: dict[str, LabelMatcher] = {}

    def check_record(self, index: int, record: Any) -> None:
        super().check_record(index, record)
        if _kind(record) is None:
            raise RecordError(index, record, "object", "missing: a locating record needs 'object' (VOC2012), "
                              "'gt_joints' (LSP) or 'points' (FSC147)")

    def needs_image_size(self, record: dict) -> bool:
        kind = _kind(record)
        if kind == "gt_joints":
            return True
        pts = record.get("points") if kind == "points" else None
        return isinstance(pts, list) and any(_numbers(p) and any(abs(v) > 1 for v in p) for p in pts)

    def parse(self, answer: Any, record: dict) -> dict[str, list] | None:
        """``{"points": [[x, y], ...]}`` (plus ``"named"``: the record's object classes named in the answer,
        for ``object`` records), or ``None`` when the answer has no point."""
        pts = parse_points(answer)
        if pts is None:
            return None
        out: dict[str, list] = {"points": pts}
        if _kind(record) == "object" and isinstance(record.get("object"), list):
            labels = [str(o.get("label", "")) for o in record["object"] if isinstance(o, dict)]
            out["named"] = [lab for lab in dict.fromkeys(labels) if self._named(lab, answer)]
        return out

    def _named(self, label: str, text: Any) -> bool:
        m = self._matchers.setdefault(label, LabelMatcher([label]))
        return bool(m.named(text)) if isinstance(text, str) else False

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        pts = parsed["points"] if parsed else []
        kind = _kind(record)
        if kind == "object":
            objs = record["object"]
            if not isinstance(objs, list) or not all(isinstance(o, dict) and "bbox" in o for o in objs):
                raise RecordError(index, record, "object", "expected a list of {label, bbox}")
            named = set(parsed.get("named", [])) if parsed else set()
            hits = lamm_hits = 0
            for o in objs:
                if not _numbers(o["bbox"]) or len(o["bbox"]) != 4:
                    raise RecordError(index, record, "object", f"bbox must be 4 numbers, got {o['bbox']!r}")
                label = str(o.get("label", ""))
                if not any(_inside(p, o["bbox"]) for p in pts):
                    continue
                in_answer = label in named
                lamm_hits += in_answer
                hits += in_answer or self._named(label, record.get("query"))
            n_obj = float(len(objs))
            return {"accuracy": (float(hits), n_obj), "lamm_accuracy": (float(lamm_hits), n_obj)}
        boxes = self._target_boxes(index, record, kind)
        first = bool(pts) and any(_inside(pts[0], b) for b in boxes)
        anyp = any(_inside(p, b) for p in pts for b in boxes)
        return {"accuracy": float(first), "lamm_accuracy": float(anyp)}

    def _target_boxes(self, index: int, record: dict, kind: str) -> list[list[float]]:
        """Target boxes in 0–1 image coordinates."""
        if kind == "gt_joints":
            w, h = image_size(index, record)
            joints = record["gt_joints"]
            if not isinstance(joints, list) or not joints or not all(_numbers(j) and len(j) >= 2 for j in joints):
                raise RecordError(index, record, "gt_joints", "expected a list of [x, y, ...] numbers")
            xs, ys = [j[0] / w for j in joints], [j[1] / h for j in joints]
            return [[min(xs), min(ys), max(xs), max(ys)]]
        pts = record["points"]
        if not isinstance(pts, list) or not pts or not all(_numbers(p) and len(p) in (2, 4) for p in pts):
            raise RecordError(index, record, "points", "expected a non-empty list of [x, y] or [x1, y1, x2, y2]")
        if self.needs_image_size(record):
            w, h = image_size(index, record)
            pts = [[v / (w if k % 2 == 0 else h) for k, v in enumerate(p)] for p in pts]
        if all(len(p) == 4 for p in pts):
            return [list(p) for p in pts]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return [[min(xs), min(ys), max(xs), max(ys)]]


LOCATING = LocatingMetric()
METRICS.add("locating", LOCATING)
