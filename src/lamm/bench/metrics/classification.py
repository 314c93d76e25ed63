"""Classification (CIFAR10, UCMerced) and facial attributes (CelebA smile, hair colour): ``accuracy``.

* ``classification`` — correct when the answer names the record's ``label`` or a synonym (whole words,
  case-insensitive, plural allowed; tables in ``synonyms.py``, WordNet when installed). The parsed
  prediction is every known class named; an answer naming no known class is *unparsed*. As in LAMM, an
  answer naming several classes is correct when one of them is the label.
* ``facial_smile`` — ``attr`` "1" (smiling) / "-1". A negation ("no", "not", "n't", "never", ...) or
  "frown"/"neutral" means not smiling (LAMM's rule, checked first); else "yes"/"smile"/"grin"/"laugh"
  means smiling; else unparsed.
* ``facial_hair`` — ``attr`` a hair colour ("Black_Hair", "blond", ...). The prediction is the *first*
  colour named ("grey" = "gray", "blonde" = "blond"), so hedging over colours does not score.

>>> r = CLASSIFICATION.evaluate(["It is a kitten.", "A truck", "no idea"],
...     [{"label": "cat"}, {"label": "automobile"}, {"label": "dog"}], ci=False)
>>> round(r.metrics["accuracy"], 2), r.unparsed
(33.33, 1)
>>> FACIAL_SMILE.evaluate(["No, she is not smiling.", "Yes"], [{"attr": "-1"}, {"attr": "1"}],
...     ci=False).metrics["accuracy"]
100.0
"""

from __future__ import annotations

import re
from typing import Any

from lamm.bench.metrics.base import METRICS, PerSampleFamily, RecordError, Score
from lamm.bench.metrics.synonyms import (
    CIFAR10_CLASSES,
    HAIR_COLOURS,
    UCMERCED_CLASSES,
    LabelMatcher,
    label_key,
    wordnet_available,
)


class ClassificationMetric(PerSampleFamily):
    """``accuracy``: the answer names the ground-truth ``label`` (or a synonym)."""

    name = "classification"
    headline = "accuracy"
    metric_names = ("accuracy",)
    required_fields = ("label",)

    def __init__(self, vocabulary: tuple[str, ...] = CIFAR10_CLASSES + UCMERCED_CLASSES, *,
                 wordnet: bool | None = None) -> None:
        """``vocabulary``: the classes recognised in answers (record labels are always added);
        ``wordnet``: add WordNet lemmas — ``None`` means "when installed"."""
        self.vocabulary = tuple(dict.fromkeys(vocabulary))
        self.wordnet = wordnet_available() if wordnet is None else bool(wordnet and wordnet_available())
        self._keys = {label_key(v) for v in self.vocabulary}
        self._base: LabelMatcher | None = None
        self._extra: dict[str, LabelMatcher] = {}

    def _matchers(self, label: Any) -> list[LabelMatcher]:
        if self._base is None:  # built lazily: the WordNet closure takes a moment
            self._base = LabelMatcher(self.vocabulary, wordnet=self.wordnet)
        out = [self._base]
        key = label_key(label) if isinstance(label, str) else ""
        if key and key not in self._keys:
            if key not in self._extra:
                self._extra[key] = LabelMatcher([label], wordnet=self.wordnet)
            out.append(self._extra[key])
        return out

    def parse(self, answer: Any, record: dict) -> list[str] | None:
        """Every class named in ``answer`` (known classes plus the record's label), or ``None``."""
        if not isinstance(answer, str):
            return None
        named: dict[str, None] = {}
        for m in self._matchers(record.get("label")):
            named.update(dict.fromkeys(m.named(answer)))
        return list(named) or None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        label = record["label"]
        if not isinstance(label, str) or not label.strip():
            raise RecordError(index, record, "label", f"expected a class name, got {label!r}")
        hit = parsed is not None and label_key(label) in {label_key(p) for p in parsed}
        return {"accuracy": float(hit)}

    def info(self) -> dict[str, Any]:
        return {"synonyms": "shipped tables + WordNet" if self.wordnet else "shipped tables (WordNet not installed)"}


_NEGATIVE_RE = re.compile(r"\b(?:no|not|never|neither|nor|none|nope|frown\w*|neutral)\b|n[’']t\b", re.IGNORECASE)
_POSITIVE_RE = re.compile(r"\b(?:yes|yeah|yep|smil\w*|grin\w*|laugh\w*)", re.IGNORECASE)


def _smile_gt(index: int, record: dict) -> int:
    attr = record["attr"]
    value = str(attr).strip() if isinstance(attr, (str, int)) and not isinstance(attr, bool) else ""
    if value not in ("1", "-1"):
        raise RecordError(index, record, "attr", f'expected "1" (smiling) or "-1", got {attr!r}')
    return int(value)


class FacialSmileMetric(PerSampleFamily):
    """``accuracy`` of smiling / not smiling against ``attr`` "1" / "-1"."""

    name = "facial_smile"
    headline = "accuracy"
    metric_names = ("accuracy",)
    required_fields = ("attr",)

    def parse(self, answer: Any, record: dict) -> int | None:
        """1 (smiling), -1 (not smiling) or ``None``."""
        if not isinstance(answer, str):
            return None
        if _NEGATIVE_RE.search(answer):
            return -1
        if _POSITIVE_RE.search(answer):
            return 1
        return None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        return {"accuracy": float(parsed is not None and parsed == _smile_gt(index, record))}


_COLOUR_OF = {word: colour for colour, words in HAIR_COLOURS.items() for word in words}


def hair_colour(attr: Any) -> str:
    """Canonical colour of a CelebA hair attribute ("Blond_Hair" → "blond", "grey" → "gray")."""
    words = [w for w in re.split(r"[\s_\-]+", str(attr).lower()) if w and w != "hair"]
    text = " ".join(words)
    return _COLOUR_OF.get(text, text)


class FacialHairMetric(PerSampleFamily):
    """``accuracy``: the first hair colour named equals ``attr``."""

    name = "facial_hair"
    headline = "accuracy"
    metric_names = ("accuracy",)
    required_fields = ("attr",)

    def __init__(self) -> None:
        self._matcher = LabelMatcher(list(_COLOUR_OF))
        self._extra: dict[str, LabelMatcher] = {}

    def parse(self, answer: Any, record: dict) -> str | None:
        """The first colour named in ``answer`` (canonical), or ``None``."""
        if not isinstance(answer, str):
            return None
        hits = [(s, _COLOUR_OF[label]) for s, _, label, _ in self._matcher.find(answer)]
        gt = hair_colour(record.get("attr", ""))
        if gt and gt not in HAIR_COLOURS:  # a colour outside the table still matches its own name
            m = self._extra.setdefault(gt, LabelMatcher([gt]))
            hits += [(s, gt) for s, _, _, _ in m.find(answer)]
        return min(hits)[1] if hits else None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        gt = hair_colour(record["attr"])
        if not gt:
            raise RecordError(index, record, "attr", f"expected a hair colour, got {record['attr']!r}")
        return {"accuracy": float(parsed == gt)}


CLASSIFICATION = ClassificationMetric()
FACIAL_SMILE = FacialSmileMetric()
FACIAL_HAIR = FacialHairMetric()
METRICS.add("classification", CLASSIFICATION)
METRICS.add("facial_smile", FACIAL_SMILE)
METRICS.add("facial_hair", FACIAL_HAIR)
