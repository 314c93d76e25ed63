"""Answer parsers: model text → structured predictions (numbers, boxes, points, options, counts, words).

Contract: every public parser takes any object and **never raises**. When nothing usable can be read it
returns ``None`` — the *unparsed* marker that metrics count, report and score as wrong. Only ASCII digits
are read (``\\d`` would accept Arabic-Indic digits, which models do not emit for coordinates), and
non-finite values (``1e999``) are dropped.

LAMM compatibility: numbers for boxes and points are read from every ``[...]`` group, then every
``(...)`` group (in that order, concatenated, trimmed to a multiple of the group size), and only when
that yields no complete group from any number in the text. 2D boxes whose two corners are both inverted
(``x1 > x2`` and ``y1 > y2``) are swapped; a box inverted on one axis only is kept as given (it has zero
area and can only ever be a false positive).

>>> parse_boxes_2d("The cat is at [0.5, 0.6, 0.1, 0.2].")
[[0.1, 0.2, 0.5, 0.6]]
>>> parse_option("The answer is (F).", ["a", "b", "c", "d", "e", "f"])
5
>>> parse_count("5.")
5.0
>>> parse_quoted_words('The words are "PUFF" and "STUFF".')
['PUFF', 'STUFF']
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = [
    "parse_boxes_2d",
    "parse_boxes_2d_with_pos",
    "parse_boxes_3d",
    "parse_boxes_3d_with_pos",
    "parse_count",
    "parse_numbers",
    "parse_option",
    "parse_point",
    "parse_points",
    "parse_quoted_words",
    "tokenize_words",
]

# A number not glued to a preceding word ("x1", "v2.0" are not numbers); a sign only counts when it is
# not a hyphen between two tokens ("5-6" is 5 and 6, "-0.4" is negative).
_NUM_RE = re.compile(
    r"(?<![A-Za-z0-9_.])(?:(?<![A-Za-z0-9_.])[-+](?=[0-9.]))?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
)
_BRACKET_RE = re.compile(r"\[([^\[\]]*)\]")
_PAREN_RE = re.compile(r"\(([^()]*)\)")


def _numbers_with_pos(text: str, offset: int = 0) -> list[tuple[float, int]]:
    out = []
    for m in _NUM_RE.finditer(text):
        try:
            v = float(m.group())
        except ValueError:  # a lone "." or "+." cannot match, but stay total
            continue
        if math.isfinite(v):
            out.append((v, offset + m.start()))
    return out


def parse_numbers(text: Any) -> list[float] | None:
    """All finite numbers in ``text`` in order, or ``None`` when there is none.

    >>> parse_numbers("x1 = 3, y = -0.5 and 1e2")
    [3.0, -0.5, 100.0]
    """
    if not isinstance(text, str):
        return None
    nums = [v for v, _ in _numbers_with_pos(text)]
    return nums or None


def _grouped(text: Any, size: int) -> list[tuple[list[float], int]]:
    """Numbers grouped by ``size`` with the text position of each group's first number (LAMM order)."""
    if not isinstance(text, str):
        return []
    nums: list[tuple[float, int]] = []
    for regex in (_BRACKET_RE, _PAREN_RE):
        for m in regex.finditer(text):
            nums.extend(_numbers_with_pos(m.group(1), offset=m.start(1)))
    if len(nums) < size:
        nums = _numbers_with_pos(text)
    usable = len(nums) // size * size
    return [([v for v, _ in nums[i : i + size]], nums[i][1]) for i in range(0, usable, size)]


def parse_boxes_2d_with_pos(text: Any) -> list[tuple[list[float], int]]:
    """2D boxes ``[x1, y1, x2, y2]`` with the character offset where each starts (``[]`` if none)."""
    out = []
    for box, pos in _grouped(text, 4):
        if box[0] > box[2] and box[1] > box[3]:
            box = [box[2], box[3], box[0], box[1]]
        out.append((box, pos))
    return out


