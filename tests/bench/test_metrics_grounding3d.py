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


def test_unique_multiple_split_hand_computed():
    """ScanRefer's unique / multiple subsets (LAMM.md §4), from eval_type or a boolean unique."""
    hit, third, miss = "[0, 0, 0, 1, 1, 1]", "[0.5, 0, 0, 1, 1, 1]", "[3, 3, 3, 1, 1, 1]"
    recs = [{**GT, "id": "a", "eval_type": "unique"},     # IoU 1: both
            {**GT, "id": "b", "unique": True},            # IoU 1/3: Acc@0.25 only
            {**GT, "id": "c", "eval_type": "multiple"},   # miss
            {**GT, "id": "d", "unique": False, "eval_type": "Multiple"},  # IoU 1 (both fields agree)
            {**GT, "id": "e"}]                            # untagged, IoU 1: overall only
    r = VG.evaluate([hit, third, miss, hit, hit], recs, ci=True, n_boot=200)
    assert r.metrics == {"acc25": 80.0, "acc50": 60.0,          # 4/5, 3/5
                         "acc25_unique": 100.0, "acc50_unique": 50.0,     # a, b: 2/2, 1/2
                         "acc25_multiple": 50.0, "acc50_multiple": 50.0}  # c, d: 1/2, 1/2
    assert r.info["split"] == {"unique": 2, "multiple": 2, "untagged": 1} and "split_missing" not in r.info
    assert set(r.ci) >= {"acc50", "acc50_unique", "acc50_multiple"}
    # per-sample subset scores only where the record belongs to the subset
    assert r.per_sample[1]["acc25_unique"] == 1.0 and r.per_sample[1]["acc50_unique"] == 0.0
    assert "acc25_unique" not in r.per_sample[2] and r.per_sample[2]["acc25_multiple"] == 0.0
    assert not any(k.endswith(("_unique", "_multiple")) for k in r.per_sample[4])


def test_split_only_for_tagged_subsets_and_said_when_absent():
    r = VG.evaluate(["[0, 0, 0, 1, 1, 1]"], [{**GT, "eval_type": "unique"}], ci=False)
    assert r.metrics == {"acc25": 100.0, "acc50": 100.0, "acc25_unique": 100.0, "acc50_unique": 100.0}
    r = VG.evaluate(["[0, 0, 0, 1, 1, 1]"], [GT], ci=False)
    assert r.metrics == {"acc25": 100.0, "acc50": 100.0}
    assert r.info["split"] == {"unique": 0, "multiple": 0, "untagged": 1}
    assert "eval_type" in r.info["split_missing"]


def test_bad_split_fields_are_record_errors():
    import pytest

    from lamm.bench.metrics import RecordError

    for bad, field in (({"eval_type": "zt_w_d"}, "eval_type"), ({"unique": 1}, "unique"),
                       ({"eval_type": "unique", "unique": False}, "unique")):
        with pytest.raises(RecordError, match=rf"record 0 \(id 'x'\): field '{field}'"):
            VG.evaluate(["[0, 0, 0, 1, 1, 1]"], [{**GT, "id": "x", **bad}], ci=False)
