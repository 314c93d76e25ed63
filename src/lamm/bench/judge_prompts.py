"""The LLM judge's prompts, its reply parsers, and the ground truth as text.

Prompts are versioned data: :data:`JUDGE_PROMPTS` maps an id (``single-v1``, ``pairwise-v1``) to a
:class:`JudgePrompt`; every result records the id and :attr:`JudgePrompt.sha256` (first 16 hex digits of a
SHA-256 of the exact system + template text), so a changed prompt is a new prompt. Never edit a
published prompt in place: add ``single-v2``.

* ``single-v*`` — one answer, graded 0–10 against the reference; the rubric asks for ``Rating: [[N]]``.
* ``pairwise-v*`` — two answers; the first line of the reply holds the two scores ``"s1 s2"`` (LAMM's
  format), reasons follow.

The parsers never raise: a reply they cannot read gives a result with ``score is None`` and an
``error`` saying why, which the judge counts as a *failed* judgement (never as a score).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal


class JudgeError(ValueError):
    """Bad input to the judge (a record without ground truth, a run directory that cannot be read)."""


@dataclass(frozen=True)
class JudgePrompt:
    """One judge prompt: ``system`` message and a user ``template`` with ``{question}``, ``{reference}`` and
    ``{answer}`` (single) or ``{answer_1}`` / ``{answer_2}`` (pairwise)."""

    id: str
    kind: Literal["single", "pairwise"]
    system: str
    template: str

    @property
    def sha256(self) -> str:
        """First 16 hex digits of the SHA-256 of the exact prompt text (system, a 0x1e separator, template)."""
        return hashlib.sha256(f"{self.system}\x1e{self.template}".encode()).hexdigest()[:16]

    def render(self, **fields: str) -> str:
        """The user message for these fields (values are inserted verbatim; braces in them are safe)."""
        return self.template.format(**fields)


_SYSTEM = ("You are a careful, impartial judge of AI assistants' answers to questions about images and 3D "
           "point clouds. You cannot see the image or the point cloud: the reference answer is the ground "
           "truth about it.")

_SINGLE_V1 = """\
[Question]
{question}

[Reference answer]
{reference}

