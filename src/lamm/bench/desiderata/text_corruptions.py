"""Text corruptions of the robustness desideratum: typos, adjacent word swaps, distractor sentences.

Each function takes the question text, the severity's parameter and a seeded ``numpy`` generator, and
returns the corrupted text (``lamm.bench.desiderata.corruptions`` registers them with their severity
tables and seeds the generator from (seed, sample id, name, severity)).

Multiple-choice questions that embed their options (``"... Options: (A) red (B) blue"``, LAMM's
ScienceQA / ScanQA / synthetic VQA style) are corrupted in the *stem* only: ``lamm.bench.options.
split_options`` (the one options splitter, shared with instruction following) cuts the text before the
options and the tail is kept byte for byte. The options and their labels are what the answer is parsed
against and scored by (option letters, unique option text); corrupting them would change the question's
answer key and measure the parser rather than the model's robustness. Field labels in the stem (a word
directly followed by ``:``, e.g. ``Question:``, ``Context:``) are kept too.

>>> q = "Question: Is the circle red? Options: (A) yes (B) no"
>>> word_swap(q, 0.5, np.random.default_rng(0))
'Question: Is circle red the? Options: (A) yes (B) no'
"""

from __future__ import annotations

import re

import numpy as np

from lamm.bench.options import split_options

#: irrelevant sentences for ``distractor``: plain facts with no visual content and no answer-like words
DISTRACTORS: tuple[str, ...] = (
    "The museum closes early on public holidays.",
    "Bread rises faster in a warm kitchen.",
    "The train to the coast leaves every hour.",
    "Most libraries lend books for three weeks.",
    "A marathon is a little over forty-two kilometres long.",
    "The committee meets on the first Monday of each month.",
    "Tea was first brought to Europe by traders.",
    "The bridge was repainted two summers ago.",
    "Many birds migrate south before the winter.",
    "The recipe calls for a pinch of salt.",
    "The concert was moved to the larger hall.",
    "Office hours end at five in the afternoon.",
)

_WORD = re.compile(r"[A-Za-z]{3,}")  # letter runs a typo may go inside (not "a", "is", numbers or labels)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _on_stem(fn):
    """Apply ``fn(stem, level, rng)`` to the stem of ``text`` only (see the module docstring)."""

    def corrupt(text: str, level: float, rng: np.random.Generator) -> str:
        stem, tail = split_options(text)
        return fn(stem, level, rng) + tail

    corrupt.__doc__ = fn.__doc__
    corrupt.__name__ = fn.__name__
    return corrupt


def _typo(word: str, rng: np.random.Generator) -> str:
    """One edit inside ``word`` (>= 3 letters): swap two different neighbours, delete or insert a letter."""
    op = int(rng.integers(3))
    if op == 0:
        spots = [i for i in range(len(word) - 1) if word[i] != word[i + 1]]
        if spots:
            i = spots[int(rng.integers(len(spots)))]
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        op = 1  # "aaa" has no swap that changes it
    if op == 1:
        i = int(rng.integers(len(word)))
        return word[:i] + word[i + 1:]
    i = int(rng.integers(1, len(word)))  # strictly inside the word
    return word[:i] + _LETTERS[int(rng.integers(26))] + word[i:]


@_on_stem
def typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """One character edit (swap / deletion / insertion) in ``rate`` of the words of >= 3 letters, at
    least one word when there is any; words are chosen without replacement."""
    words = [m for m in _WORD.finditer(text) if not text.startswith(":", m.end())]  # keep "Question:"
    if not words:
        return text
    k = max(1, round(rate * len(words)))
    picked = sorted(int(i) for i in rng.choice(len(words), size=min(k, len(words)), replace=False))
    out, last = [], 0
    for i in picked:
        m = words[i]
        out.append(text[last:m.start()])
        out.append(_typo(m.group(), rng))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


_CORE = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


@_on_stem
def word_swap(text: str, rate: float, rng: np.random.Generator) -> str:
    """Swap ``rate`` of the adjacent word pairs (at least one when there are two words). Only the words'
    letters move; the punctuation around them stays in place ("is it red?" → "it is red?")."""
    tokens = re.split(r"(\s+)", text)
    parts = [list(_CORE.match(t).groups()) if t and not t.isspace() else None for t in tokens]  # type: ignore[union-attr]
    # a field label ("Question:", "Context:") stays where it is
    words = [i for i, p in enumerate(parts) if p is not None and p[1] and not p[2].startswith(":")]
    if len(words) < 2:
        return text
    k = max(1, round(rate * (len(words) - 1)))
    for j in sorted(int(i) for i in rng.choice(len(words) - 1, size=min(k, len(words) - 1), replace=False)):
        a, b = parts[words[j]], parts[words[j + 1]]
        a[1], b[1] = b[1], a[1]  # type: ignore[index]
    return "".join("".join(p) if p is not None else t for t, p in zip(tokens, parts))


@_on_stem
def distractor(text: str, count: float, rng: np.random.Generator) -> str:
    """``count`` irrelevant sentences from :data:`DISTRACTORS` (distinct, seeded) put before the question."""
    n = min(int(count), len(DISTRACTORS))
    picked = [DISTRACTORS[int(i)] for i in rng.choice(len(DISTRACTORS), size=n, replace=False)]
    body = text.lstrip()
    lead = text[: len(text) - len(body)]
    return lead + " ".join(picked) + (" " + body if body else "")
