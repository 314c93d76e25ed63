"""Instruction-following desideratum (ChEF): relabel the options of multiple-choice questions with a
*verbaliser* and tell the model to answer with the new label; the score is the match rate.

Verbalisers (:data:`VERBALIZERS`; option ``k`` gets label ``k`` of the list):

===================  ==============================================  ======
name                 labels                                          max
===================  ==============================================  ======
``letters``          A, B, C, … (the benchmark's own labels)          26
``numbers``          1, 2, 3, …                                       26
``roman``            I, II, III, IV, …                                26
``words``            one, two, three, … twenty (lower case)           20
``symbols``          @, #, $, %, &, +, =, ~                           8
``shifted_letters``  the letters shifted by 4: E, F, G, H, …          22
===================  ==============================================  ======

The symbols are single ASCII characters that tokenizers keep as tokens, that never occur in ordinary
prose, and that are not Markdown emphasis (``*``, ``_``) or brackets, so an answer such as ``**@**``
or ``(@)`` is read unambiguously. The shift of 4 makes the labels of a question with up to four options
(most of LAMM's) disjoint from the letters the model has seen in training (A–D → E–H).

Recipe (the family switches to ``instruction_following`` by itself)::

    scenario: {name: Synth-VQA, verbalizer: numbers}

:func:`verbalize_scenario` (called by ``lamm.bench.scenarios.load_scenario``) returns a copy of a
multiple-choice scenario whose records carry ``verbal_labels`` and ``verbalizer``, and whose samples ask
the question with the options tail re-rendered under the new labels, plus :data:`INSTRUCTION`. A LAMM
query embeds its options ("... Options: (A) attract (B) repel"): that tail (an ``(A)`` followed by
``(B)``, … up to the record's number of options, to the end of the query, with an ``Options:`` /
``Choices:`` label before it; ``lamm.bench.options.split_options``, the one options splitter, shared with
the text corruptions) is replaced by one rebuilt from ``gt_choices``; a query without such a tail gets
the options appended. The gold answer (shown for in-context examples) and the ``ppl`` answer template
use the new labels through ``Sample.labels``.

:func:`choice_consistency` compares which option a model chose under the letters and under a verbaliser.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.bench.options import split_options
from lamm.bench.scenarios.base import RecordScenario, Sample, Scenario, ScenarioError
from lamm.data.records import format_options
from lamm.fileio import jsonl_lines, read_text_utf8

_NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                 "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")


def roman(n: int) -> str:
    """``n`` (1–3999) as an upper-case Roman numeral.

    >>> [roman(k) for k in (1, 4, 9, 14, 26)]
    ['I', 'IV', 'IX', 'XIV', 'XXVI']
    """
    if not 1 <= n <= 3999:
        raise ValueError(f"roman numerals cover 1..3999, got {n}")
    out = []
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"), (50, "L"),
                       (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out.append(sym)
            n -= value
    return "".join(out)


#: shift of the ``shifted_letters`` verbaliser (A → E)
LETTER_SHIFT = 4

#: verbaliser name → labels, option 0 first (see the module docstring)
VERBALIZERS: dict[str, tuple[str, ...]] = {
    "letters": tuple(string.ascii_uppercase),
    "numbers": tuple(str(k) for k in range(1, 27)),
    "roman": tuple(roman(k) for k in range(1, 27)),
    "words": tuple(_NUMBER_WORDS),
    "symbols": ("@", "#", "$", "%", "&", "+", "=", "~"),
    "shifted_letters": tuple(string.ascii_uppercase[LETTER_SHIFT:]),
}

#: appended to every verbalised question; ``{choices}`` is "1, 2, 3 or 4". No "option: 1" in it, so a
#: model that echoes the instruction is not read as answering with the first label.
INSTRUCTION = "Answer with the label of the correct option, one of {choices}."
#: the gold answer of a verbalised sample (shown with in-context examples)
GOLD_ANSWER = "The answer is ({label})."


def verbalizer_labels(name: str) -> tuple[str, ...]:
    """The labels of verbaliser ``name``; an unknown name raises ``ScenarioError`` listing the known ones."""
    if name not in VERBALIZERS:
        import difflib

        close = difflib.get_close_matches(name, list(VERBALIZERS), n=2, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ScenarioError(f"scenario.verbalizer: unknown verbaliser {name!r}; known: "
                            f"{', '.join(VERBALIZERS)}{hint}")
    return VERBALIZERS[name]


def verbalizer_texts(name: str) -> dict[str, Any]:
    """Every text a verbaliser adds to the prompts (for the recipe hash, so editing one re-runs the model)."""
    labels = list(verbalizer_labels(name))
    return {"name": name, "labels": labels, "instruction": INSTRUCTION, "gold_answer": GOLD_ANSWER,
            # a rendered question covers the options format too
            "example": verbalized_question("{question} Options: (A) x (B) y", ["x", "y"], labels[:2])}


def join_choices(labels: list[str]) -> str:
    """``"1, 2, 3 or 4"`` (``"1 or 2"``; a single label as is)."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} or {labels[-1]}"


def verbalized_question(query: str, options: list[str], labels: list[str]) -> str:
    """The question of a verbalised sample: the stem, the options under ``labels``, :data:`INSTRUCTION`.

    >>> print(verbalized_question("Q? Options: (A) red (B) blue", ["red", "blue"], ["1", "2"]))
    Q? Options: (1) red (2) blue
    Answer with the label of the correct option, one of 1 or 2.
    """
    stem = split_options(query, options)[0].strip()
    tail = f"Options: {format_options(options, labels)}"
    head = f"{stem} {tail}" if stem else tail
    return f"{head}\n{INSTRUCTION.format(choices=join_choices(labels))}"


