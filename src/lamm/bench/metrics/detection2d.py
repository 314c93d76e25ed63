"""2D detection (VOC2012): ``ap50``, ``ap`` (COCO AP@[.5:.95]), ``precision50``, ``recall50``, ``lamm_recall50``.

Parsing: boxes ``[x1, y1, x2, y2]`` (0–1) by ``parse_boxes_2d``; a box's class is the class named
*nearest before it* in the answer ("The person is at [...]. The motorcycle is at [...]"), with synonyms
("motorcycle" names ``motorbike``); a box with no class named before it is unlabeled and can match no
ground truth. Boxes get confidence scores by emission order (first = highest: ``1 / (k + 1)``).

* ``ap50`` / ``ap`` — computed **with pycocotools** (``COCOeval``, bbox, all areas, 100 detections per
  image and class): the records become an in-memory COCO ground truth (one image per record, categories =
  the vocabulary), the labeled boxes its results. Zero/negative widths are clamped to 0 so a degenerate
  box counts as a false positive rather than being ignored. As in COCO, classes without ground truth in
  the scored set are left out of the mean (boxes of such classes cannot lower AP; they do lower
  ``precision50``).
* ``precision50`` / ``recall50`` — one-to-one greedy matching per image (pairs of the same class taken in
  decreasing IoU, IoU ≥ 0.5); precision's denominator counts every parsed box, labeled or not.
* ``lamm_recall50`` — LAMM's "mAP": a ground-truth object counts when its class is named *anywhere* in
  the answer and *any* parsed box has IoU > 0.5 with it (a recall, misnamed by LAMM).

The headline's bootstrap re-accumulates COCO's per-image matches under image weights (``ap.coco_ap``).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.ap import coco_ap
from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, RecordError, check_inputs
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_weighted
from lamm.bench.metrics.synonyms import VOC_CLASSES, LabelMatcher, ObjectVocabulary, label_key
from lamm.bench.parsers import parse_boxes_2d_with_pos


def iou_2d(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; inverted sides give zero area.

    >>> iou_2d([0, 0, 2, 2], [1, 1, 3, 3])
    0.14285714285714285
    """
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def labeled_boxes(text: Any, matcher: LabelMatcher, parse=parse_boxes_2d_with_pos) -> list[dict] | None:
    """Parsed boxes as ``{"label", "bbox", "score"}`` (label: nearest class named before the box, or
    ``None``), or ``None`` when the answer has no box. Shared with 3D detection."""
    boxes = parse(text)
    if not boxes:
        return None
    mentions = matcher.find(text)
    out = []
    for k, (box, pos) in enumerate(boxes):
        before = [label for _, end, label, _ in mentions if end <= pos]
        out.append({"label": before[-1] if before else None, "bbox": box, "score": 1.0 / (k + 1)})
    return out


def check_objects(index: int, record: Any, size: int) -> list[dict]:
    """``record["object"]`` validated as a list of ``{label, bbox}`` with ``size`` numbers per box."""
    objs = record["object"]
    if not isinstance(objs, list):
        raise RecordError(index, record, "object", f"expected a list of {{label, bbox}}, got {type(objs).__name__}")
    for o in objs:
        box = o.get("bbox") if isinstance(o, dict) else None
        if not isinstance(box, list) or len(box) != size or not all(isinstance(v, (int, float)) for v in box):
            raise RecordError(index, record, "object", f"each object needs a label and a bbox of {size} numbers, got {o!r}")
        if not isinstance(o.get("label"), str):
            raise RecordError(index, record, "object", f"object without a class label: {o!r}")
    return objs


def greedy_matches(preds: list[dict], gts: list[dict], iou, thr: float) -> int:
    """True positives of a one-to-one matching: same class, IoU ≥ ``thr``, pairs taken by decreasing IoU."""
    pairs = []
    for i, p in enumerate(preds):
        for j, g in enumerate(gts):
            if p["label"] is not None and label_key(p["label"]) == label_key(g["label"]):
                v = iou(p["bbox"], g["bbox"])
                if v >= thr:
                    pairs.append((-v, i, j))
    used_p, used_g, tp = set(), set(), 0
    for _, i, j in sorted(pairs):
        if i not in used_p and j not in used_g:
            used_p.add(i), used_g.add(j)
            tp += 1
    return tp


def _xywh(b: Sequence[float]) -> list[float]:
    return [float(b[0]), float(b[1]), max(0.0, b[2] - b[0]), max(0.0, b[3] - b[1])]


