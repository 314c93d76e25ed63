"""Instructions as data: prompt pools per task, answer templates, CoT and multi-turn texts.

A *prompt* wraps a sample's question; it is a format string with ``{question}`` and optionally
``{options}`` (the options as ``(A) cat (B) dog``) and ``{labels}`` (the options joined by commas). An
*answer template* is what a likelihood inferencer scores for each option: a format string with
``{option}`` (the option's text) and/or ``{letter}`` (its letter, A, B, ...). A sample whose options carry
other labels (``Sample.labels``: a verbalised question, instruction following) renders ``{options}`` and
``{letter}`` with those labels instead. Templates are parsed when they are resolved (before any model
loads): a field other than those is an error, so a literal brace must be written doubled — ``{{`` and
``}}`` ('Reply as JSON like {{"count": 3}}. {question}'). The sample's question itself is a value, not
a template: braces in it (LSP's ``{}`` joint placeholder, JSON) are shown as they are.

Pools are keyed by metric family (``lamm.bench.metrics``); every family has a ``default`` prompt
(``"{question}"``: the benchmark's own query, as LAMM asks it) plus ChEF-style variants. A recipe names
a prompt by id or gives its own text; :func:`resolve_instruction` turns either into the texts that the
inferencers use and that the recipe hash covers, so editing any text here invalidates cached answers.
"""

from __future__ import annotations

import difflib
import string
from dataclasses import asdict, dataclass
from typing import Any

COMMON_PROMPTS: dict[str, str] = {
    "default": "{question}",
    # ChEF's "{question}The answer is" pool entry: primes a short answer from models without a system turn
    "answer_is": "{question} The answer is",
}

PROMPTS: dict[str, dict[str, str]] = {
    "classification": {
        "concise": "{question} Answer with the name of the category only.",
        "choose": "{question} Choose one of: {labels}.",
    },
    "facial_smile": {
        "yes_no": "{question} Answer yes or no.",
    },
    "facial_hair": {
        "choose": "{question} Choose one of: {labels}.",
    },
    "multiple_choice": {
        "letter": "{question}\nAnswer with the letter of the correct option, as \"The answer is (X)\".",
        "options": "{question}\nOptions: {options}\nAnswer with the letter of the correct option.",
    },
    "detection": {
        "boxes": "{question} Give each object as its category followed by its box [x1, y1, x2, y2], "
        "with coordinates between 0 and 1 relative to the image size.",
    },
    "caption": {
        "brief": "{question} Answer with one short sentence.",
        "describe": "Describe the image in one sentence.",
    },
    "counting": {
        "number": "{question} Answer with a number.",
    },
    "ocr": {
        "quoted": "{question} Put each word you read in double quotes.",
    },
    "keypoints": {
        "point": "{question} Answer with the point [x, y], coordinates between 0 and 1 relative to the image size.",
    },
    "locating": {
        "point": "{question} Answer with points [x, y], coordinates between 0 and 1 relative to the image size.",
    },
    "detection3d": {
        "boxes": "{question} Give each object as its category followed by its box [cx, cy, cz, lx, ly, lz] in metres.",
    },
    "grounding3d": {
        "box": "{question} Answer with the box [cx, cy, cz, lx, ly, lz] in metres.",
    },
}

ANSWER_TEMPLATES: dict[str, str] = {
    "plain": "{option}",
    "answer_is": "The answer is {option}",
    "answer_is_letter": "The answer is ({letter})",
    "letter_option": "The answer is ({letter}) {option}",
}

#: the answer template a family's ``default`` resolves to (likelihood scoring)
DEFAULT_ANSWER_TEMPLATE: dict[str, str] = {
    "multiple_choice": "letter_option",
    # verbalised multiple choice: "{letter}" is the option's new label ("The answer is (2) repel")
    "instruction_following": "letter_option",
    "facial_smile": "plain",
}

#: chain of thought: appended to the question in turn 1; turn 2 asks for the answer
COT_TRIGGER = "Let's think step by step."
COT_ANSWER = "Therefore, what is the final answer? Answer briefly."

#: multi-turn detection: turn 1 asks for the classes, turn 2 for the boxes of the classes named
MULTITURN: dict[str, tuple[str, str]] = {
    "detection": (
        "Which categories of objects are in the image? List the category names only.",
        ("Give the bounding box of every object of those categories, each as its category followed by "
         "[x1, y1, x2, y2] with coordinates between 0 and 1 relative to the image size."),
    ),
    "detection3d": (
        "Which categories of objects are in the point cloud? List the category names only.",
        ("Give the 3D bounding box of every object of those categories, each as its category followed by "
         "[cx, cy, cz, lx, ly, lz] in metres."),
    ),
}

LETTERS = string.ascii_uppercase

#: the fields each kind of template may use
PROMPT_FIELDS = ("question", "options", "labels")
ANSWER_FIELDS = ("option", "letter")


def option_label(index: int, labels: list[str] | None = None) -> str:
    """The label of option ``index``: ``labels[index]``, or its letter when ``labels`` is ``None``."""
    if labels is None:
        return LETTERS[index]
    if not 0 <= index < len(labels):
        raise ValueError(f"option {index} has no label: the sample gives {len(labels)} labels ({labels!r})")
    return labels[index]


def prompt_pool(family: str) -> dict[str, str]:
    """Every prompt id → text available for ``family`` (the common ones included)."""
    return {**COMMON_PROMPTS, **PROMPTS.get(family, {})}


