"""MME: acc / acc+ / score per subtask and the perception / cognition totals (hand-computed), the yes/no
parser path under odd answers, the release-layout reader and runs through the runner."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lamm.bench.metrics import RecordError
from lamm.bench.metrics.mme import MME, mme_category_scores, mme_totals
from lamm.bench.recipe import Recipe, ScenarioConfig
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import ScenarioError, load_scenario
from lamm.bench.scenarios.mme import mme_chance
from lamm.infer.backends.dummy import DummyEngine


def _recs(category: str, images: list[str], per_image: int = 2) -> list[dict]:
    """``per_image`` questions per image, gold alternating yes, no, yes, ..."""
    return [
        {
            "id": f"{category}/{im}:{k}",
            "gt_answer": "Yes" if k % 2 == 0 else "No",
            "category": category,
            "image": im,
        }
        for im in images
        for k in range(per_image)
    ]


def _gold_answers(recs: list[dict]) -> list[str]:
    return [r["gt_answer"] for r in recs]


def _flip(answer: str) -> str:
    return "No" if answer.lower() == "yes" else "Yes"


def test_accuracy_high_but_accuracy_plus_low():
    # 4 images x 4 questions; one wrong answer per image: 12/16 questions right, no image all right
    recs = _recs("existence", ["a", "b", "c", "d"], per_image=4)
    answers = _gold_answers(recs)
    for i in range(0, 16, 4):
        answers[i] = _flip(answers[i])
    r = MME.evaluate(answers, recs, ci=False)
    assert r.metrics["accuracy"] == 75.0 and r.metrics["accuracy_plus"] == 0.0
    assert r.metrics["score"] == 75.0 == r.metrics["perception"]
    assert "cognition" not in r.metrics
    assert r.info["categories"]["existence"] == {
        "accuracy": 75.0,
        "accuracy_plus": 0.0,
        "score": 75.0,
        "questions": 16,
        "images": 4,
        "unparsed": 0,
    }
    assert r.info["images_not_two_questions"] == 4


def test_scores_per_category_and_totals_by_hand():
    # OCR: 2 images, all right -> 100 + 100; count: 2 images, one wrong -> 75 + 50;
    # code_reasoning: 1 image both wrong -> 0 + 0; "mine" (not an MME subtask): 1 image right -> 200
    recs = (
        _recs("OCR", ["o1", "o2"])
        + _recs("count", ["c1", "c2"])
        + _recs("code_reasoning", ["k1"])
        + _recs("mine", ["m1"])
    )
    answers = _gold_answers(recs)
    answers[4] = _flip(answers[4])  # count, image c1, question 0
    answers[8], answers[9] = _flip(answers[8]), _flip(answers[9])  # code_reasoning, both
    r = MME.evaluate(answers, recs, ci=False)
    cats = r.info["categories"]
    assert cats["OCR"]["score"] == 200.0
    assert (cats["count"]["accuracy"], cats["count"]["accuracy_plus"], cats["count"]["score"]) == (
        75.0,
        50.0,
        125.0,
    )
    assert cats["code_reasoning"]["score"] == 0.0 and cats["mine"]["score"] == 200.0
    assert r.metrics["perception"] == 325.0  # OCR + count
    assert r.metrics["cognition"] == 0.0
    assert r.metrics["score"] == 525.0  # every category, "mine" included
    assert r.metrics["accuracy"] == pytest.approx(100 * 9 / 12)  # 12 questions, 3 wrong
    assert r.metrics["accuracy_plus"] == pytest.approx(100 * 4 / 6)  # o1 o2 c2 m1 of 6 images
    assert r.info["other_categories"] == ["mine"]
    assert "existence" in r.info["missing_perception"] and "OCR" not in r.info["missing_perception"]
    assert r.headline == "score" and r.n == 12 and r.unparsed == 0


def test_pure_functions_agree_with_the_family():
    per = mme_category_scores(
        [True, True, False, True], ["a", "a", "b", "b"], ["Scene", "Scene", "Scene", "Scene"]
    )
    assert per == {
        "Scene": {"accuracy": 75.0, "accuracy_plus": 50.0, "score": 125.0, "questions": 4, "images": 2}
    }
    assert mme_totals(per) == {"score": 125.0, "perception": 125.0}  # names matched case-insensitively
    # the same file name in two subtasks is two images
    per2 = mme_category_scores([True, False], ["x.jpg", "x.jpg"], ["OCR", "scene"])
    assert per2["OCR"]["accuracy_plus"] == 100.0 and per2["scene"]["accuracy_plus"] == 0.0


def test_unread_answers_are_wrong_and_counted():
    recs = _recs("color", ["a", "b"])
    r = MME.evaluate(["Yes", "I am not sure", "", "No"], recs, ci=False)
    assert r.unparsed == 2 and r.info["categories"]["color"]["unparsed"] == 2
    assert r.metrics["accuracy"] == 50.0 and r.metrics["accuracy_plus"] == 0.0
    rows = r.per_sample
    assert [row["unparsed"] for row in rows] == [False, True, True, False]
    assert [row["accuracy"] for row in rows] == [1.0, 0.0, 0.0, 1.0]
    assert [row["accuracy_plus"] for row in rows] == [0.0, 0.0, 0.0, 0.0]


def test_bad_records_name_the_field():
    with pytest.raises(RecordError, match=r"record 0 \(id 'x'\): field 'gt_answer': expected 'yes' or 'no'"):
        MME.evaluate(["yes"], [{"id": "x", "gt_answer": "maybe", "category": "OCR", "image": "a"}], ci=False)
    with pytest.raises(RecordError, match="field 'category': missing"):
        MME.evaluate(["yes"], [{"id": "x", "gt_answer": "yes", "image": "a"}], ci=False)
    with pytest.raises(RecordError, match="field 'image': expected a non-empty string"):
        MME.evaluate(["yes"], [{"id": "x", "gt_answer": "yes", "category": "OCR", "image": ""}], ci=False)


def test_intervals_are_seeded_and_stratified():
    recs = _recs("OCR", [f"o{i}" for i in range(6)]) + _recs("scene", [f"s{i}" for i in range(6)])
    answers = _gold_answers(recs)
    for i in (0, 3, 12, 14):
        answers[i] = _flip(answers[i])
    a = MME.evaluate(answers, recs, seed=3, n_boot=300)
    b = MME.evaluate(answers, recs, seed=3, n_boot=300)
    assert a.ci == b.ci and set(a.ci) == {"score", "perception", "accuracy", "accuracy_plus"}
    for name in a.ci:
        lo, hi = a.ci[name]
        assert lo <= a.metrics[name] <= hi
    # every resample keeps both subtasks: the score interval never drops to one subtask's range (<= 200)
    assert a.ci["score"][0] > 200.0
    perfect = MME.evaluate(_gold_answers(recs), recs, n_boot=100)
    assert perfect.ci["score"] == (400.0, 400.0)
    assert perfect.info["categories"]["OCR"]["score_ci"] == [200.0, 200.0] or tuple(
        perfect.info["categories"]["OCR"]["score_ci"]
    ) == (200.0, 200.0)


def test_odd_answers_never_break_the_parser_path():
    rng = random.Random(0)
    alphabet = "yesnoYESNO \t\n.,!?'’\"()[]{}<>*_#@0123456789éü中文\u2028\u200b\x00-–—:;/\\"
    answers: list = [
        "",
        " ",
        "\x00",
        "y e s",
        "NOYES",
        "yes no",
        "No, yes.",
        "n't",
        "Yes" * 1000,
        "‘no’",
        None,
        1,
        0.5,
        [],
        {},
        ["yes"],
        {"answer": "yes"},
        b"yes",
        True,
    ]
    answers += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(200)]
    recs = [
        {"id": str(i), "gt_answer": "yes" if i % 2 else "no", "category": f"c{i % 3}", "image": f"im{i // 2}"}
        for i in range(len(answers))
    ]
    r = MME.evaluate(answers, recs, n_boot=50)
    assert r.n == len(answers)
    assert r.unparsed == sum(row["unparsed"] for row in r.per_sample)
    for row in r.per_sample:
        assert row["parsed"] in ("yes", "no", None)
        assert row["unparsed"] == (row["parsed"] is None)
        if row["unparsed"]:
            assert row["accuracy"] == 0.0
    assert r.per_sample[0]["parsed"] is None and r.per_sample[10]["parsed"] is None  # "" and None
    assert 0.0 <= r.metrics["accuracy"] <= 100.0 and 0.0 <= r.metrics["score"] <= 600.0


# ------------------------------------------------------------------------------ release layout, runs
def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def make_mme_release(root: Path) -> Path:
    """A tiny MME release: ``artwork`` in the two-folder layout, ``OCR`` and ``code_reasoning`` with
    images beside their text files; two questions per image."""
    rel = root / "MME_Benchmark_release_version"
    for name in ("10002", "10003"):
        _image(rel / "artwork" / "images" / f"{name}.jpg")
        (rel / "artwork" / "questions_answers_YN").mkdir(parents=True, exist_ok=True)
        (rel / "artwork" / "questions_answers_YN" / f"{name}.txt").write_text(
            "Is this artwork by Monet? Please answer yes or no.\tYes\n"
            "Is this artwork by Dali? Please answer yes or no.\tNo\n",
            encoding="utf-8",
        )
    _image(rel / "OCR" / "0001.jpg")
    (rel / "OCR" / "0001.txt").write_bytes(
        '\ufeffIs the word "STOP"? Please answer yes or no.\tYes\r\n'
        'Is the word "GO"? Please answer yes or no.\tno\r\n\r\n'.encode()
    )
    _image(rel / "OCR" / "0002.png")  # an image without questions
    _image(rel / "code_reasoning" / "0020.png")
    (rel / "code_reasoning" / "0020.txt").write_text(
        "Is the output 3? Please answer yes or no.\tNo\nIs the output 4? Please answer yes or no.\tYes\n"
    )
    return rel


def test_release_layout_reader(tmp_path):
    make_mme_release(tmp_path)
    sc = load_scenario(ScenarioConfig(name="MME"), tmp_path)  # the folder holding the release folder
    ids = [r["id"] for r in sc.records]
    assert ids == [
        "OCR/0001.jpg:0",
        "OCR/0001.jpg:1",
        "artwork/10002.jpg:0",
        "artwork/10002.jpg:1",
        "artwork/10003.jpg:0",
        "artwork/10003.jpg:1",
        "code_reasoning/0020.png:0",
        "code_reasoning/0020.png:1",
    ]
    assert sc.records[0]["query"] == 'Is the word "STOP"? Please answer yes or no.'
    assert [r["gt_answer"] for r in sc.records[:2]] == ["yes", "no"]
    assert sc.records[2]["image"] == "artwork/images/10002.jpg" and sc.records[2]["category"] == "artwork"
    assert sc.layout_stats == {"subtasks": 3, "text_files": 4, "images_without_questions": 1}
    samples = sc.samples()
    assert samples[0].options == ["yes", "no"] and samples[0].answer == "Yes"
    assert Path(samples[2].media[0].path).is_file()
    assert sc.chance == 225.0  # 3 subtasks x (50 + 25)
    only = load_scenario(ScenarioConfig(name="MME", params={"subtasks": ["OCR"]}), tmp_path)
    assert {r["category"] for r in only.records} == {"OCR"}
    with pytest.raises(ScenarioError, match="did you mean 'artwork'"):
        load_scenario(ScenarioConfig(name="MME", params={"subtasks": ["artwrk"]}), tmp_path)


def test_release_layout_errors_name_file_and_line(tmp_path):
    rel = make_mme_release(tmp_path)
    bad = rel / "OCR" / "0001.txt"
    bad.write_text("Is it? Please answer yes or no.\tYes\nno tab here\n")
    with pytest.raises(ScenarioError, match=r"0001\.txt: line 2: expected 'question<TAB>answer'"):
        load_scenario(ScenarioConfig(name="MME"), rel)
    bad.write_text("Is it?\tMaybe\n")
    with pytest.raises(ScenarioError, match=r"0001\.txt: line 1: answer 'Maybe': expected Yes or No"):
        load_scenario(ScenarioConfig(name="MME"), rel)
    bad.write_text("Is it?\tYes\n")
    (rel / "OCR" / "0003.txt").write_text("Is it?\tNo\n")
    with pytest.raises(ScenarioError, match=r"0003\.txt: no image 0003\.jpg"):
        load_scenario(ScenarioConfig(name="MME"), rel)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScenarioError, match="no MME subtask folder"):
        load_scenario(ScenarioConfig(name="MME"), empty)


class YesEngine(DummyEngine):
    """Says yes to everything."""

    def _answer(self, req):
        return "Yes, it is."


def test_run_mme_release_and_generic_file(tmp_path):
    rel = make_mme_release(tmp_path)
    out = run_recipe("mme", YesEngine(), out_dir=tmp_path / "run", root=rel, show_progress=False)
    r = out.results
    assert r["family"] == "mme" and r["headline"] == "score" and r["n"] == 8 and r["unparsed"] == 0
    # always yes: each subtask 50 + 0
    assert (
        r["metrics"]["score"] == 150.0
        and r["metrics"]["perception"] == 100.0
        and r["metrics"]["cognition"] == 50.0
    )
    assert r["metrics"]["accuracy"] == 50.0 and r["metrics"]["accuracy_plus"] == 0.0
    assert set(r["unscaled"]) >= {"score", "perception", "cognition"}
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| MME subtask |" in report and "| code_reasoning | 50.00 |" in report
    # the same records as a LAMM-format file through the generic scenario
    sc = load_scenario(ScenarioConfig(name="MME"), rel)
    (rel / "mme.jsonl").write_text("\n".join(json.dumps(rec) for rec in sc.records))
    recipe = Recipe(
        name="mme_generic", scenario=ScenarioConfig(name="generic", file="mme.jsonl", metric="mme")
    )
    g = run_recipe(recipe, YesEngine(), out_dir=tmp_path / "gen", root=rel, show_progress=False).results
    assert g["metrics"] == r["metrics"] and g["chance"] == r["chance"] == 225.0
    # ppl scores the two options "yes" / "no"
    p = run_recipe(
        Recipe(name="mme_ppl", scenario=ScenarioConfig(name="MME"), inferencer={"type": "ppl"}),
        DummyEngine(),
        out_dir=tmp_path / "ppl",
        root=rel,
        show_progress=False,
    ).results
    assert p["n"] == 8 and p["unparsed"] == 0 and p["calibration"]["n"] == 8


def test_mme_chance():
    assert mme_chance([]) is None
    assert mme_chance([{"category": "a", "image": "x"}]) == 100.0  # one question: 50 + 50


def test_scenario_doctests():
    import doctest

    import lamm.bench.scenarios.mme as module

    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
