"""Captioning: pycocoevalcap BLEU/ROUGE-L/CIDEr-D on our tokenisation, and LAMM's max sentence BLEU-4."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu

from lamm.bench.metrics import METRICS
from lamm.bench.metrics.caption import bleu_statistics, corpus_bleu4, lamm_bleu4, sentence_bleu4, tokenize

CAP = METRICS.get("caption")
REFS = [["A dog runs on the grass.", "A brown dog is running outside."],
        ["Two men stand in a yard.", "Two young men are outside near bushes."],
        ["A child plays with a red ball.", "A kid is playing with a ball."]]
ANSWERS = ["A dog is running on the grass.", "Two men are standing in a yard!", ""]


def test_tokenize():
    assert tokenize("A dog, running! Don't") == "a dog running do n't"  # PTB splits the clitic
    assert tokenize(None) == ""


def test_sentence_bleu4_hand_computed():
    ref = [["a", "dog", "runs", "on", "grass"]]
    hyp = ["a", "dog", "runs", "on", "the", "grass"]
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3; hypothesis longer than the reference: no brevity penalty
    assert sentence_bleu4(ref, hyp) == pytest.approx((5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    short = ["a", "dog", "runs", "on"]  # 4/5 of the reference length: brevity penalty exp(1 - 5/4)
    assert sentence_bleu4(ref, short) == pytest.approx(math.exp(1 - 5 / 4))
    assert sentence_bleu4(ref, ["a", "dog", "runs"]) == 0.0  # no 4-gram: zero without smoothing
    assert lamm_bleu4("It is sunny. A dog runs on grass.", ["a dog runs on grass"]) == pytest.approx(1.0)


def test_corpus_metrics_match_pycocoevalcap():
    records = [{"id": str(i), "sentences": r} for i, r in enumerate(REFS)]
    r = CAP.evaluate(ANSWERS, records, n_boot=100)
    gts = {i: [tokenize(s) for s in refs] for i, refs in enumerate(REFS)}
    res = {i: [tokenize(a)] for i, a in enumerate(ANSWERS)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for k in range(4):
        assert r.metrics[f"bleu{k + 1}"] == pytest.approx(100 * bleu[k])
    assert 0 < r.metrics["cider"] and 0 < r.metrics["rouge_l"] < 100
    assert r.unparsed == 1 and r.per_sample[2]["parsed"] is None
    # the bootstrap's statistics give pycocoevalcap's corpus BLEU-4 at unit weights
    stats = bleu_statistics([res[i][0] for i in range(3)], [gts[i] for i in range(3)])
    assert 100 * corpus_bleu4(np.ones(3) @ stats)[0] == pytest.approx(r.metrics["bleu4"])
    lo, hi = r.ci["bleu4"]
    assert lo <= r.metrics["bleu4"] <= hi


def test_perfect_caption_and_lamm_variant():
    records = [{"sentences": ["a dog runs on the grass"]}, {"sentences": ["two men stand in a yard"]}]
    r = CAP.evaluate(["A dog runs on the grass.", "Two men stand in a yard. Nice day!"], records, ci=False)
    assert r.metrics["lamm_bleu4"] == pytest.approx(100.0)  # best sentence of each answer is exact
    assert r.metrics["bleu1"] < 100.0  # corpus BLEU pays for the extra words "nice day"
    assert r.metrics["bleu4"] > 50.0


@pytest.mark.parametrize("text, tokens", [
    ("A man in a red t-shirt doesn't smile.", "a man in a red t-shirt does n't smile"),
    ("a black-and-white dog jumps 1.5 meters", "a black-and-white dog jumps 1.5 meters"),
    ("The dog's ball; I can't!", "the dog 's ball i ca n't"),
    ("1,000 birds, 5.", "1,000 birds 5"),
])
def test_tokenize_like_coco_captions_ptb_pipeline(text, tokens):
    """Hyphenated words and decimals stay whole and clitics split off, as coco-caption's PTB tokenizer
    does: splitting "t-shirt" into "t shirt" added n-grams and raised BLEU / CIDEr above the standard."""
    from lamm.bench.metrics.caption import tokenize

    assert tokenize(text) == tokens


def test_references_without_a_word_are_a_record_error():
    from lamm.bench.metrics.base import RecordError

    with pytest.raises(RecordError, match=r"field 'sentences': no reference caption has a word"):
        CAP.evaluate(["a dog"], [{"sentences": ["...", "!"]}], ci=False)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs Java")
def test_meteor_where_java_runs(monkeypatch):
    """With Java, ``meteor`` is coco-caption's METEOR ×100; an exact match scores higher than a poor one."""
    monkeypatch.setenv("LAMM_METEOR", "1")
    good = CAP.evaluate(["a dog runs on the grass"], [{"sentences": ["A dog runs on the grass."]}], ci=False)
    poor = CAP.evaluate(["two cars"], [{"sentences": ["A dog runs on the grass."]}], ci=False)
    assert good.info["meteor"] == "coco-caption METEOR 1.5 (Java)"
    assert good.metrics["meteor"] > 90 and 0 <= poor.metrics["meteor"] < 20


def test_meteor_off_is_nan_and_says_why():
    r = CAP.evaluate(["a dog"], [{"sentences": ["a dog"]}], ci=False)  # LAMM_METEOR=0 (tests/bench/conftest.py)
    assert math.isnan(r.metrics["meteor"]) and "LAMM_METEOR=0" in r.info["meteor"]
