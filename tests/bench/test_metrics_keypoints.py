"""LSP keypoints: PCK@0.1 on the normalised image (LAMM's always scored 0)."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS, RecordError
from lamm.bench.metrics.keypoints import JOINT_NAMES

KP = METRICS.get("keypoints")


def record():
    joints = [[100.0, 50.0, 1]] * 13 + [[100.0, 50.0, 0]]  # head top invisible
    return {"id": "im1", "gt_joints": joints, "image_size": [200, 100]}


def test_pck_hand_computed():
    answer = {}
    for j in range(6):
        answer[JOINT_NAMES[j]] = "[0.5, 0.5]"  # exact
    for j in range(6, 10):
        answer[JOINT_NAMES[j].upper().replace(" ", "_")] = "It is at (0.58, 0.5)."  # 0.08 away: correct
    answer[JOINT_NAMES[10]] = "[0.5, 0.62]"  # 0.12 away: wrong
    answer[JOINT_NAMES[12]] = "no idea"  # unparsable: wrong; left wrist (11) missing: wrong
    answer[JOINT_NAMES[13]] = "[0.9, 0.9]"  # invisible: not counted
    r = KP.evaluate([answer], [record()], ci=False)
    assert r.metrics["pck"] == pytest.approx(100 * 10 / 13)
    assert r.metrics["pck"] > 0  # the LAMM defect scored every model 0
    assert r.per_sample[0]["pck"] == [10.0, 13.0] and r.unparsed == 0


def test_pck_pools_joints_and_reads_text_or_list_answers():
    pts = " ".join("[0.5, 0.5]" for _ in range(14))
    r = KP.evaluate([pts, ["[0.5, 0.5]"] * 7, {"head": "[0.1, 0.1]"}], [record()] * 3, ci=False)
    assert r.metrics["pck"] == pytest.approx(100 * (13 + 7 + 0) / 39)
    assert KP.evaluate([{}], [record()], ci=False).unparsed == 1


def test_image_size_is_required():
    rec = record()
    del rec["image_size"]
    assert KP.needs_image_size(rec)
    with pytest.raises(RecordError, match="field 'image_size'"):
        KP.evaluate([{}], [rec], ci=False)
