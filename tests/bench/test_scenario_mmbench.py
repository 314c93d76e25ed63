"""MMBench from its release TSV: records and prompts, the images decoded once (a second load writes
nothing), the errors, the per-category accuracies of ``multiple_choice``, and plain and circular runs."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lamm.bench.metrics import METRICS
from lamm.bench.metrics.multiple_choice import category_accuracy
from lamm.bench.options import split_options
from lamm.bench.recipe import Recipe, ScenarioConfig
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import MissingDataError, ScenarioError, load_scenario
from lamm.bench.scenarios.mmbench import MANIFEST
from lamm.infer.backends.dummy import DummyEngine

TSV = "MMBench_DEV_EN.tsv"
HEADER = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split",
          "source", "comment", "image"]


def _b64(value: int, fmt: str = "PNG", size: int = 8) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _rows() -> list[list]:
    """Question 0 (a hint, a 'nan' option, an empty one), question 1 (a JPEG, no hint), question 2 (the
    image of row 0, by its index) and MMBench's circular copy of question 1 (options rotated by one)."""
    return [
        [0, "What colour is the square?", "The square is on a white page.", "red", "blue", "nan", "", "B",
         "attribute_recognition", "FP-S", "dev", "synthetic", "nan", _b64(10)],
        [1, "Which shape is drawn?", "nan", "circle", "square", "triangle", "", "C", "object_localization",
         "FP-C", "dev", "synthetic", "nan", _b64(200, "JPEG")],
        [2, "Is this the same picture?", "", "yes", "no", "nan", "nan", "A", "attribute_recognition", "FP-S",
         "dev", "synthetic", "nan", "0"],
        [1000001, "Which shape is drawn?", "nan", "square", "triangle", "circle", "", "B",
         "object_localization", "FP-C", "dev", "synthetic", "nan", "1"],
    ]


def _write(root: Path, rows: list[list] | None = None, header: list[str] | None = None,
           name: str = TSV) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(header or HEADER)
        w.writerows(_rows() if rows is None else rows)
    return root


def _load(root: Path, **scenario):
    return load_scenario(ScenarioConfig(name="MMBench", file=TSV, **scenario), root)


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- records and prompts
def test_records_prompts_and_shared_images(tmp_path):
    sc = _load(_write(tmp_path))
    assert sc.name == "MMBench" and sc.metric == "multiple_choice" and sc.task_type == "VQA"
    assert [r["id"] for r in sc.records] == ["0", "1", "2"]  # the copy 1000001 is not asked
    r0, r1, r2 = sc.records
    assert r0["query"] == ("The square is on a white page.\nWhat colour is the square? "
                           "Options: (A) red (B) blue")
    assert (r0["gt_choices"], r0["gt_choice"]) == (["red", "blue"], 1)  # 'nan' and '' are no options
    assert (r0["category"], r0["l2_category"], r0["split"], r0["src_line"]) == (
        "attribute_recognition", "FP-S", "dev", 2)
    assert r1["query"] == "Which shape is drawn? Options: (A) circle (B) square (C) triangle"
    assert (r1["gt_choices"][r1["gt_choice"]], r1["hint"]) == ("triangle", None)  # 'nan' hint: none
    assert (r0["image"], r1["image"], r2["image"]) == ("0.png", "1.jpg", "0.png")
    assert sc.layout_stats == {"rows": 4, "questions": 3, "circular_copies": 1, "images": 2}
    assert sc.chance == pytest.approx(100 * (1 / 2 + 1 / 3 + 1 / 2) / 3)
    samples = sc.samples()
    folder = tmp_path / "MMBench_DEV_EN.images"
    assert [s.media_paths for s in samples] == [[str(folder / "0.png")], [str(folder / "1.jpg")],
                                                [str(folder / "0.png")]]
    assert samples[0].options == ["red", "blue"] and samples[0].answer == "The answer is (B)."
    # the options tail is LAMM's: the desiderata and circular evaluation find the stem and the options
    assert split_options(r0["query"], r0["gt_choices"])[0] == "The square is on a white page.\n" + \
        "What colour is the square?"
    with Image.open(folder / "1.jpg") as im:
        assert im.format == "JPEG" and im.size == (8, 8)


