"""Instruction-following desideratum: each verbaliser's rebuilt question by hand, the label parser (a
table and a seeded fuzz), the metric by hand, errors, choice consistency, ppl scoring the new labels,
and a run of ``synth_vqa_verbalized`` with a constant dummy answer."""

from __future__ import annotations

import json
import random
import string
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_synth_layout

from lamm.bench.desiderata.instruction_following import (
    VERBALIZERS,
    choice_consistency,
    consistency_between_runs,
    run_choices,
    verbalize_scenario,
)
from lamm.bench.inferencers import make_inferencer
from lamm.bench.instructions import resolve_instruction
from lamm.bench.metrics import METRICS, RecordError
from lamm.bench.metrics.instruction_following import parse_label
from lamm.bench.options import split_options
from lamm.bench.recipe import ScenarioConfig, load_recipe, recipe_hash
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import ScenarioError, load_scenario
from lamm.infer.engine import load_engine

Q = "Question: What color is the cube? Options: (A) red (B) blue (C) green (D) yellow"
OPTS = ["red", "blue", "green", "yellow"]


def _write(root: Path, records: list[dict], name: str = "mc.json") -> str:
    root.mkdir(parents=True, exist_ok=True)
    for r in records:
        (root / r["image"]).write_bytes(b"")  # never opened: questions only
    (root / name).write_text(json.dumps(records), encoding="utf-8")
    return name


def _mc(i: int, query: str = Q, gt: int = 2, choices: list[str] | None = None) -> dict:
    return {"id": f"q{i}", "image": f"{i}.png", "query": query, "gt_choice": gt, "gt_choices": choices or OPTS}


def _load(root: Path, file: str, verbalizer: str | None, metric: str = "multiple_choice"):
    return load_scenario(ScenarioConfig(name="generic", file=file, metric=metric, verbalizer=verbalizer), root)


EXPECTED = {
    "letters": ("(A) red (B) blue (C) green (D) yellow", "A, B, C or D", "C"),
    "numbers": ("(1) red (2) blue (3) green (4) yellow", "1, 2, 3 or 4", "3"),
    "roman": ("(I) red (II) blue (III) green (IV) yellow", "I, II, III or IV", "III"),
    "words": ("(one) red (two) blue (three) green (four) yellow", "one, two, three or four", "three"),
    "symbols": ("(@) red (#) blue ($) green (%) yellow", "@, #, $ or %", "$"),
    "shifted_letters": ("(E) red (F) blue (G) green (H) yellow", "E, F, G or H", "G"),
}


@pytest.mark.parametrize("name", sorted(VERBALIZERS))
def test_each_verbalizer_rebuilds_the_question(tmp_path, name):
    options, choices, gold = EXPECTED[name]
    sc = _load(tmp_path, _write(tmp_path, [_mc(0)]), name)
    assert sc.metric == "instruction_following"
    [s] = sc.samples()
    assert s.question == (f"Question: What color is the cube? Options: {options}\n"
                          f"Answer with the label of the correct option, one of {choices}.")
    assert s.answer == f"The answer is ({gold})."
    assert s.labels == list(VERBALIZERS[name][:4]) and s.options == OPTS and s.id == "q0"
    rec = sc.records[0]
    assert rec["verbal_labels"] == list(VERBALIZERS[name][:4]) and rec["verbalizer"] == name
    assert "verbal_labels" not in _load(tmp_path, "mc.json", None).records[0], "the original records are untouched"


def test_options_tail_variants(tmp_path):
    recs = [
        _mc(0, "What color is the cube?"),  # no tail: options appended
        _mc(1, "Context: magnets. Question: Will they attract or repel? Options: (A) attract (B) repel",
            gt=1, choices=["attract", "repel"]),  # ScienceQA
        _mc(2, "Which one? Choices:\n(A) red\n(B) blue\n(C) green\n(D) yellow"),
        _mc(3, "Is (A) mentioned? (A) red (B) blue (C) green (D) yellow"),  # first (A) not followed by (B)…(D)
    ]
    qs = [s.question.split("\n")[0] for s in _load(tmp_path, _write(tmp_path, recs), "numbers").samples()]
    assert qs == ["What color is the cube? Options: (1) red (2) blue (3) green (4) yellow",
                  "Context: magnets. Question: Will they attract or repel? Options: (1) attract (2) repel",
                  "Which one? Options: (1) red (2) blue (3) green (4) yellow",
                  "Is (A) mentioned? Options: (1) red (2) blue (3) green (4) yellow"]
    assert split_options("(A) x (B) y", ["x", "y"]) == ("", "(A) x (B) y")
    assert split_options("Pick one of these choices (A) x (B) y", ["x", "y"]) == ("Pick one of these choices",
                                                                                 " (A) x (B) y")
    assert split_options("  No options here  ", ["x", "y"]) == ("  No options here  ", "")
    # options disagreeing with the query's tail: the tail is still replaced (gt_choices are the truth)
    assert split_options("Q? (A) u (B) v", ["x", "y"]) == ("Q?", " (A) u (B) v")


