"""Multiple-choice accuracy and unparsed counting."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS, RecordError

MC = METRICS.get("multiple_choice")
SIX = ["a lamp", "a laptop", "a cup", "books", "a plant", "nothing"]


def test_accuracy_reads_option_f_and_counts_unparsed():
    records = [{"gt_choice": 5, "gt_choices": SIX}, {"gt_choice": 1, "gt_choices": SIX},
               {"gt_choice": 0, "gt_choices": ["attract", "repel"]}, {"gt_choice": 2, "gt_choices": SIX},
               {"gt_choice": 3, "gt_choices": SIX}]
    answers = ["The answer is (F).", "I see a laptop.", "ANSWER: B", "(C)", "I cannot tell."]
    r = MC.evaluate(answers, records, ci=False)
    assert [row["parsed"] for row in r.per_sample] == [5, 1, 1, 2, None]
    assert r.metrics["accuracy"] == pytest.approx(60.0)  # F, laptop, (C) right; B wrong; last unparsed
    assert r.metrics["unparsed"] == 1.0 and r.unparsed == 1


def test_bad_gt_choice_is_a_record_error():
    with pytest.raises(RecordError, match="field 'gt_choice'"):
        MC.evaluate(["A"], [{"gt_choice": 2, "gt_choices": ["x", "y"]}], ci=False)
    with pytest.raises(RecordError, match="field 'gt_choices'"):
        MC.evaluate(["A"], [{"gt_choice": 0, "gt_choices": []}], ci=False)


def test_interval_is_seeded():
    records = [{"gt_choice": i % 2, "gt_choices": ["x", "y"]} for i in range(40)]
    answers = ["(A)"] * 40
    a = MC.evaluate(answers, records, seed=1).ci["accuracy"]
    b = MC.evaluate(answers, records, seed=1).ci["accuracy"]
    assert a == b and a[0] < 50.0 < a[1]