def test_copies_keep_and_a_copy_that_is_not_one(tmp_path):
    sc = _load(_write(tmp_path), params={"copies": "keep"})
    assert [r["id"] for r in sc.records] == ["0", "1", "2", "1000001"]
    assert sc.records[3]["gt_choices"] == ["square", "triangle", "circle"] and sc.records[3]["gt_choice"] == 1
    rows = _rows()
    rows[3][1] = "Which colour is drawn?"
    with pytest.raises(ScenarioError, match=r"line 5 \(index 1000001\): index 1000001 marks a circular "
                                            r"copy of index 1 \(line 3\), but its question"):
        _load(_write(tmp_path / "b", rows))
    rows = _rows()[:3] + [[1000007] + _rows()[3][1:]]  # a copy of a question the file lacks is a question
    assert [r["id"] for r in _load(_write(tmp_path / "c", rows)).records] == ["0", "1", "2", "1000007"]


def test_tsv_quirks_bom_crlf_quoted_fields_and_big_cells(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "PNG")
    big = base64.b64encode(buf.getvalue()).decode()
    assert len(big) > 131072  # beyond csv's default field limit
    header = ["index", "question", "hint", "A", "B", "answer", "category", "image"]
    row = ["5", '"Two lines:\nand a\ttab?"', "", "x", "y", "b", "ocr", big]  # a quoted tab and newline
    text = "\r\n".join(["\t".join(header), "\t".join(row), "", ""])  # CRLF, and a blank last line
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / TSV).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    (rec,) = _load(tmp_path).records
    assert rec["question"] == "Two lines:\nand a\ttab?"
    assert rec["gt_choice"] == 1  # answer 'b': letters in any case
    assert rec["id"] == "5" and "l2_category" not in rec


# ----------------------------------------------------------------------------- images written once
def test_images_are_decoded_once_and_reused(tmp_path):
    root = _write(tmp_path)
    folder = root / "MMBench_DEV_EN.images"
    first = _load(root)
    assert first.image_stats == {"decoded": 2, "written": 2, "reused": 0}
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.jpg", MANIFEST]
    before = _mtimes(folder)
    again = _load(root)
    assert again.image_stats == {"decoded": 0, "written": 0, "reused": 2}
    assert _mtimes(folder) == before  # nothing written, the manifest included
    # without the manifest each image is decoded and compared, and equal bytes are not rewritten
    (folder / MANIFEST).unlink()
    rebuilt = _load(root)
    assert rebuilt.image_stats == {"decoded": 2, "written": 0, "reused": 2}
    assert {k: v for k, v in _mtimes(folder).items() if k != MANIFEST} == {
        k: v for k, v in before.items() if k != MANIFEST}
    (folder / MANIFEST).write_text("{not json", encoding="utf-8")  # damaged: the same, and rewritten
    assert _load(root).image_stats == {"decoded": 2, "written": 0, "reused": 2}
    assert _load(root).image_stats == {"decoded": 0, "written": 0, "reused": 2}
    # a file changed behind the manifest's back is written again
    (folder / "0.png").write_bytes(base64.b64decode(_b64(99)))
    ns = before["0.png"] + 2_000_000_000  # a new mtime even where the file system's clock is coarse
    os.utime(folder / "0.png", ns=(ns, ns))
    assert _load(root).image_stats == {"decoded": 1, "written": 1, "reused": 1}
    assert (folder / "0.png").read_bytes() == base64.b64decode(_b64(10))
    # a TSV whose image changed under the same index gets the new image
    rows = _rows()
    rows[0][-1] = _b64(55)
    _write(root, rows)
    assert _load(root).image_stats == {"decoded": 1, "written": 1, "reused": 1}
    assert (folder / "0.png").read_bytes() == base64.b64decode(_b64(55))