def coco_evaluate(preds: list[list[dict]], records: list[dict], categories: list[str]):
    """Run pycocotools on in-memory ground truth / results; returns the finished ``COCOeval``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat_id = {label_key(c): k + 1 for k, c in enumerate(categories)}
    anns, dets = [], []
    for i, rec in enumerate(records):
        for o in rec["object"]:
            x, y, w, h = _xywh(o["bbox"])
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat_id[label_key(o["label"])],
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        for p in preds[i] or []:
            if p["label"] is not None and label_key(p["label"]) in cat_id:
                dets.append({"image_id": i + 1, "category_id": cat_id[label_key(p["label"])],
                             "bbox": _xywh(p["bbox"]), "score": p["score"]})
    gt = COCO()
    gt.dataset = {"images": [{"id": i + 1} for i in range(len(records))], "annotations": anns,
                  "categories": [{"id": k + 1, "name": c} for k, c in enumerate(categories)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
        gt.createIndex()
        dt = gt.loadRes(dets) if dets else COCO()
        if not dets:  # loadRes cannot take an empty list; an empty result set is valid
            dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    return ev


def coco_summary(ev) -> tuple[float, float]:
    """``(AP@[.5:.95], AP@.5)`` in percent from a finished ``COCOeval`` (as its ``summarize`` computes)."""
    prec = ev.eval["precision"][:, :, :, 0, -1]  # all areas, maxDets = 100

    def mean(p: np.ndarray) -> float:
        p = p[p > -1]
        return float(100 * p.mean()) if p.size else float("nan")

    return mean(prec), mean(prec[0])


def coco_match_table(ev) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per category: (tp@0.5, ignore, image index, non-ignored gts per image) in COCO's rank order."""
    n_img, n_area = len(ev.params.imgIds), len(ev.params.areaRng)
    max_det = ev.params.maxDets[-1]
    out = []
    for k in range(len(ev.params.catIds)):
        tps, igs, imgs, scores = [], [], [], []
        n_gt = np.zeros(n_img)
        for i in range(n_img):
            e = ev.evalImgs[k * n_area * n_img + i]  # area index 0 = "all"
            if e is None:
                continue
            n_gt[i] = np.count_nonzero(np.asarray(e["gtIgnore"]) == 0)
            d = len(e["dtScores"][:max_det])
            scores.append(np.asarray(e["dtScores"][:max_det], dtype=float))
            tps.append(np.asarray(e["dtMatches"][0, :max_det]) != 0)
            igs.append(np.asarray(e["dtIgnore"][0, :max_det], dtype=bool))
            imgs.append(np.full(d, i))
        if not scores:
            out.append((np.zeros(0, bool), np.zeros(0, bool), np.zeros(0, int), n_gt))
            continue
        order = np.argsort(-np.concatenate(scores), kind="mergesort")  # COCO's tie order
        out.append((np.concatenate(tps)[order], np.concatenate(igs)[order], np.concatenate(imgs)[order], n_gt))
    return out


def mean_over_classes(per_class: list[np.ndarray], n_rows: int) -> np.ndarray:
    """Mean (percent) over classes of per-class values ``(B,)``, skipping NaN (classes without ground truth)."""
    if not per_class:
        return np.full(n_rows, np.nan)
    m = np.vstack(per_class)
    counts = np.isfinite(m).sum(axis=0)
    sums = np.where(np.isfinite(m), m, 0.0).sum(axis=0)
    return np.where(counts > 0, 100 * sums / np.maximum(counts, 1), np.nan)


def weighted_ap50(table, weights: np.ndarray) -> np.ndarray:
    """COCO AP@0.5 (percent) for each row of image ``weights`` ``(B, n_images)``; equals pycocotools's
    value when the weights are all 1."""
    w = np.atleast_2d(weights).astype(float)
    return mean_over_classes([coco_ap(tp, ig, img, n_gt, w) for tp, ig, img, n_gt in table], w.shape[0])


class DetectionMetric(MetricFamily):
    """2D detection metrics against ``object`` = ``[{label, bbox: [x1, y1, x2, y2]}]`` (0–1)."""

    name = "detection"
    headline = "ap50"
    metric_names = ("ap50", "ap", "precision50", "recall50", "lamm_recall50")
    required_fields = ("object",)

    def __init__(self, vocabulary: Sequence[str] = VOC_CLASSES) -> None:
        """``vocabulary``: the classes recognised in answers; ground-truth labels are always added."""
        self._vocab = ObjectVocabulary(vocabulary)
        self.vocabulary = self._vocab.vocabulary

    def parse(self, answer: Any, record: dict) -> list[dict] | None:
        """Boxes ``{"label", "bbox", "score"}`` in answer order, or ``None``."""
        return labeled_boxes(answer, self._vocab.matcher([record]))

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        for i, r in enumerate(records):
            check_objects(i, r, 4)
        matcher = self._vocab.matcher(records)
        preds = [labeled_boxes(a, matcher) for a in answers]
        categories = list({label_key(c): c for c in matcher.labels}.values())
        ev = coco_evaluate(preds, list(records), categories)
        ap, ap50 = coco_summary(ev)

        rows, tp_all, n_pred, n_gt, lamm_hits = [], 0, 0, 0, 0
        for i, (answer, rec, pred) in enumerate(zip(answers, records, preds)):
            objs, boxes = rec["object"], pred or []
            tp = greedy_matches(boxes, objs, iou_2d, 0.5)
            named = {label_key(x) for x in matcher.named(answer)} if isinstance(answer, str) else set()
            hits = sum(label_key(o["label"]) in named and any(iou_2d(b["bbox"], o["bbox"]) > 0.5 for b in boxes)
                       for o in objs)
            tp_all, n_pred, n_gt, lamm_hits = tp_all + tp, n_pred + len(boxes), n_gt + len(objs), lamm_hits + hits
            rows.append({"index": i, "id": rec.get("id"), "parsed": pred, "unparsed": pred is None,
                         "tp50": tp, "n_pred": len(boxes), "n_gt": len(objs), "lamm_hits": int(hits)})
        metrics = {
            "ap50": ap50, "ap": ap,
            "precision50": 100 * tp_all / n_pred if n_pred else 0.0,
            "recall50": 100 * tp_all / n_gt if n_gt else float("nan"),
            "lamm_recall50": 100 * lamm_hits / n_gt if n_gt else float("nan"),
        }
        intervals = {}
        if ci:
            table = coco_match_table(ev)
            intervals["ap50"] = bootstrap_weighted(lambda w: weighted_ap50(table, w), len(records),
                                                   n_boot=n_boot, seed=seed)
        unparsed = sum(p is None for p in preds)
        return MetricReport(self.name, metrics, self.headline, len(records), unparsed, intervals, rows,
                            {"categories": categories, "box_score": "1 / (k + 1) for the k-th box of an answer"})


DETECTION = DetectionMetric()
METRICS.add("detection", DETECTION)
