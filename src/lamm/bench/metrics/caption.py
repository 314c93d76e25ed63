"""Captioning (Flickr30k): corpus ``bleu1``–``bleu4``, ``rouge_l``, ``cider`` (CIDEr-D), ``meteor`` (where
Java runs), and ``lamm_bleu4``.

Scores come from pycocoevalcap's pure-Python ``Bleu`` / ``Rouge`` / ``Cider`` scorers (its ``Cider`` is
CIDEr-D: clipped counts, Gaussian length penalty, ×10). All values are reported ×100. Its PTB tokenizer
needs Java, so both answers and references are tokenised here the way it tokenises captions, in pure
Python (the same numbers on every machine): lower-cased; words keep their inner hyphens
("t-shirt", "black-and-white") and numbers their decimal point or thousands comma ("1.5", "1,000");
clitics are split off as PTB does ("doesn't" → "does n't", "dog's" → "dog 's", "can't" → "ca n't");
punctuation is dropped, as coco-caption drops PTB's punctuation tokens. CIDEr's document frequencies
come from the scored corpus itself, so it is only meaningful over a corpus (a single sample scores 0).

``meteor`` is coco-caption's METEOR 1.5 (its jar, run by Java: ~5 s to start); where ``java`` is not
on the PATH, or ``LAMM_METEOR=0`` is set, it is NaN and the report's ``info["meteor"]`` says why.

``lamm_bleu4`` is LAMM's number: per sample, the **maximum** over the answer's sentences of sentence
BLEU-4 against all references (uniform weights, closest reference length, no smoothing — a sentence
missing any n-gram order scores 0, where nltk returns a ~1e-78 float), averaged over samples.

The headline ``bleu4`` gets a bootstrap interval from per-sample BLEU statistics (exact corpus BLEU on
each resample). An answer with no word is unparsed and scored as an empty caption.

>>> sentence_bleu4([["a", "dog", "runs", "on", "grass"]], ["a", "dog", "runs", "on", "grass"])
1.0
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.bench.metrics.base import METRICS, MetricFamily, MetricReport, RecordError, check_inputs
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_weighted

_TOKEN_RE = re.compile(r"[0-9]+(?:[.,][0-9]+)+|[^\W_]+(?:[-'’][^\W_]+)*")
_CLITIC_RE = re.compile(r"^(.+?)(n't|'s|'re|'ve|'ll|'d|'m)$")
_SENT_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_TINY, _SMALL = 1e-15, 1e-9  # pycocoevalcap's BleuScorer guards, so resampled BLEU matches it exactly


def tokenize(text: Any) -> str:
    """Lower-cased PTB-style tokens joined by spaces ("A dog, running!" → "a dog running"; "doesn't"
    → "does n't"; "t-shirt" and "1.5" stay whole)."""
    if not isinstance(text, str):
        return ""
    out = []
    for tok in _TOKEN_RE.findall(text.lower().replace("’", "'")):
        m = _CLITIC_RE.match(tok)
        out += [m.group(1), m.group(2)] if m else [tok]
    return " ".join(out)


def _import_scorers():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError as e:  # optional extra, not a core dependency
        raise ImportError("caption metrics need pycocoevalcap: pip install 'lamm[caption]'") from e
    return Bleu, Rouge, Cider, cook_refs, cook_test


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu4(references: Sequence[Sequence[str]], hypothesis: Sequence[str]) -> float:
    """Sentence BLEU-4 in 0–1 (no smoothing): geometric mean of clipped 1–4-gram precisions times the
    brevity penalty against the closest reference length (ties → shorter); 0 if any precision is 0."""
    hyp = list(hypothesis)
    refs = [list(r) for r in references if r]
    if not hyp or not refs:
        return 0.0
    log_p = 0.0
    for n in range(1, 5):
        counts = _ngrams(hyp, n)
        max_ref: Counter = Counter()
        for r in refs:
            max_ref |= _ngrams(r, n)
        clipped = sum(min(c, max_ref[g]) for g, c in counts.items())
        if clipped == 0:
            return 0.0
        log_p += 0.25 * math.log(clipped / max(1, len(hyp) - n + 1))
    closest = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
    bp = 1.0 if len(hyp) > closest else math.exp(1 - closest / len(hyp))
    return bp * math.exp(log_p)


def lamm_bleu4(answer: Any, references: Sequence[str]) -> float:
    """Max sentence BLEU-4 over the answer's sentences (0–1), LAMM's Flickr30k number."""
    if not isinstance(answer, str):
        return 0.0
    refs = [tokenize(r).split() for r in references]
    sents = [tokenize(s).split() for s in _SENT_SPLIT_RE.split(answer)]
    return max((sentence_bleu4(refs, s) for s in sents if s), default=0.0)


def bleu_statistics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sample BLEU statistics ``[testlen, reflen, guess1..4, correct1..4]`` (shape ``(n, 10)``) as
    pycocoevalcap's ``BleuScorer`` cooks them (closest reference length), for tokenised text."""
    _, _, _, cook_refs, cook_test = _import_scorers()
    stats = np.zeros((len(hypotheses), 10))
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        c = cook_test(hyp, cook_refs(list(refs)), eff="closest")
        stats[i] = [c["testlen"], c["reflen"], *c["guess"][:4], *c["correct"][:4]]
    return stats