def parse_boxes_2d(text: Any) -> list[list[float]] | None:
    """2D boxes ``[x1, y1, x2, y2]`` (groups of 4 numbers), or ``None``.

    >>> parse_boxes_2d("person (0.1, 0.2, 0.3, 0.4); dog 0.5 0.5 0.9 0.9")
    [[0.1, 0.2, 0.3, 0.4]]
    >>> parse_boxes_2d("no box here") is None
    True
    """
    boxes = [b for b, _ in parse_boxes_2d_with_pos(text)]
    return boxes or None


def parse_boxes_3d_with_pos(text: Any) -> list[tuple[list[float], int]]:
    """3D boxes ``[cx, cy, cz, lx, ly, lz]`` with the character offset where each starts."""
    return _grouped(text, 6)


def parse_boxes_3d(text: Any) -> list[list[float]] | None:
    """3D boxes ``[cx, cy, cz, lx, ly, lz]`` (groups of 6 numbers, metres), or ``None``.

    >>> parse_boxes_3d("chair: [1.2, -0.4, 0.45, 0.55, 0.6, 0.9]")
    [[1.2, -0.4, 0.45, 0.55, 0.6, 0.9]]
    """
    boxes = [b for b, _ in _grouped(text, 6)]
    return boxes or None


def parse_points(text: Any) -> list[list[float]] | None:
    """Points ``[x, y]`` (groups of 2 numbers), or ``None``.

    >>> parse_points("at [0.25, 0.5] and [0.3, 0.7]")
    [[0.25, 0.5], [0.3, 0.7]]
    """
    pts = [p for p, _ in _grouped(text, 2)]
    return pts or None


def parse_point(text: Any) -> list[float] | None:
    """The first point ``[x, y]`` of ``text``, or ``None``.

    >>> parse_point("The left knee is at (0.41, 0.77).")
    [0.41, 0.77]
    """
    pts = parse_points(text)
    return pts[0] if pts else None


# --- multiple choice ---------------------------------------------------------------------------------

# markdown a chat model wraps around its choice: "**Answer:** B", "The answer is **B**.", "`B`"
_MARKDOWN_RE = re.compile(r"\*+|`+|~~|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])")
# "answer", "option", "choice", "I choose / chose / pick", then short fillers ("is", "would be", ":", "-")
# and an optional "option" / "choice" / "letter": "The correct option is", "Answer -", "answer is option"
_LEAD = (r"(?i:\b(?:answer|option|choice|choose|chose|pick)\b)"
         r"(?:\s*(?:(?i:is|would\s+be|should\s+be|will\s+be|must\s+be)\b|[:：=\-–—])){0,4}"
         r"\s*(?:(?i:option|choice|letter)\b\s*)?")
# a letter in (), [] or quotes says it is a letter, in either case
_BRACKETED = r"""[(\[“"'‘]\s*([A-Za-z])\s*[)\]”"'’]"""
_ANSWER_BRACKETED_RE = re.compile(_LEAD + _BRACKETED)
_ANSWER_BARE_RE = re.compile(_LEAD + r"([A-Z])(?![A-Za-z0-9])")
_BRACKETED_LETTER_RE = re.compile(r"[(\[]\s*([A-Za-z])\s*[)\]]")
_LEADING_LETTER_RE = re.compile(r"^\s*([A-Z])\s*(?:[.):：,]|\s[-–—]\s|$)")
_SPACES_RE = re.compile(r"\s+")
_NEXT_WORD_RE = re.compile(r"\s+([a-z][a-z']*)")
# "A" and "I" are also English words: "Answer: A dog is sitting" names no option A. A capital A / I
# followed by a lower-case word is read as a letter only when that word cannot follow an article or
# a pronoun ("The answer is A because ...", "A is correct").
_WORD_LETTERS = frozenset("AI")
_AFTER_LETTER_WORDS = frozenset({"because", "since", "as", "is", "was", "seems", "and", "or", "but", "which",
                                 "so", "therefore", "fits", "matches"})


def _norm_text(s: str) -> str:
    return _SPACES_RE.sub(" ", s.lower()).strip()


def _strip_markdown(s: str) -> str:
    return _MARKDOWN_RE.sub("", s)


def _is_word_not_letter(text: str, m: re.Match[str]) -> bool:
    """The bare capital ``A`` / ``I`` of ``m`` starts a phrase ("A dog", "I think"), not a choice."""
    if m.group(1) not in _WORD_LETTERS:
        return False
    nxt = _NEXT_WORD_RE.match(text, m.end(1))
    return nxt is not None and nxt.group(1) not in _AFTER_LETTER_WORDS


