"""Classification, fine-grained and facial (smile, hair) accuracy."""

from __future__ import annotations

import json

import pytest

from lamm.bench.metrics import METRICS, RecordError
from lamm.bench.metrics.classification import ClassificationMetric, hair_colour
from lamm.bench.metrics.synonyms import wordnet_available

CLS = METRICS.get("classification")


def acc(family, answers, records):
    return family.evaluate(answers, records, ci=False)


def test_label_or_synonym_named_as_whole_words():
    answers = ["It is a kitten.", "CATS everywhere", "A catalog", "an aeroplane", "Dense-residential area",
               "dense residential", "A truck", "a zebra grazing"]
    labels = ["cat", "cat", "cat", "airplane", "denseresidential", "denseresidential", "automobile", "zebra"]
    r = acc(CLS, answers, [{"id": str(i), "label": lab} for i, lab in enumerate(labels)])
    assert [row["accuracy"] for row in r.per_sample] == [1, 1, 0, 1, 1, 1, 0, 1]
    assert r.metrics["accuracy"] == pytest.approx(100 * 6 / 8)
    assert r.unparsed == 1  # "A catalog" names no class
    assert [row["id"] for row in r.per_sample] == [str(i) for i in range(8)]
    assert r.per_sample[0]["parsed"] == ["cat"]


def test_report_shape_and_json():
    r = CLS.evaluate(["a dog", "a cat"], [{"label": "dog"}, {"label": "dog"}], seed=3)
    assert r.n == 2 and r.headline == "accuracy" and r.metrics == {"accuracy": 50.0}
    lo, hi = r.ci["accuracy"]
    assert 0.0 <= lo <= 50.0 <= hi <= 100.0
    data = json.loads(r.to_json(per_sample=True))
    assert data["metrics"]["accuracy"] == 50.0 and len(data["per_sample"]) == 2
    assert "shipped tables" in data["info"]["synonyms"]


def test_missing_label_names_record_and_field():
    with pytest.raises(RecordError, match=r"record 1 \(id 'b'\): field 'label'"):
        CLS.evaluate(["x", "y"], [{"id": "a", "label": "cat"}, {"id": "b"}], ci=False)
    with pytest.raises(ValueError, match="2 answers for 1 records"):
        CLS.evaluate(["x", "y"], [{"label": "cat"}], ci=False)


def test_wordnet_used_only_when_installed_and_reported():
    m = ClassificationMetric(wordnet=True)  # never downloads, never raises
    assert m.wordnet == wordnet_available()
    assert ClassificationMetric(wordnet=False).wordnet is False
    assert ("not installed" in m.info()["synonyms"]) == (not m.wordnet)
    # the shipped tables work either way
    assert m.evaluate(["a puppy"], [{"label": "dog"}], ci=False).metrics["accuracy"] == 100.0


@pytest.mark.parametrize("answer, gt, correct", [
    ("No.", "-1", True),
    ("The person is not smiling.", "-1", True),
    ("She isn't smiling", "-1", True),
    ("Yes, the person is smiling.", "1", True),
    ("A big grin!", "1", True),
    ("No, not at all", "1", False),
    ("hmm", "1", False),
])
def test_smile(answer, gt, correct):
    r = acc(METRICS.get("facial_smile"), [answer], [{"attr": gt}])
    assert r.metrics["accuracy"] == (100.0 if correct else 0.0)


def test_smile_unparsed_and_bad_attr():
    r = acc(METRICS.get("facial_smile"), ["hmm"], [{"attr": 1}])
    assert r.unparsed == 1
    with pytest.raises(RecordError, match="field 'attr'"):
        acc(METRICS.get("facial_smile"), ["yes"], [{"attr": "2"}])


def test_hair_first_colour_named():
    hair = METRICS.get("facial_hair")
    answers = ["She has blonde hair.", "grey hair", "black and brown hair", "Her hair is brown.", "no hair info"]
    attrs = ["Blond_Hair", "Gray_Hair", "Brown_Hair", "brown", "Black_Hair"]
    r = acc(hair, answers, [{"attr": a} for a in attrs])
    assert [row["accuracy"] for row in r.per_sample] == [1, 1, 0, 1, 0]
    assert r.unparsed == 1
    assert hair_colour("Gray_Hair") == "gray" and hair_colour("blonde") == "blond"
