"""2D detection: COCO AP with pycocotools, one-to-one precision/recall, LAMM's recall."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from lamm.bench.metrics import METRICS
from lamm.bench.metrics.detection2d import coco_evaluate, coco_match_table, iou_2d, weighted_ap50

DET = METRICS.get("detection")

RECORDS = [
    {"id": "a", "object": [{"label": "person", "bbox": [0.1, 0.1, 0.5, 0.5]},
                           {"label": "dog", "bbox": [0.6, 0.6, 0.9, 0.9]}]},
    {"id": "b", "object": [{"label": "dog", "bbox": [0.2, 0.2, 0.6, 0.6]}]},
]
ANSWERS = [
    "The man is at [0.1, 0.1, 0.5, 0.45]. The dog is at [0.1, 0.1, 0.3, 0.3].",
    "A dog [0.2, 0.2, 0.6, 0.6] and another one [0.5, 0.5, 0.6, 0.6].",
]


def pycocotools_direct(records, boxes):
    """AP and AP50 from pycocotools' own summarize() on hand-built COCO objects."""
    cats = sorted({o["label"] for r in records for o in r["object"]})
    cid = {c: k + 1 for k, c in enumerate(cats)}
    gt = COCO()
    gt.dataset = {
        "images": [{"id": i + 1} for i in range(len(records))],
        "categories": [{"id": cid[c], "name": c} for c in cats],
        "annotations": [{"id": n + 1, "image_id": i + 1, "category_id": cid[o["label"]], "iscrowd": 0,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)}
                        for n, (i, o, (x1, y1, x2, y2)) in enumerate(
                            (i, o, o["bbox"]) for i, r in enumerate(records) for o in r["object"])],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes([{"image_id": i + 1, "category_id": cid[label], "score": s,
                          "bbox": [x1, y1, x2 - x1, y2 - y1]} for i, label, s, (x1, y1, x2, y2) in boxes])
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return 100 * ev.stats[0], 100 * ev.stats[1]


def test_hand_computed_and_equal_to_pycocotools():
    r = DET.evaluate(ANSWERS, RECORDS, ci=False)
    # labels come from the class named nearest before each box ("man" names person; "another one" → dog)
    assert [[b["label"] for b in row["parsed"]] for row in r.per_sample] == [["person", "dog"], ["dog", "dog"]]
    # person: one TP with IoU 0.875 → AP 1 at IoU .5–.85, 0 at .9/.95; dog: TP (score 1) then two FPs,
    # recall 1/2 → COCO 101-point AP = 51/101
    dog = 51 / 101
    assert r.metrics["ap50"] == pytest.approx(100 * (1 + dog) / 2)
    assert r.metrics["ap"] == pytest.approx(100 * (0.8 + dog) / 2)
    boxes = [(0, "person", 1.0, [0.1, 0.1, 0.5, 0.45]), (0, "dog", 0.5, [0.1, 0.1, 0.3, 0.3]),
             (1, "dog", 1.0, [0.2, 0.2, 0.6, 0.6]), (1, "dog", 0.5, [0.5, 0.5, 0.6, 0.6])]
    ap, ap50 = pycocotools_direct(RECORDS, boxes)
    assert r.metrics["ap"] == pytest.approx(ap) and r.metrics["ap50"] == pytest.approx(ap50)
    assert r.metrics["precision50"] == pytest.approx(50.0)  # 2 of 4 boxes
    assert r.metrics["recall50"] == pytest.approx(100 * 2 / 3)
    assert r.metrics["lamm_recall50"] == pytest.approx(100 * 2 / 3)


def random_dataset(n=60, seed=0):
    rng = np.random.default_rng(seed)
    classes = ["person", "dog", "cat", "car"]
    records, answers, boxes = [], [], []
    for i in range(n):
        objs, parts, k = [], [], 0
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 0.5, 2)
            w, h = rng.uniform(0.1, 0.4, 2)
            lab = classes[rng.integers(4)]
            objs.append({"label": lab, "bbox": [round(x, 3), round(y, 3), round(x + w, 3), round(y + h, 3)]})
            if rng.random() < 0.8:
                b = np.round(np.clip(np.array(objs[-1]["bbox"]) + rng.normal(0, 0.04, 4), 0, 1), 3)
                plab = lab if rng.random() < 0.8 else classes[rng.integers(4)]
                parts.append(f"The {plab} is at [{b[0]}, {b[1]}, {b[2]}, {b[3]}].")
                boxes.append((i, plab, 1.0 / (k + 1), list(b)))
                k += 1
        records.append({"object": objs})
        answers.append(" ".join(parts) or "I see nothing.")
    return records, answers, boxes


def test_equal_to_pycocotools_on_random_data_and_bootstrap_accumulator():
    records, answers, boxes = random_dataset()
    r = DET.evaluate(answers, records, n_boot=200)
    ap, ap50 = pycocotools_direct(records, boxes)
    assert r.metrics["ap"] == pytest.approx(ap) and r.metrics["ap50"] == pytest.approx(ap50)
    # the weighted re-accumulation used by the bootstrap reproduces pycocotools at unit weights
    ev = coco_evaluate([DET.parse(a, rec) for a, rec in zip(answers, records)], records,
                       ["person", "dog", "cat", "car"])
    assert weighted_ap50(coco_match_table(ev), np.ones(len(records)))[0] == pytest.approx(ap50)
    lo, hi = r.ci["ap50"]
    assert lo < r.metrics["ap50"] < hi
    assert r.ci == DET.evaluate(answers, records, n_boot=200).ci  # seeded


def test_no_boxes_at_all():
    r = DET.evaluate(["nothing here", "a dog"], RECORDS, ci=False)
    assert r.metrics["ap50"] == 0.0 and r.metrics["precision50"] == 0.0 and r.unparsed == 2


def test_iou_2d():
    assert iou_2d([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert iou_2d([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert iou_2d([0.6, 0.1, 0.2, 0.3], [0, 0, 1, 1]) == 0.0  # inverted on one axis: zero area
