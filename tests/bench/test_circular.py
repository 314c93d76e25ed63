"""Circular evaluation (MMBench's CircularEval): rotated records and queries, the circular scores
(hand-computed), and runs through the runner and the CLI with the direct and ppl inferencers, the cache,
--limit, and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lamm.bench.circular import circular_chance, circular_scenario, rotate_record, rotation_id
from lamm.bench.metrics import METRICS, RecordError
from lamm.bench.metrics.circular import CircularFamily, circular_scores
from lamm.bench.metrics.intervals import bootstrap_ratio
from lamm.bench.options import reorder_options
from lamm.bench.recipe import Recipe, ScenarioConfig, load_recipe, recipe_hash
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import ScenarioError, load_scenario
from lamm.config import ConfigError
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.engine import LoglikelihoodResult

CHOICES = ["red", "blue", "green"]


# ----------------------------------------------------------------------------- options and records
def test_reorder_options_keeps_the_text_around_the_options():
    q = "Is (A) named here? Options:\n(A) red\n(B) blue\n(C) green"
    assert (
        reorder_options(q, CHOICES, [2, 0, 1]) == "Is (A) named here? Options:\n(A) green\n(B) red\n(C) blue"
    )
    assert reorder_options(q, CHOICES, [0, 1, 2]) == q
    with pytest.raises(ValueError, match="not labelled"):
        reorder_options("Q? Options: red, blue, green", CHOICES, [1, 2, 0])
    with pytest.raises(ValueError, match=r"more options than the record's 3"):
        reorder_options("Q? (A) red (B) blue (C) green (D) pink", CHOICES, [1, 2, 0])
    with pytest.raises(ValueError, match="not a permutation"):
        reorder_options("Q? (A) red (B) blue (C) green", CHOICES, [0, 0, 1])


def test_rotations_move_options_and_gold_together():
    rec = {
        "id": "q",
        "image": "a.png",
        "query": "Q? Options: (A) red (B) blue (C) green",
        "gt_choice": 1,
        "gt_choices": CHOICES,
    }
    rots = [rotate_record(rec, k, "q", 4, "f.json") for k in range(3)]
    assert [r["id"] for r in rots] == ["q", "q#c1", "q#c2"] == [rotation_id("q", k) for k in range(3)]
    assert rots[0]["query"] == rec["query"] and rots[0]["gt_choices"] == CHOICES and rots[0]["gt_choice"] == 1
    for r in rots:  # the gold option text never changes
        assert r["gt_choices"][r["gt_choice"]] == "blue"
        assert r["query"].endswith(" ".join(f"({'ABC'[j]}) {o}" for j, o in enumerate(r["gt_choices"])))
        assert (r["circular_of"], r["circular_n"], r["circular_index"]) == ("q", 3, 4)
    assert rots[1]["gt_choices"] == ["blue", "green", "red"] and rots[1]["gt_choice"] == 0
    assert rots[2]["gt_choices"] == ["green", "red", "blue"] and rots[2]["gt_choice"] == 2
    with pytest.raises(ScenarioError, match=r"f\.json: record 4 \(id 'q'\): field 'gt_choices'.*at least 2"):
        rotate_record({**rec, "gt_choices": ["red"], "gt_choice": 0}, 0, "q", 4, "f.json")
    with pytest.raises(ScenarioError, match="field 'gt_choice'"):
        rotate_record({**rec, "gt_choice": 3}, 0, "q", 4, "f.json")
    with pytest.raises(ScenarioError, match="field 'query': cannot show the options in another order"):
        rotate_record({**rec, "query": "Q? Options: red, blue, green"}, 1, "q", 4, "f.json")


def test_circular_chance_is_one_over_n_to_the_n():
    assert circular_chance([{"gt_choices": ["a", "b"]}]) == 25.0
    assert circular_chance([{"gt_choices": list("abc")}]) == pytest.approx(100 / 27)


# ----------------------------------------------------------------------------- scores by hand
def test_circular_scores_by_hand():
    # r1 (3 options): right, right, right -> circular right; r2 (3): right, wrong, right;
    # r3 (2): wrong at rotation 0, right at 1; r4 (2): right, right
    groups = ["r1"] * 3 + ["r2"] * 3 + ["r3"] * 2 + ["r4"] * 2
    rotations = [0, 1, 2, 0, 1, 2, 0, 1, 0, 1]
    correct = [True, True, True, True, False, True, False, True, True, True]
    s = circular_scores(groups, rotations, correct)
    assert s["metrics"] == {"circular_accuracy": 50.0, "accuracy": 75.0, "rotation_accuracy": 80.0}
    assert s["per_record"]["r2"] == {"rotations": 3, "correct": 2, "all_correct": False, "rotation0": True}
    assert s["per_record"]["r3"]["rotation0"] is False


def _rotated(records: list[dict]) -> list[dict]:
    return [
        rotate_record(r, k, r["id"], i, "f.json")
        for i, r in enumerate(records)
        for k in range(len(r["gt_choices"]))
    ]


def test_circular_family_over_multiple_choice_answers():
    base = [
        {"id": "a", "query": "A? (A) red (B) blue (C) green", "gt_choice": 0, "gt_choices": CHOICES},
        {"id": "b", "query": "B? (A) red (B) blue (C) green", "gt_choice": 2, "gt_choices": CHOICES},
        {"id": "c", "query": "C? (A) yes (B) no", "gt_choice": 1, "gt_choices": ["yes", "no"]},
    ]
    recs = _rotated(base)
    # a: answered by text, right in every rotation; b: always "(A)" -> right only where green is first
    # (rotation 2); c: rotation 0 right, rotation 1 unreadable
    answers = ["red", "It is red.", "The answer is red", "(A)", "(A)", "(A)", "The answer is (B)", "hmm"]
    fam = CircularFamily(METRICS.get("multiple_choice"))
    r = fam.evaluate(answers, recs, seed=0, n_boot=200)
    assert r.headline == "circular_accuracy" and r.n == 3 and r.unparsed == 1
    assert r.metrics["circular_accuracy"] == pytest.approx(100 / 3)
    assert r.metrics["accuracy"] == pytest.approx(200 / 3)  # a and c right at rotation 0
    assert r.metrics["rotation_accuracy"] == pytest.approx(500 / 8)
    assert r.metrics["unparsed"] == 1.0
    assert [row["circular"]["record_correct"] for row in r.per_sample] == [True] * 3 + [False] * 5
    assert [row["accuracy"] for row in r.per_sample] == [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    assert r.info["circular"]["rotations_correct"] == {"1/2": 1, "1/3": 1, "3/3": 1}
    # the interval resamples records (3 of them), not the 8 rotations
    assert r.ci["circular_accuracy"] == bootstrap_ratio([1, 0, 0], [1, 1, 1], n_boot=200, seed=0)
    assert r.ci["circular_accuracy"] != bootstrap_ratio([1, 1, 1, 0, 0, 0, 0, 0], [1] * 8, n_boot=200, seed=0)


def test_categories_count_records_not_rotations():
    """MMBench reports circular accuracy per ability: a category's entry counts its records (all rotations
    right), not its rotations."""
    base = [
        {"id": "a", "query": "A? (A) red (B) blue (C) green", "gt_choice": 0, "gt_choices": CHOICES,
         "category": "colour"},
        {"id": "b", "query": "B? (A) red (B) blue (C) green", "gt_choice": 2, "gt_choices": CHOICES,
         "category": "colour"},
        {"id": "c", "query": "C? (A) yes (B) no", "gt_choice": 1, "gt_choices": ["yes", "no"], "category": "logic"},
    ]
    answers = ["red", "It is red.", "The answer is red", "(A)", "(A)", "(A)", "The answer is (B)", "hmm"]
    r = CircularFamily(METRICS.get("multiple_choice")).evaluate(answers, _rotated(base), ci=False)
    assert r.info["categories"] == {
        "colour": {"circular_accuracy": 50.0, "questions": 2, "correct": 1, "unparsed": 0},
        "logic": {"circular_accuracy": 0.0, "questions": 1, "correct": 0, "unparsed": 1}}
    assert r.info["uncategorized"] == 0

def test_every_rotation_is_required():
    recs = _rotated([{"id": "a", "query": "A? (A) x (B) y", "gt_choice": 0, "gt_choices": ["x", "y"]}])
    fam = CircularFamily(METRICS.get("multiple_choice"))
    with pytest.raises(RecordError, match=r"lacks rotations \[1\]"):
        fam.evaluate(["(A)"], recs[:1], ci=False)
    with pytest.raises(RecordError, match="appears twice"):
        fam.evaluate(["(A)"] * 3, recs + recs[:1], ci=False)


# ----------------------------------------------------------------------------- runs
def _data(root: Path, n: int = 4) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    recs = []
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(root / f"{i}.png")
        recs.append(
            {
                "id": f"q{i}",
                "image": f"{i}.png",
                "query": f"Question {i}? Options: (A) red (B) blue (C) green",
                "gt_choice": i % 3,
                "gt_choices": CHOICES,
            }
        )
    (root / "mc.json").write_text(json.dumps(recs))
    return root


def _recipe(**scenario) -> Recipe:
    return Recipe(
        name="mc",
        scenario=ScenarioConfig(name="generic", file="mc.json", metric="multiple_choice", **scenario),
    )


class LetterA(DummyEngine):
    """Always answers (A); its log-likelihoods favour the answer "(A)"; a model with a position bias."""

    def _answer(self, req):
        return "The answer is (A)."

    def loglikelihood(self, requests, progress=None):
        return [
            LoglikelihoodResult(-1.0, -1.0, 1)
            if "(A)" in r.continuation
            else LoglikelihoodResult(-5.0, -5.0, 1)
            for r in requests
        ]


class LikesRed(DummyEngine):
    """Its log-likelihoods favour the option "red", wherever it is: no position bias."""

    def loglikelihood(self, requests, progress=None):
        return [
            LoglikelihoodResult(-1.0, -1.0, 1)
            if "red" in r.continuation
            else LoglikelihoodResult(-5.0, -5.0, 1)
            for r in requests
        ]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_direct_run_asks_every_rotation_and_reuses_the_cache(tmp_path):
    root = _data(tmp_path / "data")
    out = tmp_path / "run"
    res = run_recipe(_recipe(circular=True), LetterA(), out_dir=out, root=root, show_progress=False)
    r = res.results
    assert res.n_generated == 12 == r["n_questions"] and r["n"] == 4 and r["n_records"] == 4
    assert r["headline"] == "circular_accuracy" and r["score"] == 0.0
    assert r["metrics"]["accuracy"] == 50.0  # q0 and q3 have gold (A) in the original order
    assert r["metrics"]["circular_accuracy"] != r["metrics"]["accuracy"]
    assert r["chance"] == pytest.approx(100 / 27) and r["circular"]["chance_accuracy"] == pytest.approx(
        100 / 3
    )
    assert r["circular"]["records"] == 4 and r["circular"]["rotations"] == 12
    rows = _rows(out / "answers.jsonl")
    assert [row["id"] for row in rows] == [rotation_id(f"q{i}", k) for i in range(4) for k in range(3)]
    assert rows[1]["question"] == "Question 0? Options: (A) blue (B) green (C) red"
    assert rows[1]["circular"] == {"record": "q0", "rotation": 1, "record_correct": False}
    assert rows[3]["record_index"] == 1 and rows[3]["scores"] == {"accuracy": 0.0}  # q1: gold (B), said (A)
    assert rows[4]["scores"] == {"accuracy": 1.0}  # q1 rotation 1: blue is (A) now
    assert "circular evaluation (MMBench)" in (out / "report.md").read_text()
    # a rerun answers from the cache; a plain run of the same recipe shares rotation 0 (same ids, same hash)
    again = run_recipe(_recipe(circular=True), LetterA(), out_dir=out, root=root, show_progress=False)
    assert again.n_generated == 0 and again.results == r
    plain = run_recipe(_recipe(), LetterA(), out_dir=out, root=root, show_progress=False)
    assert plain.n_generated == 0 and plain.results["metrics"]["accuracy"] == r["metrics"]["accuracy"]
    assert recipe_hash(_recipe()) == recipe_hash(_recipe(circular=True))


def test_limit_picks_whole_records_as_a_plain_run_does(tmp_path):
    root = _data(tmp_path / "data", n=6)
    plain = run_recipe(_recipe(), LetterA(), out_dir=tmp_path / "p", root=root, limit=2, show_progress=False)
    circ = run_recipe(
        _recipe(circular=True), LetterA(), out_dir=tmp_path / "c", root=root, limit=2, show_progress=False
    )
    assert circ.results["n"] == 2 and circ.results["n_questions"] == 6 and circ.results["n_records"] == 6
    picked = {row["id"] for row in _rows(tmp_path / "p" / "answers.jsonl")}
    assert {row["circular"]["record"] for row in _rows(tmp_path / "c" / "answers.jsonl")} == picked
    assert plain.results["n"] == 2


def test_ppl_run_over_rotations(tmp_path):
    root = _data(tmp_path / "data")
    recipe = Recipe(
        name="mc_ppl",
        scenario=ScenarioConfig(name="generic", file="mc.json", metric="multiple_choice", circular=True),
        inferencer={"type": "ppl"},
    )
    biased = run_recipe(recipe, LetterA(), out_dir=tmp_path / "a", root=root, show_progress=False).results
    assert biased["n_questions"] == 12 and biased["metrics"]["accuracy"] == 50.0
    assert biased["metrics"]["circular_accuracy"] == 0.0
    assert biased["calibration"]["n"] == 12  # every rotation asked, each right or wrong on its own
    steady = run_recipe(recipe, LikesRed(), out_dir=tmp_path / "b", root=root, show_progress=False).results
    # "red" is the gold of q0 and q3 in every rotation: circular accuracy = accuracy for a steady model
    assert steady["metrics"]["circular_accuracy"] == steady["metrics"]["accuracy"] == 50.0
    assert steady["metrics"]["rotation_accuracy"] == 50.0


def test_refusals_before_any_model_loads(tmp_path):
    root = _data(tmp_path / "data")
    cls = Recipe(
        name="cls",
        scenario=ScenarioConfig(name="generic", file="mc.json", metric="classification", circular=True),
    )
    with pytest.raises(
        ConfigError, match="scenario.circular: scenario 'generic' is scored by the 'classification'"
    ):
        run_recipe(cls, "no-such-backend:x", out_dir=tmp_path / "x", root=root, show_progress=False)
    with pytest.raises(ConfigError, match="circular and scenario.verbalizer cannot be combined"):
        run_recipe(
            _recipe(circular=True, verbalizer="numbers"),
            "no-such-backend:x",
            out_dir=tmp_path / "y",
            root=root,
            show_progress=False,
        )
    with pytest.raises(ConfigError, match="multiple-choice"):
        run_recipe(
            load_recipe("fsc147", ["scenario.circular=true"]),
            "no-such-backend:x",
            out_dir=tmp_path / "z",
            root=root,
            show_progress=False,
        )


def test_scenario_errors_name_the_record(tmp_path):
    root = _data(tmp_path / "data", n=2)
    recs = json.loads((root / "mc.json").read_text())
    recs[1]["gt_choices"], recs[1]["gt_choice"] = ["red"], 0
    (root / "mc.json").write_text(json.dumps(recs))
    with pytest.raises(ScenarioError, match=r"mc\.json: record 1 \(id 'q1'\): field 'gt_choices'"):
        load_scenario(_recipe(circular=True).scenario, root)
    recs[1] = {**recs[0], "id": "q0#c1"}  # collides with rotation 1 of q0
    (root / "mc.json").write_text(json.dumps(recs))
    with pytest.raises(
        ScenarioError,
        match=r"record 1 \(id 'q0#c1'\): field 'id': 'q0#c1' is also the id circular "
        r"evaluation gives rotation 1 of record 0 \(id 'q0'\)",
    ):
        load_scenario(_recipe(circular=True).scenario, root)
    sc = load_scenario(_recipe(circular=False).scenario, root)
    with pytest.raises(ScenarioError, match="cannot be evaluated circularly"):
        circular_scenario(
            type(sc)(
                **{
                    **{
                        f: getattr(sc, f)
                        for f in ("name", "task_type", "modality", "source", "root", "records", "build")
                    },
                    "metric": "classification",
                }
            )
        )


def test_cli_run_with_a_circular_override(tmp_path):
    from lamm.cli.bench import app

    root = _data(tmp_path / "data")
    (tmp_path / "mc.yaml").write_text(
        "name: mc\nscenario: {name: generic, file: mc.json, metric: multiple_choice}\n"
    )
    res = CliRunner().invoke(
        app,
        [
            "run",
            "--model",
            "dummy:constant=The answer is (A).",
            "--recipe",
            str(tmp_path / "mc.yaml"),
            "--root",
            str(root),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
            "--json",
            "scenario.circular=true",
        ],
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["headline"] == "circular_accuracy" and r["n_questions"] == 12
    assert r["metrics"]["circular_accuracy"] == 0.0 and r["metrics"]["accuracy"] == 50.0


def test_synth_vqa_circular_recipe_on_lamm_data_synth(make_synth_2d, tmp_path):
    root = make_synth_2d(2, 4)
    plain = run_recipe("synth_vqa", "dummy", out_dir=tmp_path / "run", root=root, show_progress=False).results
    res = run_recipe("synth_vqa_circular", "dummy", out_dir=tmp_path / "run", root=root, show_progress=False)
    r = res.results
    assert r["n"] == plain["n"] and r["n_questions"] > r["n"] and r["headline"] == "circular_accuracy"
    assert res.n_generated == r["n_questions"] - plain["n"]  # rotation 0 came from the plain run's cache
    assert r["metrics"]["accuracy"] == plain["metrics"]["accuracy"]
    from lamm.bench.options import split_options

    first: dict[str, str] = {}
    for row in _rows(tmp_path / "run" / "answers.jsonl"):
        rid, k = row["circular"]["record"], row["circular"]["rotation"]
        if k == 0:
            first[rid] = row["question"]
            continue
        # the same stem, the options shown in another order
        assert row["question"] != first[rid]
        assert split_options(row["question"])[0] == split_options(first[rid])[0]
        assert sorted(row["question"]) == sorted(first[rid])  # a permutation: the same characters


@pytest.mark.parametrize("name", ["lamm.bench.circular", "lamm.bench.options"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