def test_image_dir_param(tmp_path):
    root = _write(tmp_path / "data")
    sc = _load(root, params={"image_dir": "decoded"})
    assert sc.samples()[0].media_paths == [str(root / "decoded" / "0.png")]
    assert not (root / "MMBench_DEV_EN.images").exists()
    elsewhere = tmp_path / "abs" / "imgs"
    sc = _load(root, params={"image_dir": str(elsewhere)})
    assert sc.samples()[1].media_paths == [str(elsewhere / "1.jpg")]
    with pytest.raises(ScenarioError, match=r"(?s)scenario\.params.*image_dirs: unknown key"):
        _load(root, params={"image_dirs": "x"})


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (0, "image", "!!not base64 at all!!", r"line 2 \(index 0\): field 'image': does not decode as"),
        (0, "image", base64.b64encode(b"plain text, no image").decode(), r"line 2.*not decode.*not an image"),
        (1, "answer", "", r"line 3 \(index 1\): field 'answer': empty"),
        (1, "answer", "nan", r"line 3 \(index 1\): field 'answer': empty"),
        (0, "answer", "C", r"line 2 \(index 0\): field 'answer': 'C' names option C, which is empty"),
        (0, "answer", "E", r"line 2 \(index 0\): field 'answer': 'E' is not an option letter \(A, B, C, D\)"),
        (2, "image", "7", r"line 4 \(index 2\): field 'image': names row 7 for its image, which is not an"),
        (2, "image", "", r"line 4 \(index 2\): field 'image': empty"),
        (1, "question", "nan", r"line 3 \(index 1\): field 'question': empty"),
        (1, "index", "x1", r"line 3: field 'index': expected a non-negative integer"),
        (1, "index", "0", r"line 3: field 'index': 0 is also the index on line 2"),
        (0, "B", "nan", r"line 2 \(index 0\): fields A/B/C/D: 1 non-empty option"),
    ],
)
def test_errors_name_the_file_line_index_and_field(tmp_path, row, column, value, message):
    rows = _rows()
    rows[row][HEADER.index(column)] = value
    with pytest.raises(ScenarioError, match=r"MMBench_DEV_EN\.tsv: " + message):
        _load(_write(tmp_path, rows))


def test_file_level_errors(tmp_path):
    no_answer = [h for h in HEADER if h != "answer"]
    rows = [[v for h, v in zip(HEADER, r) if h != "answer"] for r in _rows()]
    with pytest.raises(ScenarioError, match=r"no 'answer' column: this is a TEST file.*evaluation server"):
        _load(_write(tmp_path / "test", rows, no_answer))
    with pytest.raises(ScenarioError, match=r"line 1: no column 'image' in the header"):
        _load(_write(tmp_path / "noimg", [r[:-1] for r in _rows()], HEADER[:-1]))
    bad = _rows()
    bad[1] = bad[1][:-2]
    with pytest.raises(ScenarioError, match=r"line 3: 12 fields, the header has 14"):
        _load(_write(tmp_path / "short", bad))
    with pytest.raises(MissingDataError, match=r"MMBench_DEV_EN\.tsv not found"):
        _load(tmp_path / "nowhere")
    with pytest.raises(ScenarioError, match="no question"):
        _load(_write(tmp_path / "empty", []))


# ----------------------------------------------------------------------------- per-category accuracy
def test_per_category_accuracy_by_hand():
    recs = [{"id": str(i), "gt_choices": ["a", "b"], "gt_choice": 0, "category": c, "l2_category": l2}
            for i, (c, l2) in enumerate([("x", "P"), ("x", "P"), ("y", "P"), ("y", "R"), (None, "R")])]
    answers = ["(A)", "(B)", "(A)", "hmm", "(A)"]  # x: 1 of 2; y: 1 of 2, one unparsed; no category: right
    rep = METRICS.get("multiple_choice").evaluate(answers, recs, ci=True, n_boot=200)
    assert rep.metrics == {"accuracy": 60.0, "unparsed": 1.0} and rep.headline == "accuracy"
    cats = rep.info["categories"]
    assert list(cats) == ["x", "y"]
    assert {k: v for k, v in cats["x"].items() if k != "accuracy_ci"} == {
        "accuracy": 50.0, "questions": 2, "correct": 1, "unparsed": 0}
    assert cats["y"]["unparsed"] == 1 and rep.info["uncategorized"] == 1
    for c in cats.values():
        lo, hi = c["accuracy_ci"]
        assert 0.0 <= lo <= c["accuracy"] <= hi <= 100.0
    assert rep.info["l2_categories"]["P"]["accuracy"] == pytest.approx(200 / 3)
    assert rep.info["l2_categories"]["R"] == {"accuracy": 50.0, "questions": 2, "correct": 1, "unparsed": 1,
                                              "accuracy_ci": rep.info["l2_categories"]["R"]["accuracy_ci"]}
    # records without a category: the report is exactly what it was
    plain = [{k: v for k, v in r.items() if k not in ("category", "l2_category")} for r in recs]
    bare = METRICS.get("multiple_choice").evaluate(answers, plain, ci=False)
    assert bare.info == {} and bare.metrics == rep.metrics
    assert category_accuracy([True], [False], [None]) == {}


