"""Binary locating: a predicted point strictly inside the target box."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS, RecordError

LOC = METRICS.get("locating")
VOC = {"query": "Point out the location of every object in the image.",
       "object": [{"label": "horse", "bbox": [0.1, 0.2, 0.81, 0.98]},
                  {"label": "person", "bbox": [0.31, 0.09, 0.55, 0.58]}]}


def test_voc_per_object_with_class_named():
    answers = ["The horse is at [0.5, 0.7] and the man at [0.4, 0.3].",  # both (man = person)
               "Something at [0.5, 0.7].",  # no class named: none
               "The horse is at [0.1, 0.5]."]  # on the box edge: not strictly inside
    r = LOC.evaluate(answers, [VOC] * 3, ci=False)
    assert [row["accuracy"] for row in r.per_sample] == [[2.0, 2.0], [0.0, 2.0], [0.0, 2.0]]
    assert r.metrics["accuracy"] == pytest.approx(100 * 2 / 6)
    assert r.metrics["lamm_accuracy"] == r.metrics["accuracy"]


def test_voc_class_named_in_the_query_counts_for_accuracy_only():
    """``accuracy`` takes the class from the answer or the query; ``lamm_accuracy`` is LAMM's InsideBbox,
    which requires ``classification_acc(label, answer)``: the class named in the answer."""
    rec = dict(VOC, query="Where is the horse?")
    r = LOC.evaluate(["At [0.5, 0.7].", "The horse is at [0.5, 0.7].", "[0.5, 0.7] and [0.4, 0.3]"],
                     [rec] * 3, ci=False)
    # the point [0.5, 0.7] is inside the horse box only; [0.4, 0.3] inside both boxes
    assert [row["accuracy"] for row in r.per_sample] == [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]
    assert [row["lamm_accuracy"] for row in r.per_sample] == [[0.0, 2.0], [1.0, 2.0], [0.0, 2.0]]
    assert r.metrics["accuracy"] == pytest.approx(50.0)  # 3 of 6 objects
    assert r.metrics["lamm_accuracy"] == pytest.approx(100 / 6)  # 1 of 6
    one_rec = {"id": "v", "query": "Where is the horse in the image?",
               "object": [{"label": "horse", "bbox": [0.1, 0.2, 0.8, 0.9]}]}
    one = LOC.evaluate(["[0.5, 0.6]"], [one_rec], ci=False)
    assert one.metrics == {"accuracy": 100.0, "lamm_accuracy": 0.0}


def test_lsp_box_of_joints_first_point():
    joints = [[50, 20, 1], [150, 180, 1]] + [[100, 100, 1]] * 12  # box [.25, .1, .75, .9] in a 200×200 image
    rec = {"gt_joints": joints, "image_size": [200, 200]}
    r = LOC.evaluate(["[0.5, 0.5]", "[0.9, 0.9] or maybe [0.5, 0.5]", "nowhere"], [rec] * 3, ci=False)
    assert [row["accuracy"] for row in r.per_sample] == [1.0, 0.0, 0.0]
    assert [row["lamm_accuracy"] for row in r.per_sample] == [1.0, 1.0, 0.0]
    assert r.unparsed == 1


def test_fsc147_points_as_dots_in_pixels_or_boxes():
    dots = {"points": [[10, 10], [90, 50]], "image_size": [100, 100]}  # box [.1, .1, .9, .5]
    boxes = {"points": [[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.7, 0.7]]}
    assert LOC.needs_image_size(dots) and not LOC.needs_image_size(boxes)
    r = LOC.evaluate(["[0.5, 0.3]", "[0.6, 0.6]", "[0.3, 0.3]"], [dots, boxes, boxes], ci=False)
    assert [row["accuracy"] for row in r.per_sample] == [1.0, 1.0, 0.0]


def test_locating_record_needs_a_target():
    with pytest.raises(RecordError, match="'object'.*'gt_joints'.*'points'"):
        LOC.evaluate(["[0.5, 0.5]"], [{"query": "?"}], ci=False)
