"""Instruction following (ChEF): multiple-choice answers under relabelled options.

Records are multiple-choice records (``gt_choice``, ``gt_choices``) plus ``verbal_labels`` — the label
of each option under the verbaliser the model was told to use (``lamm.bench.desiderata.
instruction_following`` adds them; ``scenario.verbalizer`` in a recipe). Metrics (percent):

* ``match_rate`` (headline) — the answer names the correct option's label;
* ``label_rate`` — the answer names a label of one of the question's options at all (right or wrong);
* ``unparsed`` — a count: answers naming no label of the question (wrong in both rates).

The prediction is the chosen option's 0-based index, so two runs of the same questions under different
labels can be compared (``choice_consistency``). :func:`parse_label` reads it; it never raises.

>>> recs = [{"gt_choice": 1, "gt_choices": ["a", "b"], "verbal_labels": ["I", "II"]},
...         {"gt_choice": 0, "gt_choices": ["a", "b"], "verbal_labels": ["I", "II"]}]
>>> INSTRUCTION_FOLLOWING.evaluate(["The answer is II", "I think it is a."], recs, ci=False).metrics
{'match_rate': 50.0, 'label_rate': 50.0, 'unparsed': 1.0}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lamm.bench.metrics.base import METRICS, RecordError, Score
from lamm.bench.metrics.multiple_choice import MultipleChoiceMetric

# Tokens: a maximal run of letters/digits (any script), or one other visible character. Matching labels
# against whole tokens is what keeps "I" from matching inside "It" and "II" from being read as "I".
_TOKEN_RE = re.compile(r"[^\W_]+|\S")

_OPEN_CLOSE = {"(": ")", "[": "]", "{": "}", "<": ">", "*": "*", '"': '"', "'": "'", "`": "`", "“": "”"}
#: words between "answer" / "option" and the label ("the answer would be: (2)"), Markdown marks included
#: ("**Answer:** B"); a filler that is one of the question's labels is read as the label
_FILLERS = frozenset({"is", "would", "be", "will", "should", ":", "：", "-", "=", "—", "*", "_", "`"})
_ANSWER_WORDS = frozenset({"answer"})
_OPTION_WORDS = frozenset({"option", "label", "choice"})
#: what may follow a label that opens the answer ("2.", "II)", "@: attract", "**B**")
_AFTER_LEADING = frozenset({".", ")", "]", "}", ">", ":", "：", ",", ";", "!", "*", '"', "'", "`", "”", "-", "—"})
#: decoration before a leading label (Markdown emphasis, quotes, an opening bracket, a block quote)
_BEFORE_LEADING = frozenset({"*", "_", '"', "'", "`", "“", "(", "[", "{", "<", ">"})


class _Labels:
    """Lookup of one question's labels. Upper-case alphabetic labels (letters, roman numerals) must
    match their case when bare ("a cat" is not option A, "I think" is not option I) but not inside
    brackets ("(b)"); other labels match case-insensitively ("Two")."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self.exact = {lab: i for i, lab in reversed(list(enumerate(self.labels)))}
        self.folded = {lab.casefold(): i for i, lab in reversed(list(enumerate(self.labels)))}
        self.strict = {lab for lab in self.labels if lab.isalpha() and lab.isupper()}
        # labels without a letter or digit never occur in prose: a unique mention anywhere counts
        self.prose_safe = {lab for lab in self.labels if not any(c.isalnum() for c in lab)}

    def find(self, token: str, bracketed: bool) -> int | None:
        if token in self.exact:
            return self.exact[token]
        i = self.folded.get(token.casefold())
        if i is None or (not bracketed and self.labels[i] in self.strict):
            return None
        return i


def _after_keyword(toks: list[str], j: int, lab: _Labels) -> int | None:
    """The label right after a keyword at ``j - 1``, skipping a few filler words and one opening bracket."""
    steps = 0
    while j < len(toks) and steps < 4 and toks[j].lower() in _FILLERS and lab.find(toks[j], False) is None:
        j, steps = j + 1, steps + 1
    if j < len(toks) and toks[j].lower() in _OPTION_WORDS:
        j += 1
    bracketed = j < len(toks) and toks[j] in _OPEN_CLOSE and lab.find(toks[j], False) is None
    j += bracketed
    return lab.find(toks[j], bracketed) if j < len(toks) else None