def corpus_bleu4(summed: np.ndarray) -> np.ndarray:
    """Corpus BLEU-4 (0–1) from summed statistics rows (``weights @ bleu_statistics(...)``); with all
    weights 1 it equals pycocoevalcap's ``Bleu(4)`` exactly."""
    stats = np.atleast_2d(summed)
    testlen, reflen = stats[:, 0], stats[:, 1]
    bleu = np.ones(len(stats))
    for k in range(4):
        bleu *= (stats[:, 6 + k] + _TINY) / (stats[:, 2 + k] + _SMALL)
    bleu = bleu ** 0.25
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    return np.where(ratio < 1, bleu * np.exp(1 - 1 / np.minimum(ratio, 1)), bleu)


def meteor(gts: dict[int, list[str]], res: dict[int, list[str]]) -> tuple[float, str]:
    """Corpus METEOR ×100 of tokenised captions by coco-caption's jar, and a note for the report; NaN with
    the reason where Java is missing, ``LAMM_METEOR=0`` is set, or the jar fails (its error is the note)."""
    if os.environ.get("LAMM_METEOR", "1") == "0":
        return float("nan"), "not computed: LAMM_METEOR=0"
    if shutil.which("java") is None:
        return float("nan"), "not computed: Java is not installed (coco-caption's METEOR jar needs it)"
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        scorer = Meteor()
        score, _ = scorer.compute_score(gts, res)
    except (OSError, ValueError) as e:  # a broken Java or jar: say so in the report, keep the other metrics
        return float("nan"), f"not computed: METEOR failed ({type(e).__name__}: {e})"
    finally:
        scorer = None  # its __del__ stops the Java process
    return 100 * float(score), "coco-caption METEOR 1.5 (Java)"


class CaptionMetric(MetricFamily):
    """Caption metrics against ``sentences`` (reference captions)."""

    name = "caption"
    headline = "bleu4"
    metric_names = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider", "meteor", "lamm_bleu4")
    required_fields = ("sentences",)

    def parse(self, answer: Any, record: dict) -> str | None:
        """The tokenised caption, or ``None`` when the answer has no word."""
        return tokenize(answer) or None

    def _refs(self, index: int, record: dict) -> list[str]:
        refs = record["sentences"]
        if not isinstance(refs, list) or not refs or not all(isinstance(s, str) for s in refs):
            raise RecordError(index, record, "sentences", f"expected a non-empty list of captions, got {refs!r}")
        if not any(tokenize(r) for r in refs):  # nothing to match against (CIDEr would crash on it)
            raise RecordError(index, record, "sentences", f"no reference caption has a word: {refs!r}")
        return refs

    def evaluate(
        self, answers: Sequence[Any], records: Sequence[dict], *, ci: bool = True, seed: int = 0,
        n_boot: int = DEFAULT_N_BOOT,
    ) -> MetricReport:
        check_inputs(self, answers, records)
        Bleu, Rouge, Cider, _, _ = _import_scorers()
        refs = [self._refs(i, r) for i, r in enumerate(records)]
        hyps = [self.parse(a, r) for a, r in zip(answers, records)]
        gts = {i: [tokenize(s) for s in rs] for i, rs in enumerate(refs)}
        res = {i: [h or ""] for i, h in enumerate(hyps)}
        metrics: dict[str, float] = {}
        if records:
            bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)
            rouge, rouge_each = Rouge().compute_score(gts, res)
            cider, cider_each = Cider().compute_score(gts, res)
            metrics.update({f"bleu{k + 1}": 100 * float(b) for k, b in enumerate(bleus)})
            metrics.update({"rouge_l": 100 * float(rouge), "cider": 100 * float(cider)})
        else:
            rouge_each = cider_each = []
            metrics.update({m: float("nan") for m in self.metric_names[:6]})
        metrics["meteor"], meteor_info = meteor(gts, res) if records else (float("nan"), "no records")
        lamm = [lamm_bleu4(a, rs) for a, rs in zip(answers, refs)]
        metrics["lamm_bleu4"] = 100 * float(np.mean(lamm)) if lamm else float("nan")

        rows = [{"index": i, "id": r.get("id"), "parsed": h, "unparsed": h is None,
                 "rouge_l": 100 * float(rouge_each[i]), "cider": 100 * float(cider_each[i]),
                 "lamm_bleu4": 100 * lamm[i]} for i, (r, h) in enumerate(zip(records, hyps))]
        intervals = {}
        if ci and records:
            stats = bleu_statistics([h or "" for h in hyps], [gts[i] for i in range(len(records))])
            intervals["bleu4"] = bootstrap_weighted(lambda w: 100 * corpus_bleu4(w @ stats), len(records),
                                                    n_boot=n_boot, seed=seed)
        unparsed = sum(h is None for h in hyps)
        return MetricReport(self.name, metrics, self.headline, len(records), unparsed, intervals, rows,
                            {"tokenizer": "PTB-style, in Python (no Java)", "cider": "CIDEr-D (pycocoevalcap)",
                             "meteor": meteor_info})


CAPTION = CaptionMetric()
METRICS.add("caption", CAPTION)