def test_verbalize_errors(tmp_path):
    f = _write(tmp_path, [_mc(0)])
    with pytest.raises(ScenarioError, match=r"unknown verbaliser 'roman_numerals'.*letters, numbers, roman.*did you mean"):
        _load(tmp_path, f, "roman_numerals")
    cls = _write(tmp_path, [{"id": "c0", "image": "0.png", "query": "What is it?", "label": "cat"}], "cls.json")
    with pytest.raises(ScenarioError, match=r"scenario 'generic:cls.json' \(metric family 'classification'\).*"
                                            r"scenario\.verbalizer"):
        _load(tmp_path, cls, "numbers", metric="classification")
    nine = _write(tmp_path, [_mc(0, "Q?", 0, list("abcdefghi"))], "nine.json")
    with pytest.raises(ScenarioError, match=r"nine\.json: record 0 \(id 'q0'\): field 'gt_choices': 9 options.*"
                                            r"'symbols' has only 8"):
        _load(tmp_path, nine, "symbols")
    assert len(_load(tmp_path, nine, "numbers").samples()[0].labels) == 9
    bad = _write(tmp_path, [_mc(0), _mc(1, gt=7)], "bad.json")
    with pytest.raises(ScenarioError, match=r"bad\.json: record 1 \(id 'q1'\): field 'gt_choice'"):
        _load(tmp_path, bad, "numbers")
    with pytest.raises(ScenarioError, match="record-based"):
        verbalize_scenario(type("S", (), {"name": "x", "metric": "multiple_choice"})(), "numbers")


# --- the label parser ------------------------------------------------------------------------------

NUM, ROM, WORDS, SYM, LET, SHIFT = (list(VERBALIZERS[k][:4]) for k in
                                    ("numbers", "roman", "words", "symbols", "letters", "shifted_letters"))

PARSE_TABLE = [
    ("(2)", NUM, 1), ("2.", NUM, 1), ("2", NUM, 1), ("The answer is (3) green", NUM, 2),
    ("The answer is 4.", NUM, 3), ("answer: 1", NUM, 0), ("I choose option 3 because", NUM, 2),
    ("**2**", NUM, 1), ("2nd", NUM, None), ("There are 3 cubes", NUM, None), ("The answer is (B)", NUM, None),
    ("(5)", NUM, None), ("The answer is 12", NUM, None),
    ("The answer is II", ROM, 1), ("II", ROM, 1), ("III) green", ROM, 2), ("(iv)", ROM, 3),
    ("I think it is green.", ROM, None), ("It is II.", ROM, None), ("The answer is I.", ROM, 0),
    ("I think the answer is (II).", ROM, 1), ("ii", ROM, None), ("Option IV", ROM, 3),
    ("answer: two", WORDS, 1), ("Two.", WORDS, 1), ("The answer is THREE", WORDS, 2), ("(four)", WORDS, 3),
    ("Someone said so", WORDS, None), ("one", WORDS, 0),
    ("@", SYM, 0), ("The answer is #", SYM, 1), ("I pick $.", SYM, 2), ("(%) yellow", SYM, 3),
    ("@ or #", SYM, None), ("It costs $5", SYM, None),
    ("The answer is (C).", LET, 2), ("B", LET, 1), ("A cat.", LET, None), ("ANSWER: D", LET, 3), ("(b)", LET, 1),
    ("The answer is a cat", LET, None), ("**Answer:** B", LET, 1), ("**Answer:** 2", NUM, 1),
    ("`Answer:` III", ROM, 2),
    ("The answer is (F) blue", SHIFT, 1), ("H.", SHIFT, 3), ("The answer is (A)", SHIFT, None),
    ("Answer with the label of the correct option, one of 1, 2, 3 or 4.", NUM, None),
    ("", NUM, None), ("   ", ROM, None),
]


@pytest.mark.parametrize(("text", "labels", "expected"), PARSE_TABLE)
def test_parse_label_table(text, labels, expected):
    assert parse_label(text, labels) == expected


def test_parse_label_non_text_inputs():
    for bad in (None, 3, ["2"], {"a": 1}, b"(2)"):
        assert parse_label(bad, NUM) is None
    assert parse_label("(2)", []) is None and parse_label("(2)", None) is None