def _first_letter(regex: re.Pattern[str], text: str, n: int, bare: bool = False) -> int | None:
    for m in regex.finditer(text):
        idx = ord(m.group(1).upper()) - ord("A")
        if 0 <= idx < n and not (bare and _is_word_not_letter(text, m)):
            return idx
    return None


def parse_option(text: Any, choices: Sequence[str] | int) -> int | None:
    """The chosen option's index (A → 0 … F → 5), or ``None``.

    Markdown emphasis and code marks (``**``, ``*``, ``__``, backticks) are dropped first. Rules, first
    hit wins: a lead-in ("answer", "option", "choice", "I choose/pick", with short fillers: "The answer
    is", "ANSWER:", "Answer -", "The correct option is", "answer is option") followed by a letter in
    ``()``, ``[]`` or quotes (either case); the same lead-in followed by a bare capital letter; a letter
    in ``()`` or ``[]`` anywhere; an answer that starts with the letter ("B", "B.", "B) repel",
    "B, because"); finally the option *text*, when exactly one option's text appears as whole words (an
    option whose text is contained in another matched option's text, e.g. "cat" inside "black cat",
    yields to the longer one). A bare lower-case letter is a word, not an option; a bare "A" or "I"
    followed by a lower-case word is one too ("Answer: A dog is sitting"), unless that word is a
    connective such as "because" or "is". Letters outside the number of options are ignored.
    ``choices`` is the option texts or just their number.

    >>> parse_option("ANSWER: B", 2)
    1
    >>> parse_option("**Answer:** B", 2), parse_option("The answer is [B].", 2), parse_option("Answer - B", 2)
    (1, 1, 1)
    >>> parse_option("Answer: A dog is sitting on the grass.", ["cat", "dog"])
    1
    >>> parse_option("I think it is a laptop.", ["a lamp", "a laptop", "a cup"])
    1
    >>> parse_option("Either a lamp or a cup.", ["a lamp", "a laptop", "a cup"]) is None
    True
    """
    if not isinstance(text, str):
        return None
    if isinstance(choices, int) and not isinstance(choices, bool):
        n, texts = choices, []
    elif isinstance(choices, (list, tuple)):
        n, texts = len(choices), [c if isinstance(c, str) else str(c) for c in choices]
    else:
        return None
    n = min(n, 26)
    plain = _strip_markdown(text)
    for regex, bare in ((_ANSWER_BRACKETED_RE, False), (_ANSWER_BARE_RE, True), (_BRACKETED_LETTER_RE, False),
                        (_LEADING_LETTER_RE, False)):
        idx = _first_letter(regex, plain, n, bare)
        if idx is not None:
            return idx
    return _match_option_text(plain, [_strip_markdown(t) for t in texts])


def _contains_words(text: str, phrase: str) -> bool:
    """``phrase`` occurs in ``text`` not glued to letters/digits (a plain scan: no regex per option)."""
    start = text.find(phrase)
    while start >= 0:
        end = start + len(phrase)
        before = text[start - 1] if start else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() and phrase[0].isalnum()) and not (after.isalnum() and phrase[-1].isalnum()):
            return True
        start = text.find(phrase, start + 1)
    return False


def _match_option_text(text: str, texts: list[str]) -> int | None:
    lower = _norm_text(text)
    found: dict[int, str] = {}
    for i, opt in enumerate(texts):
        o = _norm_text(opt).strip(" .,;:!?\"'")
        if o and _contains_words(lower, o):
            found[i] = o
    # a shorter option contained in a longer matched one ("cat" in "black cat") is not a separate hit
    keep = [i for i, o in found.items() if not any(j != i and o != p and o in p for j, p in found.items())]
    distinct = {found[i] for i in keep}
    if len(distinct) == 1 and len(keep) == 1:
        return keep[0]
    return None


