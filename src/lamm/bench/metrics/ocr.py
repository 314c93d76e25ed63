"""OCR (SVT): ``word_recall`` — the share of ground-truth words (``word_list``) found in the answer.

A ground-truth word is found when it equals (case-insensitively) one of the answer's quoted strings, one
of its word tokens, or one of its whitespace-separated chunks with surrounding punctuation removed (so
"AT&T" can be found). *All* quoted words count (LAMM's quote parser lost words when several were
quoted). Recall is computed per image and averaged over images, as LAMM did. An answer with no words at
all is unparsed (recall 0).

>>> r = OCR.evaluate(['The words are "PUFF" and "STUFF".'], [{"word_list": ["PUFF", "STUFF"]}], ci=False)
>>> r.metrics["word_recall"]
100.0
"""

from __future__ import annotations

from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.parsers import parse_quoted_words, tokenize_words

_STRIP = " \t\n.,;:!?\"'`“”‘’«»()[]{}<>"


class OCRMetric(PerSampleFamily):
    """``word_recall`` (percent) of ``word_list`` words found in the answer."""

    name = "ocr"
    headline = "word_recall"
    metric_names = ("word_recall",)
    required_fields = ("word_list",)

    def parse(self, answer: Any, record: dict) -> list[str] | None:
        """Candidate words: quoted strings first, then tokens and punctuation-stripped chunks (deduplicated)."""
        if not isinstance(answer, str):
            return None
        words = list(parse_quoted_words(answer) or [])
        words += tokenize_words(answer)
        words += [c.strip(_STRIP) for c in answer.split()]
        out = list(dict.fromkeys(w for w in words if w))
        return out or None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        gt = record["word_list"]
        if not isinstance(gt, list) or not gt or not all(isinstance(w, str) for w in gt):
            raise RecordError(index, record, "word_list", f"expected a non-empty list of words, got {gt!r}")
        found = {w.lower() for w in parsed} if parsed else set()
        hits = sum(w.strip().lower() in found for w in gt)
        return {"word_recall": hits / len(gt)}


OCR = OCRMetric()
METRICS.add("ocr", OCR)
