"""OCR word recall."""

from __future__ import annotations

import pytest

from lamm.bench.metrics import METRICS

OCR = METRICS.get("ocr")


def test_several_quoted_words_are_all_found():
    r = OCR.evaluate(['The words are "PUFF" and "STUFF".', "puff, stuff"], [{"word_list": ["PUFF", "STUFF"]}] * 2,
                     ci=False)
    assert r.metrics["word_recall"] == 100.0


def test_recall_is_averaged_per_image():
    records = [{"word_list": ["SALE"]}, {"word_list": ["AT&T", "OPEN", "DAILY"]}]
    r = OCR.evaluate(["'sale'", "We are open"], records, ci=False)
    # image 1: 1/1, image 2: 1/3 → mean 2/3 (a pooled recall would be 2/4)
    assert r.metrics["word_recall"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    r = OCR.evaluate(["AT&T!", ""], [records[1], records[0]], ci=False)
    assert r.per_sample[0]["word_recall"] == pytest.approx(1 / 3)
    assert r.unparsed == 1
