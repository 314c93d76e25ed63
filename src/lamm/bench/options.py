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
    return _tail(text, options)[0]


def _tail(text: str, options: Sequence[str] | None) -> tuple[int | None, list[int] | None]:
    """(start of the options tail, positions of its labels ``(A)``, ``(B)``, ... or ``None`` when the tail
    is an unlabelled ``Options:`` list); ``(None, None)`` without a tail."""
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
        marks: list[int] | None = next(m for s, m in runs if s == start)
    else:
        m = _OPTIONS_LABEL.search(text)
        if m is None:
            return None, None
        i, marks = m.start(), None
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return i, marks


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


def reorder_options(text: str, options: Sequence[str], order: Sequence[int]) -> str:
    r"""``text`` with its embedded labelled options in a new order: the option shown under label ``j`` is
    the one that was under label ``order[j]``. Labels, separators and the stem stay byte for byte; each
    option keeps the spelling the text gives it. A text without an options tail is returned as it is
    (the prompt's ``{options}`` shows them). Raises ``ValueError`` when the tail cannot be reordered
    faithfully: an unlabelled ``Options:`` list, or more labels than ``options`` (the text lists options
    the record does not have). Circular evaluation (``lamm.bench.circular``) asks every rotation this way.

    >>> reorder_options("Q? Options: (A) red (B) blue (C) green", ["red", "blue", "green"], [1, 2, 0])
    'Q? Options: (A) blue (B) green (C) red'
    >>> reorder_options("Q?\n(A) red\n(B) blue", ["red", "blue"], [1, 0])
    'Q?\n(A) blue\n(B) red'
    >>> reorder_options("How many?", ["1", "2"], [1, 0])
    'How many?'
    """
    if sorted(order) != list(range(len(options))):
        raise ValueError(f"order {list(order)!r} is not a permutation of the {len(options)} options")
    start, marks = _tail(text, options)
    if start is None:
        return text
    if marks is None:
        raise ValueError("its options are not labelled (A), (B), ... (an unlabelled 'Options:' list), so "
                         "they cannot be shown in another order")
    ends = marks[1:] + [len(text)]
    last = text[marks[-1] + 3:]
    extra = string.ascii_uppercase[len(options)] if len(options) < 26 else None
    if extra is not None and f"({extra})" in last:
        raise ValueError(f"it lists more options than the record's {len(options)} (a '({extra})' follows "
                         f"'({string.ascii_uppercase[len(options) - 1]})'); make gt_choices match the query")
    # each segment: the label's trailing white space, the option text, the separator before the next label
    segments = []
    for a, b in zip(marks, ends):
        seg = text[a + 3:b]
        core = seg.strip()
        lead = seg[:len(seg) - len(seg.lstrip())]
        trail = seg[len(seg.rstrip()):] if core else ""
        segments.append((lead, core, trail))
    out = [text[:marks[0]]]
    for j, (a, _) in enumerate(zip(marks, ends)):
        lead, _, trail = segments[j]
        out.append(f"{text[a:a + 3]}{lead}{segments[order[j]][1]}{trail}")
    return "".join(out)
