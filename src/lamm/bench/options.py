"""The options a LAMM multiple-choice query embeds: where its ``Options: (A) … (B) …`` tail starts.

LAMM's multiple-choice queries (ScienceQA, AI2D, ScanQA, the synthetic VQA) end with their options:
``"Context: … Question: Will these magnets attract or repel? Options: (A) attract (B) repel"``. Two
desiderata need the question without them, and both use :func:`split_options`:

* instruction following (``lamm.bench.desiderata.instruction_following``) replaces the tail with the
  options under new labels;
* the text corruptions of robustness (``lamm.bench.desiderata.text_corruptions``) corrupt only the
  stem: the options are the answer key the answer is parsed against, and corrupting them would
  measure the parser rather than the model.

The tail is, in this order of preference:

1. a run of labels ``(A)``, ``(B)``, … in order, running to the end of the text (the last option's
   text extends to the end), with the ``Options:`` / ``Choices:`` / ``Answer choices:`` label right
   before it when there is one. With the record's ``options`` known the run has one label per option,
   and of several runs (a question that itself mentions "(A)") the one whose texts between the labels
   are the options wins; then one with a label before it; then the earliest. Without ``options`` a run
   needs ``(A)`` and ``(B)``;
2. failing that, everything from the first ``Options:`` label (any case), so an unlabelled list
   ("Options: red, blue") is still kept apart from the question.

The white space before the tail belongs to the tail, so ``stem + tail == text`` always holds.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

# a label right before the labelled options ("Options:", "Choices:", "Answer choices:"); the colon is
# required, so "... one of these choices (A) x (B) y" keeps its words
_LABEL_BEFORE = re.compile(r"\b(?:answer\s+)?(?:options?|choices?)\s*[:：]\s*$", re.IGNORECASE)
# without a labelled run only "Options:" marks a tail: "Which option: ..." may be the question itself
_OPTIONS_LABEL = re.compile(r"\boptions\s*[:：]", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold().strip(" .,;")


def _label_runs(text: str, n: int) -> list[tuple[int, list[int]]]:
    """``(start, label positions)`` of every run ``(A) … (B) …`` of ``n`` labels in order."""
    letters = string.ascii_uppercase[:n]
    runs = []
    for m in re.finditer(r"\(A\)", text):
        marks, pos = [m.start()], m.end()
        for letter in letters[1:]:
            pos = text.find(f"({letter})", pos)
            if pos < 0:
                break
            marks.append(pos)
            pos += 3
        else:
            runs.append((m.start(), marks))
    return runs


def options_tail_start(text: str, options: Sequence[str] | None = None) -> int | None:
    """The index where the options tail of ``text`` begins (see the module docstring), or ``None``.

    ``options``: the record's option texts (``gt_choices``), when known; they fix the number of labels
    and pick the run whose texts match them.
    """
    n = max(len(options), 2) if options is not None else 2
    runs = _label_runs(text, n)
    if runs:
        def exact(marks: list[int]) -> bool:
            texts = [text[a + 3:b] for a, b in zip(marks, marks[1:] + [len(text)])]
            return (options is not None and len(texts) == len(options)
                    and all(_norm(t) == _norm(str(o)) for t, o in zip(texts, options)))

        labels = {start: _LABEL_BEFORE.search(text, 0, start) for start, _ in runs}
        start = next((s for s, marks in runs if exact(marks)), None)
        if start is None:
            start = next((s for s, _ in runs if labels[s] is not None), runs[0][0])
        label = labels[start]
        i = label.start() if label is not None else start
    else:
        m = _OPTIONS_LABEL.search(text)
        if m is None:
            return None
        i = m.start()
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return i


def split_options(text: str, options: Sequence[str] | None = None) -> tuple[str, str]:
    """``(stem, tail)`` with ``stem + tail == text``: ``tail`` holds the embedded options, their label
    and the white space before them; ``""`` when ``text`` has none. Never raises on a string.

    >>> split_options("Question: What colour? Options: (A) red (B) blue")
    ('Question: What colour?', ' Options: (A) red (B) blue')
    >>> split_options("Which is it? (A) cat (B) dog")
    ('Which is it?', ' (A) cat (B) dog')
    >>> split_options("Is (A) named? (A) red (B) blue", ["red", "blue"])
    ('Is (A) named?', ' (A) red (B) blue')
    >>> split_options("How many shapes?")
    ('How many shapes?', '')
    """
    i = options_tail_start(text, options)
    return (text, "") if i is None else (text[:i], text[i:])