def _check_record(rec: dict[str, Any], i: int, source: str, name: str, n_labels: int) -> int:
    """The record's number of options; errors name the file, record and field."""
    where = f"{source}: record {i} (id {rec.get('id')!r})"
    choices, gt = rec.get("gt_choices"), rec.get("gt_choice")
    if not isinstance(choices, list) or len(choices) < 2:
        raise ScenarioError(f"{where}: field 'gt_choices': expected a list of at least 2 options, got {choices!r}; "
                            "scenario.verbalizer only applies to multiple-choice records")
    if isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < len(choices):
        raise ScenarioError(f"{where}: field 'gt_choice': expected an option index in 0..{len(choices) - 1}, "
                            f"got {gt!r}")
    if len(choices) > n_labels:
        raise ScenarioError(f"{where}: field 'gt_choices': {len(choices)} options, but verbaliser {name!r} has only "
                            f"{n_labels} labels; pick another scenario.verbalizer (e.g. numbers)")
    return len(choices)


def verbalize_scenario(scenario: Scenario, name: str) -> Scenario:
    """A copy of the multiple-choice ``scenario`` whose options are labelled by verbaliser ``name``.

    Records become copies with ``verbal_labels`` (list, one label per option) and ``verbalizer`` (the
    name) added; the copy's metric family is ``instruction_following``. Samples keep their id, media and
    options; their ``question`` is :func:`verbalized_question`, ``labels`` the new labels and ``answer``
    the gold answer under them. Raises ``ScenarioError`` for an unknown name, a scenario that is not
    multiple choice, or a record with malformed ``gt_choices``/``gt_choice`` or more options than labels.
    """
    all_labels = verbalizer_labels(name)
    if getattr(scenario, "metric", None) != "multiple_choice":
        raise ScenarioError(
            f"scenario {scenario.name!r} (metric family {getattr(scenario, 'metric', None)!r}) cannot be verbalised: "
            "scenario.verbalizer relabels the options of multiple-choice questions (records with gt_choices and "
            "gt_choice, e.g. ScienceQA, AI2D, ScanQA, Synth-VQA, Synth3D-VQA); remove scenario.verbalizer from "
            "the recipe or pick a multiple-choice scenario")
    if not isinstance(scenario, RecordScenario):
        raise ScenarioError(f"scenario {scenario.name!r}: scenario.verbalizer needs a record-based scenario, "
                            f"got {type(scenario).__name__}")
    records = []
    for i, rec in enumerate(scenario.records):
        k = _check_record(rec, i, scenario.source, name, len(all_labels))
        records.append({**rec, "verbal_labels": list(all_labels[:k]), "verbalizer": name})
    base_build = scenario.build

    def build(rec: dict[str, Any], i: int) -> list[Sample]:
        made = base_build(rec, i)
        labels = list(rec["verbal_labels"])
        options = [str(c) for c in rec["gt_choices"]]
        for s in made:
            s.question = verbalized_question(s.question, options, labels)
            s.options = options
            s.labels = labels
            s.answer = GOLD_ANSWER.format(label=labels[rec["gt_choice"]])
        return made

    return dataclasses.replace(scenario, records=records, build=build, metric="instruction_following")


def choice_consistency(original_choices: Mapping[str, int | None],
                       verbalized_choices: Mapping[str, int | None]) -> dict[str, Any]:
    """How often a model picks the same option under two labellings (ChEF's consistency).

    Both arguments map a sample id to the chosen option's 0-based index (``None``: unparsed). Samples
    are matched by id; ``consistency`` (percent) is the share of those parsed in both runs whose index is
    the same; ``n`` is that number of samples, ``n_common`` the ids present in both, ``n_unparsed`` the
    common ids unparsed in at least one run. NaN when ``n`` is 0.

    >>> choice_consistency({"a": 0, "b": 1, "c": 2, "d": None}, {"a": 0, "b": 2, "c": 2, "d": 1, "e": 0})
    {'consistency': 66.66666666666667, 'n': 3, 'n_common': 4, 'n_unparsed': 1}
    """
    common = [k for k in original_choices if k in verbalized_choices]
    both = [k for k in common if original_choices[k] is not None and verbalized_choices[k] is not None]
    same = sum(original_choices[k] == verbalized_choices[k] for k in both)
    return {"consistency": 100.0 * same / len(both) if both else math.nan, "n": len(both),
            "n_common": len(common), "n_unparsed": len(common) - len(both)}


def run_choices(run_dir: str | os.PathLike) -> dict[str, int | None]:
    """Sample id → parsed option index of a run's ``answers.jsonl`` (a multiple-choice, ppl or
    instruction-following run); a row whose ``parsed`` is not an index or null raises, naming the line."""
    path = Path(run_dir) / "answers.jsonl" if Path(run_dir).is_dir() else Path(run_dir)
    out: dict[str, int | None] = {}
    for n, line in jsonl_lines(read_text_utf8(path)):  # "\n" only: answers may hold U+2028
        if not line.strip():
            continue
        row = json.loads(line)
        p = row.get("parsed")
        if p is not None and (isinstance(p, bool) or not isinstance(p, int)):
            raise ValueError(f"{path}: line {n} (id {row.get('id')!r}): field 'parsed': expected an option index "
                             f"or null, got {p!r}; is this a multiple-choice run?")
        out[str(row["id"])] = p
    return out


def consistency_between_runs(original_run: str | os.PathLike, verbalized_run: str | os.PathLike) -> dict[str, Any]:
    """:func:`choice_consistency` of two run directories (e.g. ``synth_vqa`` and ``synth_vqa_verbalized``)."""
    return choice_consistency(run_choices(original_run), run_choices(verbalized_run))