# --- counts --------------------------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
# multipliers of what precedes them ("two dozen" = 24, "a dozen" = 12)
_SCALES = {"hundred": 100, "thousand": 1000, "dozen": 12}
_NUMWORD = "|".join(sorted(list(_UNITS) + list(_SCALES), key=len, reverse=True))
_WORDS_RUN_RE = re.compile(
    rf"\b(?:{_NUMWORD})\b(?:(?:\s+|\s*-\s*)(?:and\s+)?(?:{_NUMWORD})\b)*", re.IGNORECASE
)
# thousands separators only in counts: "1,000" is a thousand, "5," is five
_COUNT_DIGITS_RE = re.compile(
    r"(?<![A-Za-z0-9_.,])(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+(?:\.[0-9]+)?)(?![0-9])"
)


def _words_value(run: str) -> float | None:
    """Value of a run of number words; stops where the run stops being one number ("two three" → 2,
    "one and two" → 1; "and" is only allowed after hundred/thousand)."""
    total, current, seen, last = 0, 0, False, ""
    for w in re.findall(r"[a-z]+", run.lower()):
        if w == "and":
            if last not in _SCALES:
                break
            last = w
            continue
        if w in _UNITS:
            v, low = _UNITS[w], current % 100
            if (v < 20 and (low % 10 or 10 <= low < 20)) or (v >= 20 and low) or last == "dozen":
                break  # a second units word, or tens after units: a new number starts here
            current += v
        else:
            if (w == "hundred" and current % 1000 >= 100) or (w == last and w != "hundred") \
                    or (w == "dozen" and last in _SCALES):
                break
            if w == "dozen":
                current = max(current, 1) * 12
            elif w == "thousand":
                total += max(current, 1) * 1000
                current = 0
            else:
                current = (current // 100 * 100) + max(current % 100, 1) * 100
        seen, last = True, w
    return float(total + current) if seen else None


def parse_count(text: Any) -> float | None:
    """The first count in ``text``: digits ("5", "5.", "5,", "1,000", "2.5") or number words ("five",
    "twelve", "twenty-five", "one hundred and three"), whichever comes first; ``None`` if none.

    >>> parse_count("There are 5, maybe 6.")
    5.0
    >>> parse_count("I count twenty-five shells")
    25.0
    >>> parse_count("There are no apples.") is None
    True
    """
    if not isinstance(text, str):
        return None
    best: tuple[int, float] | None = None
    m = _COUNT_DIGITS_RE.search(text)
    if m:
        v = float(m.group().replace(",", ""))
        if math.isfinite(v):
            best = (m.start(), v)
    w = _WORDS_RUN_RE.search(text)
    if w and (best is None or w.start() < best[0]):
        v = _words_value(w.group())
        if v is not None:
            best = (w.start(), v)
    return best[1] if best else None


# --- words ---------------------------------------------------------------------------------------------

_QUOTE_RES = [
    re.compile(r'"([^"\n]+?)"'),
    re.compile(r"“([^”\n]+?)”"),
    re.compile(r"‘([^’\n]+?)’"),
    re.compile(r"«([^»\n]+?)»"),
    re.compile(r"`([^`\n]+?)`"),
    # a straight single quote opens only after a non-word char and closes only before one, so the
    # apostrophes of "it's" / "don't" are never taken for quotes
    re.compile(r"(?<![A-Za-z0-9])'([^'\n]+?)'(?![A-Za-z0-9])"),
]
_TOKEN_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def parse_quoted_words(text: Any) -> list[str] | None:
    """Every quoted string in ``text`` (all of them, in order of appearance), or ``None`` if none.

    >>> parse_quoted_words("It's 'PUFF' and 'STUFF', I think")
    ['PUFF', 'STUFF']
    """
    if not isinstance(text, str):
        return None
    hits: list[tuple[int, str]] = []
    for regex in _QUOTE_RES:
        hits.extend((m.start(), m.group(1).strip()) for m in regex.finditer(text))
    words = [w for _, w in sorted(hits) if w]
    return words or None


def tokenize_words(text: Any) -> list[str]:
    """Word tokens (letters/digits, inner apostrophes kept), original case; ``[]`` for non-text.

    >>> tokenize_words("It's 'PUFF', STUFF!")
    ["It's", 'PUFF', 'STUFF']
    """
    if not isinstance(text, str):
        return []
    return _TOKEN_RE.findall(text)
