"""3D detection (ScanNet): ``map25``, ``map50``, ``ar25``, ``ar50``, ``lamm_recall50``.

Boxes are axis-aligned ``[cx, cy, cz, lx, ly, lz]`` (metres), parsed in groups of 6; labels and scores as
in 2D detection (class named nearest before the box; score ``1 / (k + 1)`` by emission order).

* ``map25`` / ``map50`` — mean over classes with ground truth of VOC all-point AP; detections of a class
  are ranked by score over all scenes and each takes its best-IoU ground truth of that class in its
  scene: a true positive when IoU is **strictly** above the threshold and that ground truth is still
  unmatched (the VoteNet / ScanNet convention).
* ``ar25`` / ``ar50`` — mean over classes of the recall after all detections.
* ``lamm_recall50`` — LAMM's "mAP": a ground-truth object counts when its class is named anywhere in the
  answer and any parsed box has IoU > 0.5 with it.

A negative length is invalid and gives the box zero volume (it can match nothing); LAMM took ``abs``.

>>> round(iou_3d([0, 0, 0, 2, 2, 2], [1, 0, 0, 2, 2, 2]), 6)  # overlap 1 × 2 × 2 of union 12
0.333333
>>> iou_3d([0, 0, 0, 1, 1, 1], [5, 5, 0, 1, 1, 1])  # disjoint on two axes: 0, not a positive volume
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.ap import voc_ap
from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, check_inputs
from lamm.bench.metrics.detection2d import check_objects, labeled_boxes, mean_over_classes
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_weighted
from lamm.bench.metrics.synonyms import SCANNET_CLASSES, ObjectVocabulary, label_key
from lamm.bench.parsers import parse_boxes_3d_with_pos

EPS = 1e-9


def iou_3d(a: Sequence[float], b: Sequence[float]) -> float:
    """Axis-aligned 3D IoU of ``[cx, cy, cz, lx, ly, lz]`` boxes: the intersection is the product over
    x, y, z of ``max(0, overlap)``, so boxes disjoint on any axis (or two) have IoU 0."""
    inter, vol_a, vol_b = 1.0, 1.0, 1.0
    for k in range(3):
        la, lb = max(0.0, float(a[k + 3])), max(0.0, float(b[k + 3]))
        lo = max(a[k] - la / 2, b[k] - lb / 2)
        hi = min(a[k] + la / 2, b[k] + lb / 2)
        inter *= max(0.0, hi - lo)
        vol_a, vol_b = vol_a * la, vol_b * lb
    return inter / (vol_a + vol_b - inter + EPS)


def _scene_matches(boxes: list[dict], objs: list[dict], thr: float) -> list[bool]:
    """VOC-style flags for one scene: in score order, each box takes its best-IoU same-class object."""
    used: set[int] = set()
    flags = []
    for b in boxes:
        best, best_j = -1.0, -1
        for j, o in enumerate(objs):
            if b["label"] is not None and label_key(o["label"]) == label_key(b["label"]):
                v = iou_3d(b["bbox"], o["bbox"])
                if v > best:
                    best, best_j = v, j
        hit = best > thr and best_j not in used
        if hit:
            used.add(best_j)
        flags.append(hit)
    return flags


class Detection3DMetric(MetricFamily):
    """3D detection metrics against ``object`` = ``[{label, bbox: [cx, cy, cz, lx, ly, lz]}]``."""

    name = "detection3d"
    headline = "map25"
    metric_names = ("map25", "map50", "ar25", "ar50", "lamm_recall50")
    required_fields = ("object",)

    def __init__(self, vocabulary: Sequence[str] = SCANNET_CLASSES) -> None:
        """``vocabulary``: the classes recognised in answers; ground-truth labels are always added."""
        self._vocab = ObjectVocabulary(vocabulary)
        self.vocabulary = self._vocab.vocabulary

    def parse(self, answer: Any, record: dict) -> list[dict] | None:
        """Boxes ``{"label", "bbox", "score"}`` in answer order, or ``None``."""
        return labeled_boxes(answer, self._vocab.matcher([record]), parse=parse_boxes_3d_with_pos)

    def _tables(self, preds: list[list[dict] | None], records: Sequence[dict], thr: float):
        """Per class with ground truth: (tp flags in rank order, scene index, gts per scene)."""
        classes = sorted({label_key(o["label"]) for r in records for o in r["object"]})
        tables = []
        for c in classes:
            tps, scenes, scores = [], [], []
            n_gt = np.zeros(len(records))
            for i, (rec, boxes) in enumerate(zip(records, preds)):
                objs = [o for o in rec["object"] if label_key(o["label"]) == c]
                n_gt[i] = len(objs)
                mine = [b for b in boxes or [] if b["label"] is not None and label_key(b["label"]) == c]
                tps += _scene_matches(mine, objs, thr)
                scenes += [i] * len(mine)
                scores += [b["score"] for b in mine]
            order = np.argsort(-np.asarray(scores, dtype=float), kind="mergesort")
            tables.append((np.asarray(tps, dtype=bool)[order], np.asarray(scenes, dtype=int)[order], n_gt))
        return tables

    @staticmethod
    def _map(tables, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.atleast_2d(weights).astype(float)
        res = [voc_ap(tp, img, n_gt, w) for tp, img, n_gt in tables]
        return (mean_over_classes([r[0] for r in res], w.shape[0]),
                mean_over_classes([r[1] for r in res], w.shape[0]))

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        for i, r in enumerate(records):
            check_objects(i, r, 6)
        matcher = self._vocab.matcher(records)
        preds = [labeled_boxes(a, matcher, parse=parse_boxes_3d_with_pos) for a in answers]
        ones = np.ones((1, len(records)))
        metrics: dict[str, float] = {}
        tables = {}
        for thr, tag in ((0.25, "25"), (0.5, "50")):
            tables[tag] = self._tables(preds, records, thr)
            m, r = self._map(tables[tag], ones)
            metrics["map" + tag], metrics["ar" + tag] = float(m[0]), float(r[0])
        rows, hits_all, n_gt = [], 0, 0
        for i, (answer, rec, boxes) in enumerate(zip(answers, records, preds)):
            named = {label_key(x) for x in matcher.named(answer)} if isinstance(answer, str) else set()
            hits = sum(label_key(o["label"]) in named and any(iou_3d(b["bbox"], o["bbox"]) > 0.5 for b in boxes or [])
                       for o in rec["object"])
            hits_all, n_gt = hits_all + hits, n_gt + len(rec["object"])
            rows.append({"index": i, "id": rec.get("id"), "parsed": boxes, "unparsed": boxes is None,
                         "n_pred": len(boxes or []), "n_gt": len(rec["object"]), "lamm_hits": int(hits)})
        metrics = {k: metrics[k] for k in ("map25", "map50", "ar25", "ar50")}
        metrics["lamm_recall50"] = 100 * hits_all / n_gt if n_gt else float("nan")
        intervals = {}
        if ci:
            intervals["map25"] = bootstrap_weighted(lambda w: self._map(tables["25"], w)[0], len(records),
                                                    n_boot=n_boot, seed=seed)
        unparsed = sum(p is None for p in preds)
        return MetricReport(self.name, metrics, self.headline, len(records), unparsed, intervals, rows,
                            {"classes": sorted({label_key(o["label"]) for r in records for o in r["object"]})})


DETECTION3D = Detection3DMetric()
METRICS.add("detection3d", DETECTION3D)
