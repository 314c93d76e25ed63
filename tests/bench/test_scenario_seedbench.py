"""SEED-Bench (v1): the release's JSON + image folder → multiple-choice records; video questions counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from lamm.bench.recipe import Recipe, ScenarioConfig
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import ScenarioError, load_scenario
from lamm.bench.scenarios.seedbench import read_seedbench
from lamm.infer.backends.dummy import DummyEngine

TYPES = {"Scene Understanding": 1, "Instance Counting": 5, "Action Recognition": 10}


def _q(qid: str, type_id: int, data_id: str, answer: str = "B", data_type: str = "image", **kw) -> dict:
    q = {"question_id": qid, "question": f"Question {qid}?", "choice_a": "one", "choice_b": "two",
         "choice_c": "three", "choice_d": "four", "answer": answer, "data_type": data_type, "data_id": data_id,
         "question_type_id": type_id}
    q.update(kw)
    return q


def _release(root: Path, questions: list[dict] | None = None) -> Path:
    (root / "SEED-Bench-image").mkdir(parents=True, exist_ok=True)
    for name, colour in (("101_1.jpg", (200, 0, 0)), ("102_2.png", (0, 200, 0))):
        Image.new("RGB", (8, 8), colour).save(root / "SEED-Bench-image" / name)
    questions = questions if questions is not None else [
        _q("1", 1, "101_1"),  # the data_id without its extension, as the release writes it
        _q("2", 5, "102_2.png", answer="d"),
        _q("3", 10, "v1.mp4", data_type="video"),
        _q("4", 5, "101_1.jpg", answer="A"),
    ]
    (root / "SEED-Bench.json").write_text(json.dumps({"question_type": TYPES, "questions": questions}))
    return root


def test_records_from_the_release(tmp_path):
    root = _release(tmp_path)
    sc = load_scenario(ScenarioConfig(name="SEED-Bench"), root)
    assert [r["id"] for r in sc.records] == ["1", "2", "4"]
    r = sc.records[0]
    assert r["image"] == "SEED-Bench-image/101_1.jpg" and r["category"] == "Scene Understanding"
    assert r["query"] == "Question 1? Options: (A) one (B) two (C) three (D) four"
    assert r["gt_choices"] == ["one", "two", "three", "four"] and r["gt_choice"] == 1
    assert sc.records[1]["gt_choice"] == 3 and sc.records[1]["category"] == "Instance Counting"
    assert sc.layout_stats == {"questions": 4, "video_questions": 1, "other_dimensions": 0}
    assert sc.chance == 25.0 and sc.metric == "multiple_choice"
    [s] = sc.samples([0])
    assert s.options == ["one", "two", "three", "four"] and s.media[0].path == str(root / r["image"])


def test_dimensions_by_name_or_id(tmp_path):
    root = _release(tmp_path)
    sc = load_scenario(ScenarioConfig(name="SEED-Bench", params={"dimensions": ["instance counting"]}), root)
    assert [r["id"] for r in sc.records] == ["2", "4"] and sc.layout_stats["other_dimensions"] == 1
    sc = load_scenario(ScenarioConfig(name="SEED-Bench", params={"dimensions": [1]}), root)
    assert [r["id"] for r in sc.records] == ["1"]
    with pytest.raises(ScenarioError, match=r"unknown \['Counting'\].*5: Instance Counting"):
        load_scenario(ScenarioConfig(name="SEED-Bench", params={"dimensions": ["Counting"]}), root)


@pytest.mark.parametrize("bad,match", [
    (_q("9", 1, "101_1", answer="E"), r"question 0 \(question_id '9'\): field 'answer': expected one of A"),
    (_q("9", 1, "101_1", choice_c=" "), r"question 0 \(question_id '9'\): field 'choice_c': must be a non-empty"),
    (_q("9", 1, "nope"), r"field 'data_id': no image 'nope'"),
    ({k: v for k, v in _q("9", 1, "101_1").items() if k != "question"}, r"field 'question': missing"),
])
def test_errors_name_the_question_and_field(tmp_path, bad, match):
    root = _release(tmp_path, [bad])
    with pytest.raises(ScenarioError, match=match):
        read_seedbench(root / "SEED-Bench.json", root, root / "SEED-Bench-image")


def test_missing_release_and_only_videos(tmp_path):
    with pytest.raises(ScenarioError, match="SEED-Bench.json"):
        load_scenario(ScenarioConfig(name="SEED-Bench"), tmp_path)
    root = _release(tmp_path, [_q("3", 10, "v1.mp4", data_type="video")])
    with pytest.raises(ScenarioError, match="no image question to ask .1 video questions"):
        load_scenario(ScenarioConfig(name="SEED-Bench"), root)


class AnswersB(DummyEngine):
    def _answer(self, req):
        return "The answer is (B)."


def test_run_plain_and_circular(tmp_path):
    root = _release(tmp_path)
    out = run_recipe("seedbench", AnswersB(), out_dir=tmp_path / "plain", root=root, show_progress=False)
    r = out.results
    assert r["n"] == 3 and r["metrics"]["accuracy"] == pytest.approx(100 / 3)  # question 1's answer is B
    assert r["layout_stats"]["video_questions"] == 1
    report = (tmp_path / "plain" / "report.md").read_text(encoding="utf-8")
    assert "video questions 1" in report and "| category | accuracy | 95% CI |" in report
    assert r["info"]["categories"]["Scene Understanding"]["accuracy"] == 100.0
    assert r["info"]["categories"]["Instance Counting"] == {
        "accuracy": 0.0, "questions": 2, "correct": 0, "unparsed": 0,
        "accuracy_ci": r["info"]["categories"]["Instance Counting"]["accuracy_ci"]}
    recipe = Recipe(name="seed_circ", scenario=ScenarioConfig(name="SEED-Bench", circular=True))
    c = run_recipe(recipe, AnswersB(), out_dir=tmp_path / "circ", root=root, show_progress=False).results
    # always "B": right in one rotation of four, never in all of them
    assert c["n"] == 3 and c["n_questions"] == 12 and c["metrics"]["circular_accuracy"] == 0.0
    assert c["metrics"]["accuracy"] == pytest.approx(100 / 3) and c["layout_stats"]["video_questions"] == 1
    assert c["info"]["categories"]["Scene Understanding"]["circular_accuracy"] == 0.0  # per record