def parse_label(text: Any, labels: Sequence[str]) -> int | None:
    """The index of the option whose label ``text`` names, or ``None``. Never raises.

    Rules, first hit wins: the token after "answer (is/would be/:)" (optionally "option", a bracket);
    a label in brackets or quotes, "(2)" / "[II]" / "**@**"; the token after "option"/"label"/"choice";
    an answer that opens with the label followed by punctuation or nothing ("2.", "II) repel", "two");
    for symbol labels only, the one symbol label mentioned anywhere. Labels are matched as whole tokens.
    ``labels`` must be single tokens (a word, a number or one symbol), one per option.

    >>> parse_label("The answer is II.", ["I", "II", "III"])
    1
    >>> parse_label("answer: two", ["one", "two"]), parse_label("(2) repel", ["1", "2"])
    (1, 1)
    >>> parse_label("I think it is the cube.", ["I", "II"]) is None
    True
    """
    if not isinstance(text, str) or not labels:
        return None
    try:
        lab = _Labels([str(x) for x in labels])
    except (TypeError, ValueError):
        return None
    toks = _TOKEN_RE.findall(text)
    for j, t in enumerate(toks):
        if t.lower() in _ANSWER_WORDS:
            i = _after_keyword(toks, j + 1, lab)
            if i is not None:
                return i
    for j in range(len(toks) - 2):
        close = _OPEN_CLOSE.get(toks[j])
        if close is not None and toks[j + 2] == close:
            i = lab.find(toks[j + 1], True)
            if i is not None:
                return i
    for j, t in enumerate(toks):
        if t.lower() in _OPTION_WORDS:
            i = _after_keyword(toks, j + 1, lab)
            if i is not None:
                return i
    i = _leading(text, lab)
    if i is not None:
        return i
    return _symbol_mention(text, lab)


def _symbol_mention(text: str, lab: _Labels) -> int | None:
    """The one symbol label (no letter or digit) mentioned anywhere, not glued to a letter or digit
    ("$5" is money, not option "$"); several different ones are ambiguous."""
    if not lab.prose_safe:
        return None
    found = set()
    for m in _TOKEN_RE.finditer(text):
        if m.group() in lab.prose_safe:
            before = text[m.start() - 1] if m.start() else " "
            after = text[m.end()] if m.end() < len(text) else " "
            if not before.isalnum() and not after.isalnum():
                found.add(lab.exact[m.group()])
    return found.pop() if len(found) == 1 else None


def _leading(text: str, lab: _Labels) -> int | None:
    """A label that opens the answer and is followed by punctuation, a line break or nothing."""
    matches = list(_TOKEN_RE.finditer(text))
    k, bracketed = 0, False
    while k < len(matches) and matches[k].group() in _BEFORE_LEADING and lab.find(matches[k].group(), False) is None:
        bracketed = bracketed or matches[k].group() in _OPEN_CLOSE
        k += 1
    if k >= len(matches):
        return None
    i = lab.find(matches[k].group(), bracketed)
    if i is None:
        return None
    if k + 1 == len(matches):
        return i
    nxt = matches[k + 1]
    if nxt.group() in _AFTER_LEADING or "\n" in text[matches[k].end():nxt.start()]:
        return i
    return None


class InstructionFollowingMetric(MultipleChoiceMetric):
    """``match_rate``, ``label_rate`` and the ``unparsed`` count of answers under relabelled options.

    A multiple-choice family (its record checks and its ``unparsed`` count are ``multiple_choice``'s)
    that reads the option's label instead of its letter."""

    name = "instruction_following"
    headline = "match_rate"
    metric_names = ("match_rate", "label_rate")
    required_fields = ("gt_choice", "gt_choices", "verbal_labels")

    def check_record(self, index: int, record: Any) -> None:
        if isinstance(record, dict) and "gt_choices" in record and "verbal_labels" not in record:
            raise RecordError(index, record, "verbal_labels", "missing; the instruction_following family scores "
                              "verbalised questions: set scenario.verbalizer in the recipe (e.g. numbers)")
        super().check_record(index, record)  # required fields, gt_choices and gt_choice
        choices, labels = record["gt_choices"], record["verbal_labels"]
        if (not isinstance(labels, list) or len(labels) != len(choices)
                or not all(isinstance(x, str) and _TOKEN_RE.fullmatch(x) for x in labels)
                or len(set(labels)) != len(labels)):
            raise RecordError(index, record, "verbal_labels", f"expected {len(choices)} distinct labels, each one "
                              f"word, number or symbol (one per option), got {labels!r}")

    def parse(self, answer: Any, record: dict) -> int | None:
        """The chosen option's 0-based index, or ``None``."""
        labels = record.get("verbal_labels") if isinstance(record, dict) else None
        return parse_label(answer, labels) if isinstance(labels, list) else None

    def score(self, parsed: Any, record: dict, index: int) -> dict[str, Score]:
        return {"match_rate": float(parsed is not None and parsed == record["gt_choice"]),
                "label_rate": float(parsed is not None)}


INSTRUCTION_FOLLOWING = InstructionFollowingMetric()
METRICS.add("instruction_following", INSTRUCTION_FOLLOWING)