# ----------------------------------------------------------------------------- runs
class LetterA(DummyEngine):
    """Always answers (A): a model with a position bias."""

    def _answer(self, req):
        return "The answer is (A)."


def _recipe(**scenario) -> Recipe:
    return Recipe(name="mmb", scenario=ScenarioConfig(name="MMBench", file=TSV, **scenario))


def _answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_plain_and_circular_runs_share_answers_and_images(tmp_path):
    root = _write(tmp_path / "data")
    out = tmp_path / "run"
    plain = run_recipe(_recipe(), LetterA(), out_dir=out, root=root, show_progress=False)
    r = plain.results
    assert plain.n_generated == 3 and r["n"] == 3 and r["headline"] == "accuracy"
    assert r["metrics"]["accuracy"] == pytest.approx(100 / 3)  # only question 2's gold is (A)
    assert r["layout_stats"] == {"rows": 4, "questions": 3, "circular_copies": 1, "images": 2}
    cats = r["info"]["categories"]
    assert {c: (v["questions"], v["correct"]) for c, v in cats.items()} == {
        "attribute_recognition": (2, 1), "object_localization": (1, 0)}
    assert r["info"]["l2_categories"]["FP-S"]["accuracy"] == 50.0
    circ = run_recipe(_recipe(circular=True), LetterA(), out_dir=out, root=root, show_progress=False)
    c = circ.results
    # 2 + 3 + 2 rotations; rotation 0 of each question comes from the plain run's cache: the images were
    # not rewritten by the second load, so the media fingerprints still match
    assert c["n"] == 3 and c["n_questions"] == 7 and circ.n_generated == 4
    assert c["headline"] == "circular_accuracy" and c["metrics"]["circular_accuracy"] == 0.0
    assert c["metrics"]["accuracy"] == r["metrics"]["accuracy"]
    rows = _answers(out / "answers.jsonl")
    assert [row["id"] for row in rows] == ["0", "0#c1", "1", "1#c1", "1#c2", "2", "2#c1"]
    # rotation 1 of question 1 is MMBench's own copy 1000001: the same order of options
    assert rows[3]["question"] == "Which shape is drawn? Options: (A) square (B) triangle (C) circle"
    assert rows[1]["question"].startswith("The square is on a white page.\nWhat colour is the square? ")
    again = run_recipe(_recipe(circular=True), LetterA(), out_dir=out, root=root, show_progress=False)
    assert again.n_generated == 0 and again.results["metrics"] == c["metrics"]


def test_the_recipes_by_name_with_the_dummy_engine(tmp_path):
    root = _write(tmp_path / "data")
    plain = run_recipe("mmbench_dev", "dummy", out_dir=tmp_path / "run", root=root, show_progress=False)
    circ = run_recipe("mmbench_dev_circular", "dummy", out_dir=tmp_path / "run", root=root,
                      show_progress=False)
    assert plain.results["n"] == circ.results["n"] == 3 and circ.results["n_questions"] == 7
    assert circ.results["metrics"]["accuracy"] == plain.results["metrics"]["accuracy"]
    assert "circular copies 1" in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")


def test_doctests():
    import doctest

    import lamm.bench.scenarios.mmbench as mod

    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0
