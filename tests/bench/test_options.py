"""The one options splitter (``lamm.bench.options``): the tails LAMM queries carry, which run wins when
there are several, and a seeded fuzz (stem + tail is the text; never raises)."""

from __future__ import annotations

import doctest
import random

import pytest

from lamm.bench import options
from lamm.bench.options import options_tail_start, split_options

OPTS = ["red", "blue", "green", "yellow"]


@pytest.mark.parametrize("text, opts, stem", [
    ("Question: What colour? Options: (A) red (B) blue (C) green (D) yellow", OPTS, "Question: What colour?"),
    ("Context: magnets. Question: Attract or repel? Options: (A) attract (B) repel", None,
     "Context: magnets. Question: Attract or repel?"),
    ("Which one? Choices:\n(A) red\n(B) blue\n(C) green\n(D) yellow", OPTS, "Which one?"),
    ("Which one? Answer choices: (A) red (B) blue", None, "Which one?"),
    ("Pick one of these choices (A) x (B) y", ["x", "y"], "Pick one of these choices"),  # no colon: words kept
    ("Is (A) mentioned? (A) red (B) blue (C) green (D) yellow", OPTS, "Is (A) mentioned?"),  # texts match
    ("Is (A) mentioned? Options: (A) u (B) v", None, "Is (A) mentioned?"),  # the labelled run wins
    ("Is (A) mentioned? (A) u (B) v", None, "Is"),  # nothing tells them apart: the earliest protects most
    ("Q? (A) u (B) v", ["x", "y"], "Q?"),  # other texts: still the tail (gt_choices are the truth)
    ("Q? Options: red, blue", None, "Q?"),  # unlabelled list after "Options:"
    ("Q? (A) red (B) blue", OPTS, "Q? (A) red (B) blue"),  # four options need (A)…(D)
    ("Which option: the cube or the ball?", None, "Which option: the cube or the ball?"),
    ("How many shapes?", None, "How many shapes?"),
])
def test_tails(text, opts, stem):
    got_stem, tail = split_options(text, opts)
    assert got_stem == stem and got_stem + tail == text
    assert (options_tail_start(text, opts) is None) == (tail == "")


def test_fuzz_never_raises_and_splits_exactly():
    rnd = random.Random(0)
    alphabet = "abAB() :：\n\tOptionsChoices？é"
    for _ in range(2000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))
        if rnd.random() < 0.3:
            text += rnd.choice([" Options: (A) x (B) y", "\n(A) x\n(B) y\n(C) z", " (A) (B) (C)"])
        opts = rnd.choice([None, [], ["x"], ["x", "y"], ["x", "y", "z"]])
        stem, tail = split_options(text, opts)
        assert stem + tail == text
        assert tail == "" or tail == text[len(stem):] and not stem[-1:].isspace()


def test_doctests():
    res = doctest.testmod(options)
    assert res.failed == 0 and res.attempted > 0