def test_parse_label_fuzz():
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + " ()[]*.:,@#$%&+=~\n'\"" + "éü—“”"
    words = ["the", "answer", "is", "option", "I", "II", "one", "two", "(", ")", "@", "B", "2", ":", "label"]
    schemes = [list(v[:rng.randint(2, 6)]) for v in VERBALIZERS.values() for _ in range(3)]
    for _ in range(3000):
        labels = rng.choice(schemes)
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        else:
            text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        got = parse_label(text, labels)
        assert got is None or 0 <= got < len(labels), (text, labels, got)
    # a label stated as an answer is always read back, whatever prose surrounds it
    prose = ["we", "see", "a", "green", "cube", "so", "thus", "clearly", "it", "looks", "right"]
    for _ in range(1000):
        labels = rng.choice(schemes)
        k = rng.randrange(len(labels))
        form = rng.choice(["The answer is ({})", "The answer is {}.", "ANSWER: {}", "answer is option {}"])
        text = " ".join(rng.choice(prose) for _ in range(rng.randint(0, 6))) + " " + form.format(labels[k])
        assert parse_label(text, labels) == k, (text, labels)


# --- the metric -------------------------------------------------------------------------------------

def _rec(gt: int, labels: list[str], n: int = 4) -> dict:
    return {"id": f"r{gt}", "gt_choice": gt, "gt_choices": OPTS[:n], "verbal_labels": labels[:n]}


def test_metric_by_hand():
    fam = METRICS.get("instruction_following")
    recs = [_rec(0, NUM), _rec(1, NUM), _rec(2, ROM), _rec(3, SYM), _rec(0, WORDS)]
    answers = ["The answer is (1)", "The answer is (3)", "III", "The answer is (D)", 42]
    r = fam.evaluate(answers, recs, ci=True, seed=0, n_boot=200)
    assert r.headline == "match_rate" and r.n == 5 and r.unparsed == 2
    assert r.metrics == {"match_rate": pytest.approx(40.0), "label_rate": pytest.approx(60.0), "unparsed": 2.0}
    assert [p["parsed"] for p in r.per_sample] == [0, 2, 2, None, None]
    assert "match_rate" in r.ci
    assert fam.parse("(2)", {"verbal_labels": "12"}) is None and fam.parse("(2)", None) is None


def test_metric_record_errors():
    fam = METRICS.get("instruction_following")
    with pytest.raises(RecordError, match=r"field 'verbal_labels': missing.*scenario\.verbalizer"):
        fam.evaluate(["(1)"], [{"gt_choice": 0, "gt_choices": ["a", "b"]}])
    for labels in (["1"], ["1", "1"], ["1", "two words"], "12"):
        with pytest.raises(RecordError, match="verbal_labels"):
            fam.evaluate(["(1)"], [{"gt_choice": 0, "gt_choices": ["a", "b"], "verbal_labels": labels}])
    with pytest.raises(RecordError, match="gt_choice"):
        fam.evaluate(["(1)"], [{"gt_choice": 2, "gt_choices": ["a", "b"], "verbal_labels": ["1", "2"]}])


