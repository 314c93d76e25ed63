"""3D grounding: Acc@0.25 / Acc@0.5 of the first parsed box."""

from __future__ import annotations

from lamm.bench.metrics import METRICS

VG = METRICS.get("grounding3d")
GT = {"object": [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]}


def test_first_box_thresholds():
    answers = [
        "[0, 0, 0, 1, 1, 1]",  # IoU 1
        "[0.5, 0, 0, 1, 1, 1]",  # overlap 0.5 → IoU 1/3: only Acc@0.25
        "[3, 3, 3, 1, 1, 1] and then [0, 0, 0, 1, 1, 1]",  # the first box decides: miss
        "I don't know",
    ]
    r = VG.evaluate(answers, [GT] * 4, ci=False)
    assert [(row["acc25"], row["acc50"]) for row in r.per_sample] == [(1, 1), (1, 0), (0, 0), (0, 0)]
    assert r.metrics == {"acc25": 50.0, "acc50": 25.0}
    assert r.unparsed == 1 and r.headline == "acc50"
