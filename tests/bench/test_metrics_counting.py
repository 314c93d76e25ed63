"""Counting: MAE (uncapped) and exact accuracy."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS, RecordError

COUNT = METRICS.get("counting")


def test_counts_read_with_punctuation_and_words():
    answers = ["5.", "5,", "five", "There are twelve.", "1,000 birds", "10", "many"]
    nums = [5, 5, 5, 12, 1000, 3, 4]
    r = COUNT.evaluate(answers, [{"num": n} for n in nums], ci=False)
    assert [row["parsed"] for row in r.per_sample] == [5.0, 5.0, 5.0, 12.0, 1000.0, 10.0, None]
    # errors: 0,0,0,0,0, 7 (ChEF would cap it at the true count 3), 4 (unparsed scored as 0)
    assert r.metrics["mae"] == pytest.approx(11 / 7)
    assert r.metrics["accuracy"] == pytest.approx(100 * 5 / 7)
    assert r.unparsed == 1 and r.headline == "mae"
    assert r.per_sample[5]["mae"] == 7.0
    # lamm_mae caps each error at the true count (ChEF's published "MAE"): 7 → 3, the rest as they are
    assert r.metrics["lamm_mae"] == pytest.approx((3 + 4) / 7)


def test_bad_num():
    with pytest.raises(RecordError, match="field 'num'"):
        COUNT.evaluate(["3"], [{"num": "three"}], ci=False)
