"""3D detection: VOC AP/AR per class with axis-aligned IoU, LAMM's recall, and the IoU itself."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS
from lamm.bench.metrics.detection3d import iou_3d

DET3 = METRICS.get("detection3d")


def test_iou_3d_disjoint_boxes_are_zero():
    a = [0, 0, 0, 1, 1, 1]
    assert iou_3d(a, [5, 5, 0, 1, 1, 1]) == 0.0  # negative overlap on two axes (LAMM: a positive volume)
    assert iou_3d(a, [5, 5, 5, 1, 1, 1]) == 0.0  # three axes
    assert iou_3d(a, [5, 0, 0, 1, 1, 1]) == 0.0
    assert iou_3d(a, a) == pytest.approx(1.0)
    assert iou_3d(a, [0.5, 0, 0, 1, 1, 1]) == pytest.approx(1 / 3)
    assert iou_3d(a, [0, 0, 0, -1, 1, 1]) == 0.0  # a negative length is an invalid (empty) box


def test_map_ar_hand_computed():
    records = [
        {"id": "s1", "object": [{"label": "chair", "bbox": [0, 0, 0, 1, 1, 1]},
                                {"label": "table", "bbox": [3, 0, 0, 2, 1, 1]}]},
        {"id": "s2", "object": [{"label": "chair", "bbox": [1, 1, 1, 1, 1, 1]}]},
    ]
    answers = [
        "chair [0, 0, 0, 1, 1, 1]. chair [5, 5, 5, 1, 1, 1]. table [3.5, 0, 0, 2, 1, 1].",  # table IoU 0.6
        "a chair at [1.5, 1, 1, 1, 1, 1]",  # IoU 1/3: a hit at 0.25 only
    ]
    r = DET3.evaluate(answers, records, ci=False)
    # chair @0.25: ranks TP, TP, FP → AP 1, recall 1; @0.5: TP, FP, FP → AP 0.5, recall 0.5; table: AP 1
    assert r.metrics["map25"] == pytest.approx(100.0)
    assert r.metrics["map50"] == pytest.approx(75.0)
    assert r.metrics["ar25"] == pytest.approx(100.0)
    assert r.metrics["ar50"] == pytest.approx(75.0)
    assert r.metrics["lamm_recall50"] == pytest.approx(100 * 2 / 3)
    assert r.per_sample[0]["parsed"][2]["label"] == "table"


def test_duplicate_detection_is_a_false_positive_and_ci():
    records = [{"object": [{"label": "bed", "bbox": [0, 0, 0, 2, 2, 1]}]} for _ in range(10)]
    answers = ["bed [0, 0, 0, 2, 2, 1] bed [0, 0, 0, 2, 2, 1]"] * 5 + ["no idea"] * 5
    r = DET3.evaluate(answers, records, n_boot=200)
    # ranks: the five first boxes (TP, score 1) then five duplicates (FP) → AP = recall 0.5 × precision 1
    assert r.metrics["map25"] == pytest.approx(50.0)
    assert r.metrics["ar25"] == pytest.approx(50.0)
    assert r.unparsed == 5
    lo, hi = r.ci["map25"]
    assert lo <= 50.0 <= hi


@pytest.mark.parametrize("gt_label", ["shower curtain", "showercurtrain", "shower_curtain", "ShowerCurtain"])
def test_showercurtrain_spelling_is_shower_curtain(gt_label):
    """VoteNet / mmdet3d / 3DETR name ScanNet class 13 "showercurtrain"; it is the shower curtain."""
    from lamm.bench.metrics.synonyms import label_key

    assert label_key(gt_label) == label_key("shower curtain") == "showercurtain"
    box = [1.0, 2.0, 1.0, 0.1, 1.5, 2.0]
    r = DET3.evaluate(["The shower curtain is at [1.0, 2.0, 1.0, 0.1, 1.5, 2.0]."],
                      [{"id": "s", "object": [{"label": gt_label, "bbox": box}]}], ci=False)
    assert r.metrics["map25"] == r.metrics["map50"] == r.metrics["lamm_recall50"] == 100.0
    cls = METRICS.get("classification").evaluate(["A shower curtain."], [{"label": gt_label}], ci=False)
    assert cls.metrics["accuracy"] == 100.0