[The assistant's answer]
{answer}

[Instructions]
Rate the assistant's answer to the question above. Judge its helpfulness, relevance, accuracy (agreement \
with the reference answer: a wrong fact is a serious fault, a correct answer in other words is fine) and \
level of detail. Be as objective as possible; the length of the answer alone must not raise its rating.
First explain your evaluation in a few sentences. Then, on the last line, rate the answer on a scale of \
0 to 10 (0: wrong or useless, 10: correct, relevant, helpful and complete) strictly in this format: \
"Rating: [[N]]", for example "Rating: [[5]]"."""

_PAIRWISE_V1 = """\
[Question]
{question}

[Reference answer]
{reference}

[Answer 1]
{answer_1}

[Answer 2]
{answer_2}

[Instructions]
We would like your feedback on the two AI assistants' answers to the question above. Rate the \
helpfulness, relevance, accuracy (agreement with the reference answer) and level of detail of each \
answer. Each answer receives an overall score from 0 to 10; a higher score means a better answer.
Output on the first line only the two scores, for Answer 1 and Answer 2, separated by a space \
(for example "7 4"). On the following lines explain your evaluation, avoiding any bias: neither the \
order in which the answers were presented nor their length may affect your judgement."""

#: prompt id → prompt; ids are never reused for another text (see the module docstring)
JUDGE_PROMPTS: dict[str, JudgePrompt] = {
    "single-v1": JudgePrompt("single-v1", "single", _SYSTEM, _SINGLE_V1),
    "pairwise-v1": JudgePrompt("pairwise-v1", "pairwise", _SYSTEM, _PAIRWISE_V1),
}


def get_prompt(prompt_id: str, kind: str) -> JudgePrompt:
    """The prompt ``prompt_id``, checked to be of ``kind`` (``single`` or ``pairwise``)."""
    p = JUDGE_PROMPTS.get(prompt_id)
    if p is None:
        known = ", ".join(k for k, v in JUDGE_PROMPTS.items() if v.kind == kind)
        raise JudgeError(f"judge prompt {prompt_id!r}: unknown; {kind} prompts: {known}")
    if p.kind != kind:
        raise JudgeError(f"judge prompt {prompt_id!r} is a {p.kind} prompt; a {kind} prompt is needed")
    return p


# ---------------------------------------------------------------------------------------------- parsing

@dataclass(frozen=True)
class Rating:
    """A parsed single-answer rating: ``score`` in [0, 10], or ``None`` with the reason in ``error``."""

    score: float | None
    error: str | None = None


@dataclass(frozen=True)
class PairScores:
    """Parsed pairwise scores ``(s1, s2)`` of answer 1 and answer 2, or ``None`` with ``error``."""

    scores: tuple[float, float] | None
    error: str | None = None


# a number, not the mantissa of "1e1" (read as 1 before)
_NUM = r"[-+−]?\d+(?:\.\d+)?(?!\d|\.\d|[eE][-+]?\d)"
# the rubric's own format: [[7]] (spaces and a /10 tolerated inside the brackets)
_RUBRIC = re.compile(rf"\[\[\s*({_NUM})\s*(?:/\s*10\s*)?\]\]")
# "Rating: 7", "score = 7.5", "Overall rating is **8**", "Rating: [7]", "Score: 7/10", "Rating is: 8",
# "I rate it 7", "I would rate this answer a 6"
_KEYWORD = re.compile(
    r"(?:\b(?:rating|score|grade)\b\s*(?:(?:is|of)\s*)?[=:\-]?"
    r"|\brate\s+(?:it|this(?:\s+answer)?)\s*(?:(?:as|an?|at)\s+)?[=:\-]?)"
    rf"\s*[*_\[(]*\s*({_NUM})(?![\d.]*%)", re.IGNORECASE)
# "7/10", "7 / 10", "7 out of 10"
_OUT_OF_10 = re.compile(rf"(?<![\w.])({_NUM})\s*(?:/|out\s+of)\s*10(?!\.?\d)", re.IGNORECASE)
# the whole reply is a bare number ("7", "7.", "**7**")
_BARE = re.compile(rf"^[\s*_\[(]*({_NUM})[\s*_\])]*\.?\s*$")


def _num(text: str) -> float:
    return float(text.replace("−", "-"))


def _one_value(found: list[str], what: str) -> Rating:
    values = sorted({_num(v) for v in found})
    if len(values) > 1:
        return Rating(None, f"conflicting ratings {', '.join(f'{v:g}' for v in values)} ({what})")
    v = values[0]
    if not 0.0 <= v <= 10.0:
        return Rating(None, f"rating {v:g} is outside 0–10 ({what})")
    return Rating(v)


def parse_rating(text: Any) -> Rating:
    """Read a 0–10 rating from a judge's reply; never raises.

    Tried in order, the first kind found decides: the rubric's ``[[N]]``; a keyword form (``Rating: N``,
    ``Score: N``, ``grade = N``); ``N/10`` or ``N out of 10``; a reply that is only a number. Several
    occurrences of the same value are fine; different values are conflicting (failed), and so is a value
    outside 0–10 or no rating at all.

    >>> parse_rating("Accurate and complete. Rating: [[8]]")
    Rating(score=8.0, error=None)
    >>> parse_rating("Score: 7.5").score, parse_rating("7/10").score, parse_rating("Rating: 12").score
    (7.5, 7.0, None)
    """
    if not isinstance(text, str):
        return Rating(None, f"no reply text (got {type(text).__name__})")
    for pattern, what in ((_RUBRIC, "[[N]]"), (_KEYWORD, "keyword"), (_OUT_OF_10, "N/10")):
        found = pattern.findall(text)
        if found:
            return _one_value(found, what)
    m = _BARE.match(text)
    if m:
        return _one_value([m.group(1)], "bare number")
    return Rating(None, "no rating found" if text.strip() else "empty reply")


# "Answer 1:", "Assistant 2 -", "Response 1 =" labels that would otherwise read as numbers
_LABEL = re.compile(r"\b(?:answer|assistant|response|model)\s*[12]\b\s*(?:score)?\s*[:=\-]?", re.IGNORECASE)
_SUFFIX_10 = re.compile(r"\s*(?:/|out\s+of)\s*10(?!\.?\d)", re.IGNORECASE)


def parse_pair_scores(text: Any) -> PairScores:
    """Read ``"s1 s2"`` from the first line of a pairwise reply that holds a digit; never raises.

    Separators (spaces, commas, ``;``, ``|``, ``vs``), markdown, ``/10`` suffixes and ``Answer 1:``-style
    labels are tolerated; that line must then hold exactly two numbers, each in 0–10 — or, labelled, one,
    with the other on the next labelled line (``Answer 1: 8`` / ``Answer 2: 6``).

    >>> parse_pair_scores("8 6\\nAnswer 1 is more detailed.")
    PairScores(scores=(8.0, 6.0), error=None)
    >>> parse_pair_scores("Answer 1: 7/10, Answer 2: 9/10").scores
    (7.0, 9.0)
    >>> parse_pair_scores("Answer 1 is better.").error
    'no scores found'
    """
    if not isinstance(text, str):
        return PairScores(None, f"no reply text (got {type(text).__name__})")
    if not text.strip():
        return PairScores(None, "empty reply")
    # (line, its label's number or None, numbers) of each line holding a digit once labels are removed
    numbered = []
    for line in text.splitlines():
        label = _LABEL.search(line)
        labelled = re.search(r"[12]", label.group(0)).group(0) if label else None
        cleaned = _SUFFIX_10.sub(" ", _LABEL.sub(" ", line))
        if re.search(r"\d", cleaned):
            numbered.append((line, labelled, re.findall(rf"(?<![\w.]){_NUM}(?!\w)", cleaned)))
    if numbered:
        line, labelled, found = numbered[0]
        if len(found) == 1 and labelled == "1" and len(numbered) > 1 and numbered[1][1] == "2" \
                and len(numbered[1][2]) == 1:
            found = [found[0], numbered[1][2][0]]  # "Answer 1: 8" / "Answer 2: 6" on two lines
        if len(found) != 2:
            return PairScores(None, f"the first line with numbers holds {len(found)} numbers, not 2: "
                                    f"{line.strip()[:80]!r}")
        s1, s2 = _num(found[0]), _num(found[1])
        if not (0.0 <= s1 <= 10.0 and 0.0 <= s2 <= 10.0):
            return PairScores(None, f"scores {s1:g} {s2:g} are outside 0–10")
        return PairScores((s1, s2))
    return PairScores(None, "no scores found")


# ---------------------------------------------------------------------------------------- ground truth

_GENERIC_FIELDS = ("gt_answer", "gt_answers", "answer", "gt")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _rid(record: dict) -> str:
    return repr(record.get("id")) if isinstance(record, dict) else "?"


def _need(record: dict, field: str, family: str) -> Any:
    value = record.get(field)
    if value is None or value == "" or value == []:
        raise JudgeError(f"record {_rid(record)}: field {field!r}: missing or empty (the {family} ground truth "
                         "the judge compares answers with); fix the record or judge another scenario")
    return value


def _as_lines(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(v) for v in value)
    return str(value)


def _boxes(objects: Any) -> str:
    if isinstance(objects, list) and objects and all(isinstance(o, dict) for o in objects):
        return "\n".join(f"{o.get('label', 'object')} {o.get('bbox')}" for o in objects)
    return str(objects)


def _multiple_choice(record: dict, family: str) -> str:
    choices, gt = _need(record, "gt_choices", family), record.get("gt_choice")
    if not isinstance(choices, list) or not isinstance(gt, int) or isinstance(gt, bool) \
            or not 0 <= gt < min(len(choices), len(_LETTERS)):
        raise JudgeError(f"record {_rid(record)}: field 'gt_choice': expected an index into 'gt_choices' "
                         f"({choices!r}), got {gt!r}")
    labels = record.get("verbal_labels")  # instruction following: the options' relabelled names
    if isinstance(labels, list) and len(labels) > gt:
        return f"({labels[gt]}) {choices[gt]}"
    return f"({_LETTERS[gt]}) {choices[gt]}"


def reference_text(record: dict, family: str) -> str:
    """The ground truth of a benchmark record as text for the judge, per metric family.

    multiple_choice: the correct option with its letter, ``"(B) blue"`` (instruction_following: with its
    verbalised label, ``"(II) blue"``);
    classification: the label; facial_smile / facial_hair: the attribute in words; caption: the reference
    sentences, one per line; counting: the number; ocr: the words; detection / detection3d / grounding3d:
    ``label [box]`` lines; any other family (``generic``): the record's ``gt_answer``, ``gt_answers``,
    ``answer`` or ``gt`` field. Raises :class:`JudgeError` naming the record and the field when missing.

    >>> reference_text({"id": 1, "gt_choice": 1, "gt_choices": ["red", "blue"]}, "multiple_choice")
    '(B) blue'
    """
    if not isinstance(record, dict):
        raise JudgeError(f"a benchmark record must be a JSON object, got {type(record).__name__}")
    if family in ("multiple_choice", "instruction_following"):
        return _multiple_choice(record, family)
    if family == "classification":
        return _as_lines(_need(record, "label", family))
    if family == "facial_smile":
        attr = str(_need(record, "attr", family)).strip()
        return "the person is smiling" if attr in ("1", "True", "true", "yes") else "the person is not smiling"
    if family == "facial_hair":
        return str(_need(record, "attr", family)).replace("_", " ").lower()
    if family == "caption":
        return _as_lines(_need(record, "sentences", family))
    if family == "counting":
        return str(_need(record, "num", family))
    if family == "ocr":
        words = _need(record, "word_list", family)
        return " ".join(str(w) for w in words) if isinstance(words, list) else str(words)
    if family in ("detection", "detection3d", "grounding3d"):
        return _boxes(_need(record, "object", family))
    for f in _GENERIC_FIELDS:
        if record.get(f) not in (None, "", []):
            return _as_lines(record[f])
    raise JudgeError(f"record {_rid(record)}: field {'|'.join(_GENERIC_FIELDS)!r}: missing; the {family!r} "
                     "family has no text ground truth the judge can use, so add a reference answer field "
                     "(gt_answer) to the records")


def answer_text(answer: Any) -> str:
    """A model's answer as text: a multi-question record's ``{part: text}`` becomes ``part: text`` lines."""
    if isinstance(answer, dict):
        return "\n".join(f"{k}: {v}" for k, v in answer.items())
    return "" if answer is None else str(answer)