def template_fields(text: str) -> list[str]:
    """The replacement fields of a format string, in order (``""`` for a positional ``{}``); a malformed
    string (a lone ``{`` or ``}``) raises ``ValueError``.

    >>> template_fields('Reply like {{"n": 3}}. {question} {options!s}')
    ['question', 'options']
    """
    return [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]


def check_template(text: str, allowed: tuple[str, ...], key: str) -> list[str]:
    """The fields of ``text`` (see :func:`template_fields`); a :class:`ConfigError` naming ``key`` (e.g.
    ``instruction.prompt``) when it is malformed or uses a field outside ``allowed``."""
    from lamm.config import ConfigError

    hint = "write a literal brace as {{ or }}"
    try:
        fields = template_fields(text)
    except ValueError as e:
        raise ConfigError(f"{key} {text!r} is not a valid template ({e}); {hint}") from None
    unknown = [f for f in fields if f not in allowed]
    if unknown:
        shown = ", ".join("{" + f + "}" for f in dict.fromkeys(unknown))
        raise ConfigError(f"{key} {text!r} uses {shown}, which is not a field it can fill (fields: "
                          f"{', '.join('{' + a + '}' for a in allowed)}); {hint}")
    return fields


def _resolve(value: str, pool: dict[str, str], needle: tuple[str, ...], allowed: tuple[str, ...], key: str,
             family: str) -> tuple[str, str]:
    """(id, text): a pool id, or literal text that uses one of the ``needle`` fields (id ``"custom"``);
    either is checked against the ``allowed`` fields (errors name ``key``)."""
    if value in pool:
        check_template(pool[value], allowed, key)
        return value, pool[value]
    fields = check_template(value, allowed, key) if "{" in value or "}" in value else []
    if any(n in fields for n in needle):
        return "custom", value
    close = difflib.get_close_matches(value, list(pool), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    names = " or ".join("{" + n + "}" for n in needle)
    raise ValueError(f"{key} {value!r} is neither an id for task {family!r} ({', '.join(sorted(pool))}) "
                     f"nor a text containing {names}{hint}")


@dataclass(frozen=True)
class ResolvedInstruction:
    """Every text an inferencer puts in front of a model (the recipe hash covers all of them)."""

    family: str
    prompt_id: str
    prompt: str
    answer_template_id: str
    answer_template: str
    system: str | None
    cot_trigger: str = COT_TRIGGER
    cot_answer: str = COT_ANSWER
    multiturn: tuple[str, str] | None = None

    def format_question(self, question: str, options: list[str] | None = None,
                        labels: list[str] | None = None) -> str:
        """The prompt applied to one question; ``{options}``/``{labels}`` need the sample's options.

        ``labels``: each option's label in ``{options}`` (``None``: the letters A, B, ...).
        """
        needs = [k for k in ("options", "labels") if k in template_fields(self.prompt)]
        if needs and not options:
            raise ValueError(f"prompt {self.prompt_id!r} uses {{{needs[0]}}} but the sample has no options")
        opts = options or []
        return self.prompt.format(
            question=question,
            options=" ".join(f"({option_label(i, labels)}) {o}" for i, o in enumerate(opts)),
            labels=", ".join(opts),
        ).strip()

    def answer_head(self) -> str:
        """The answer template's constant head: its text before the first field, the same for every option
        (``"The answer is ("`` of ``"The answer is ({letter}) {option}"``; ``""`` when it starts with a
        field). Likelihood scoring conditions on it and scores the rest.

        >>> resolve_instruction("multiple_choice").answer_head()
        'The answer is ('
        """
        for literal, field_name, _, _ in string.Formatter().parse(self.answer_template):
            return literal if field_name is not None else ""
        return ""

    def format_answer(self, option: str, index: int, labels: list[str] | None = None) -> str:
        """The answer template for option ``index`` (text ``option``); ``{letter}`` is ``labels[index]``
        when labels are given (a verbalised question), else the letter."""
        return self.answer_template.format(option=option, letter=option_label(index, labels))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["multiturn"] = list(self.multiturn) if self.multiturn else None
        return d


def resolve_instruction(family: str, prompt: str = "default", answer_template: str = "default",
                        system: str | None = None) -> ResolvedInstruction:
    """Resolve prompt and answer-template ids (or literal texts) for a metric family.

    Every text is parsed here: a field a template cannot fill, or a lone brace, raises
    ``lamm.config.ConfigError`` naming ``instruction.prompt`` / ``instruction.answer_template``.

    >>> r = resolve_instruction("counting", "number")
    >>> r.format_question("How many cats?")
    'How many cats? Answer with a number.'
    >>> resolve_instruction("multiple_choice").format_answer("repel", 1)
    'The answer is (B) repel'
    """
    pid, ptext = _resolve(prompt, prompt_pool(family), ("question",), PROMPT_FIELDS, "instruction.prompt",
                          family)
    if answer_template == "default":
        answer_template = DEFAULT_ANSWER_TEMPLATE.get(family, "answer_is")
    aid, atext = _resolve(answer_template, ANSWER_TEMPLATES, ANSWER_FIELDS, ANSWER_FIELDS,
                          "instruction.answer_template", family)
    # module globals read at call time, so an edited text reaches both the inferencer and the recipe hash
    return ResolvedInstruction(family, pid, ptext, aid, atext, system, cot_trigger=COT_TRIGGER,
                               cot_answer=COT_ANSWER, multiturn=MULTITURN.get(family))