def test_choice_consistency_by_hand(tmp_path):
    orig = {"a": 0, "b": 1, "c": 2, "d": None, "e": 3}
    verb = {"a": 0, "b": 2, "c": 2, "d": 1, "f": 0}
    assert choice_consistency(orig, verb) == {"consistency": pytest.approx(200 / 3), "n": 3, "n_common": 4,
                                              "n_unparsed": 1}
    assert choice_consistency(verb, orig)["consistency"] == pytest.approx(200 / 3)
    empty = choice_consistency({"a": None}, {"a": 1})
    assert empty["n"] == 0 and empty["consistency"] != empty["consistency"]  # NaN
    for name, rows in (("o", [{"id": "a", "parsed": 1}, {"id": "b", "parsed": None}]),
                       ("v", [{"id": "a", "parsed": 1}, {"id": "b", "parsed": 0}])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run_choices(tmp_path / "o") == {"a": 1, "b": None}
    assert consistency_between_runs(tmp_path / "o", tmp_path / "v") == {"consistency": 100.0, "n": 1,
                                                                         "n_common": 2, "n_unparsed": 1}
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "a", "parsed": [0.1, 0.2]}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl: line 1 \(id 'a'\): field 'parsed'"):
        run_choices(tmp_path / "bad.jsonl")
    # a model answer holding U+2028 / U+0085 (left raw by json.dumps(ensure_ascii=False)) is one line
    rows = [{"id": "a", "answer": "B\u2028because", "parsed": 1}, {"id": "b", "answer": "A\x85", "parsed": 0}]
    (tmp_path / "sep.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                        encoding="utf-8")
    assert run_choices(tmp_path / "sep.jsonl") == {"a": 1, "b": 0}


# --- inference and runs -----------------------------------------------------------------------------

class _Recording:
    """Wraps an engine and keeps every log-likelihood request."""

    def __init__(self, engine):
        self.engine, self.requests = engine, []
        self.supports_loglikelihood, self.spec = True, "dummy"

    def loglikelihood(self, requests, progress=None):
        self.requests.extend(requests)
        return self.engine.loglikelihood(requests)


def test_ppl_scores_the_new_labels(tmp_path):
    [s] = _load(tmp_path, _write(tmp_path, [_mc(0)]), "numbers").samples()
    rec = _Recording(load_engine("dummy"))
    ins = resolve_instruction("instruction_following")
    [res] = make_inferencer("ppl", rec, ins).infer([s])
    assert [r.context + r.continuation for r in rec.requests] == [
        "The answer is (1) red", "The answer is (2) blue", "The answer is (3) green", "The answer is (4) yellow"]
    assert {r.context for r in rec.requests} == {"The answer is ("}  # the head is read, not scored
    assert "(2) blue" in rec.requests[0].conversation.messages[-1].content
    k = res.extra["choice"]
    assert res.answer == f"The answer is ({k + 1}) {OPTS[k]}"
    assert METRICS.get("instruction_following").parse(res.answer, s.references) == k
    # {options} in a prompt is rendered under the sample's labels too
    custom = resolve_instruction("instruction_following", "{question} [{options}]", "answer_is_letter")
    rec2 = _Recording(load_engine("dummy"))
    make_inferencer("ppl", rec2, custom).infer([s])
    assert rec2.requests[0].conversation.messages[-1].content.endswith("[(1) red (2) blue (3) green (4) yellow]")
    assert rec2.requests[1].context + rec2.requests[1].continuation == "The answer is (2)"
    with pytest.raises(ValueError, match=r"relabelled options.*letter_option"):
        make_inferencer("ppl", load_engine("dummy"), resolve_instruction("instruction_following", "default",
                                                                         "answer_is")).infer([s])


def test_instructions_with_labels():
    ins = resolve_instruction("multiple_choice", "options", "letter_option")
    assert "(I) a (II) b" in ins.format_question("Q?", ["a", "b"], ["I", "II"])
    assert ins.format_answer("b", 1, ["I", "II"]) == "The answer is (II) b"
    assert ins.format_answer("b", 1) == "The answer is (B) b"
    with pytest.raises(ValueError, match="no label"):
        ins.format_answer("c", 2, ["I", "II"])


def test_run_synth_vqa_verbalized_constant_answer(tmp_path):
    root = make_synth_layout(tmp_path / "synth", n_train=3, n_test=7)
    out = tmp_path / "run"
    r = run_recipe("synth_vqa_verbalized", "dummy:constant=The answer is (2)", out_dir=out, root=root,
                   show_progress=False).results
    recs = json.loads((root / "benchmark" / "test" / "VQA_Synth.json").read_text())
    expected = 100.0 * sum(rec["gt_choice"] == 1 for rec in recs) / len(recs)
    assert r["family"] == "instruction_following" and r["headline"] == "match_rate"
    assert r["score"] == pytest.approx(expected) and r["metrics"]["label_rate"] == 100.0
    assert r["metrics"]["unparsed"] == 0.0 and r["n"] == 7
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert all(row["parsed"] == 1 for row in rows)
    assert all("(1) red (2) blue (3) green" in row["question"] for row in rows)
    assert "label of the correct option" in rows[0]["prompt"]
    # the letters run of the same questions vs this one: consistency over the parsed samples
    run_recipe("synth_vqa", "dummy:constant=The answer is (B)", out_dir=tmp_path / "orig", root=root,
               show_progress=False)
    assert consistency_between_runs(tmp_path / "orig", out)["consistency"] == 100.0
    # the verbaliser and its texts are in the recipe hash
    assert recipe_hash(load_recipe("synth_vqa_verbalized")) != recipe_hash(
        load_recipe("synth_vqa_verbalized", ["scenario.verbalizer=roman"]))


def test_icl_examples_answer_with_the_new_labels(tmp_path):
    root = make_synth_layout(tmp_path / "synth", n_train=3, n_test=2)
    recipe = load_recipe("synth_vqa_verbalized", ["instruction.icl.retriever=random", "instruction.icl.k=1",
                                                  "instruction.icl.pool=train"])
    run_recipe(recipe, "dummy:constant=The answer is (1)", out_dir=tmp_path / "run", root=root, show_progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    for row in rows:
        assert row["prompt"].count("one of 1, 2 or 3") == 2
        assert any(f"The answer is ({k})." in row["prompt"] for k in (1, 2, 3))


@pytest.mark.parametrize("name", ["lamm.bench.desiderata.instruction_following",
                                  "lamm.bench.metrics.instruction_following"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
