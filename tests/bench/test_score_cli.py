"""``lamm bench score`` through typer's CliRunner on the ``bench`` sub-app."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from lamm.bench.metrics.keypoints import JOINT_NAMES
from lamm.cli.bench import app

runner = CliRunner()


def write_jsonl(path, rows, blank_line_after=None):
    lines = []
    for i, row in enumerate(rows):
        lines.append(json.dumps(row))
        if i == blank_line_after:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def output(result) -> str:
    """stdout + stderr with whitespace collapsed (rich wraps long error lines)."""
    text = result.output
    try:
        text += result.stderr
    except ValueError:  # older click: stderr mixed into output
        pass
    return " ".join(text.split())


def test_json_output_classification(tmp_path):
    rows = [{"id": "0", "image": "c/0.png", "query": "What?", "label": "cat", "answer": "A kitten."},
            {"id": "1", "image": "c/1.png", "query": "What?", "label": "dog", "answer": "A cat."},
            {"id": "2", "image": "c/2.png", "query": "What?", "label": "dog", "answer": "no idea"}]
    f = write_jsonl(tmp_path / "answers.jsonl", rows)
    result = runner.invoke(app, ["score", "--scenario", "CIFAR10", "--answers", str(f), "--json"])
    assert result.exit_code == 0, output(result)
    data = json.loads(result.stdout)
    assert set(data) == {"accuracy", "n", "unparsed", "ci"}
    assert data["accuracy"] == 100 / 3 and data["n"] == 3 and data["unparsed"] == 1
    lo, hi = data["ci"]["accuracy"]
    assert lo <= data["accuracy"] <= hi


def test_table_output_and_per_sample_file(tmp_path):
    rows = [{"id": str(i), "query": "Q", "gt_choice": i % 2, "gt_choices": ["yes", "no"], "answer": "(A)"}
            for i in range(4)]
    f = write_jsonl(tmp_path / "mc.jsonl", rows)
    out = tmp_path / "per_sample.jsonl"
    result = runner.invoke(app, ["score", "--scenario", "ScienceQA", "--answers", str(f), "--no-ci",
                                 "--per-sample", str(out)])
    assert result.exit_code == 0, output(result)
    assert "accuracy" in result.stdout and "50.00" in result.stdout and "n = 4" in result.stdout
    assert "chance = 50.00" in result.stdout
    per = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["parsed"] for p in per] == [0, 0, 0, 0] and [p["accuracy"] for p in per] == [1, 0, 1, 0]


def test_lsp_reads_image_size_from_root(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "imgs" / "a.png")
    joints = [[100, 50, 1]] * 14
    row = {"id": "im1", "image": "imgs/a.png", "query": "Where is the {}?", "gt_joints": joints,
           "answer": {name: "[0.5, 0.5]" for name in JOINT_NAMES[:7]}}
    (tmp_path / "sub").mkdir()
    f = write_jsonl(tmp_path / "sub" / "lsp.jsonl", [row])
    result = runner.invoke(app, ["score", "--scenario", "LSP", "--answers", str(f), "--root", str(tmp_path),
                                 "--json", "--no-ci"])
    assert result.exit_code == 0, output(result)
    assert json.loads(result.stdout)["pck"] == 50.0
    # without --root the image is looked up beside the answers file, and the error says where
    result = runner.invoke(app, ["score", "--scenario", "LSP", "--answers", str(f), "--json"])
    assert result.exit_code == 2
    assert "line 1" in output(result) and "'image'" in output(result) and "--root" in output(result)


def test_missing_answer_names_the_line(tmp_path):
    rows = [{"id": "0", "num": 3, "answer": "3"}, {"id": "1", "num": 4}]
    f = write_jsonl(tmp_path / "count.jsonl", rows, blank_line_after=0)
    result = runner.invoke(app, ["score", "--scenario", "FSC147", "--answers", str(f)])
    assert result.exit_code == 2
    text = output(result)
    assert "line 3" in text and "'answer'" in text and str(f.name) in text


def test_bad_field_and_unknown_scenario(tmp_path):
    f = write_jsonl(tmp_path / "mc.jsonl", [{"id": "q", "gt_choice": 7, "gt_choices": ["a", "b"], "answer": "A"}])
    result = runner.invoke(app, ["score", "--scenario", "AI2D", "--answers", str(f)])
    assert result.exit_code == 2 and "line 1" in output(result) and "'gt_choice'" in output(result)
    result = runner.invoke(app, ["score", "--scenario", "ScienceQ", "--answers", str(f)])
    assert result.exit_code == 2 and "did you mean 'ScienceQA'" in output(result)
    result = runner.invoke(app, ["score", "--scenario", "CIFAR10", "--answers", str(f)])
    assert result.exit_code == 2 and "missing field 'label'" in output(result)


def test_records_are_numbered_from_zero_with_their_id(tmp_path):
    """`bench score` names a bad record as the benchmark reader and the runner do: "record 0 (id 'a')"."""
    from lamm.bench.scoring import ScoringError, read_answer_rows, score_file

    rows = [{"id": "a", "image": "x.png", "query": "q", "num": "many", "answer": "5"},
            {"id": "b", "image": "y.png", "query": "q", "num": 3, "answer": "3"}]
    arr = tmp_path / "Counting_FSC147.json"
    arr.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(ScoringError, match=r"Counting_FSC147\.json: record 0 \(id 'a'\): field 'num'"):
        score_file("FSC147", arr, ci=False)
    lines = write_jsonl(tmp_path / "count.jsonl", [rows[1], rows[0]], blank_line_after=0)
    with pytest.raises(ScoringError, match=r"count\.jsonl: line 3 \(record 1, id 'a'\): field 'num'"):
        score_file("FSC147", lines, ci=False)
    assert read_answer_rows(arr)[1] == ["record 0 (id 'a')", "record 1 (id 'b')"]
    result = runner.invoke(app, ["score", "--scenario", "FSC147", "--answers", str(arr)])
    assert result.exit_code == 2 and "record 0 (id 'a')" in output(result)


def test_answers_with_unicode_line_separators_are_scored(tmp_path):
    from lamm.bench.scoring import read_answer_rows, score_file

    rows = [{"id": "1", "label": "cat", "query": "q", "image": "x.png",
             "answer": "It is a cat.\u2028Definitely."},
            {"id": "2", "label": "dog", "query": "q", "image": "y.png", "answer": "A dog\x85"}]
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert read_answer_rows(p)[1] == ["line 1 (record 0, id '1')", "line 2 (record 1, id '2')"]
    assert score_file("CIFAR10", p, ci=False).metrics == {"accuracy": 100.0}


# MME: its scenario or a generic file with --metric mme ---------------------------------------------------

MME_ROWS = [  # (category, image, gold, answer): hand-scored below
    ("existence", "a.jpg", "Yes", "Yes"), ("existence", "a.jpg", "No", "No"),     # image right
    ("existence", "b.jpg", "Yes", "Yes"), ("existence", "b.jpg", "No", "Yes"),    # one wrong
    ("OCR", "c.jpg", "Yes", "No"), ("OCR", "c.jpg", "No", "No"),                  # one wrong
    ("code_reasoning", "d.jpg", "Yes", "maybe"), ("code_reasoning", "d.jpg", "No", "No"),  # one unread
]


def _mme_file(tmp_path):
    rows = [{"id": f"{c}/{im}:{k % 2}", "image": f"{c}/{im}", "query": "Is it? Please answer yes or no.",
             "gt_answer": g, "category": c, "answer": a} for k, (c, im, g, a) in enumerate(MME_ROWS)]
    return write_jsonl(tmp_path / "mme.jsonl", rows)


def test_mme_answers_are_scored_by_scenario_or_by_metric(tmp_path, monkeypatch):
    from lamm.cli import common

    monkeypatch.setattr(common.console, "width", 200)  # the subtask table must not be cut to 80 columns
    f = _mme_file(tmp_path)
    # existence: acc 75 + acc+ 50 = 125; OCR: 50 + 0; code_reasoning: 50 + 0 (the unread answer is wrong)
    expected = {"score": 225.0, "perception": 175.0, "cognition": 50.0, "accuracy": 62.5,
                "accuracy_plus": 25.0}
    for args in (["--scenario", "MME"], ["--metric", "mme"], ["--scenario", "generic", "--metric", "mme"]):
        result = runner.invoke(app, ["score", *args, "--answers", str(f), "--json", "--no-ci"])
        assert result.exit_code == 0, output(result)
        data = json.loads(result.stdout)
        assert {k: data[k] for k in expected} == expected and data["n"] == 8 and data["unparsed"] == 1
        assert data["categories"]["existence"]["score"] == 125.0 and data["categories"]["OCR"]["images"] == 1
    result = runner.invoke(app, ["score", "--scenario", "MME", "--answers", str(f), "--no-ci"])
    assert result.exit_code == 0, output(result)
    text = output(result)
    assert "MME subtasks" in text and "code_reasoning" in text and "chance = 225.00" in text  # 75 per subtask
    result = runner.invoke(app, ["score", "--scenario", "MME", "--metric", "pope", "--answers", str(f)])
    assert result.exit_code == 2 and "scored by the 'mme' metric family, not 'pope'" in output(result)
    result = runner.invoke(app, ["score", "--answers", str(f)])
    assert result.exit_code == 2 and "--metric FAMILY" in output(result)
    bad = write_jsonl(tmp_path / "bad.jsonl",
                      [{"id": "x", "image": "a.jpg", "gt_answer": "yes", "answer": "yes"}])
    result = runner.invoke(app, ["score", "--scenario", "MME", "--answers", str(bad)])
    assert result.exit_code == 2 and "line 1" in output(result)
    assert "missing field 'category'" in output(result)


# circular runs: rows are the rotations of multiple-choice records ---------------------------------------

def _rotations(form: str) -> list[dict]:
    """q0: 3 options, gold "red", every rotation answered right; q1: 2 options, gold "no", rotation 1
    answered wrong. ``form``: the rotated records' own fields, or the runner's ``circular`` object."""
    rot = [("q0", 0, ["red", "blue", "green"], 0, "(A)"), ("q0", 1, ["blue", "green", "red"], 2, "(C)"),
           ("q0", 2, ["green", "red", "blue"], 1, "The answer is B."),
           ("q1", 0, ["yes", "no"], 1, "(B)"), ("q1", 1, ["no", "yes"], 0, "(B)")]
    rows = []
    for rid, k, choices, gold, answer in rot:
        row = {"id": rid if k == 0 else f"{rid}#c{k}", "query": "Which?", "gt_choices": choices,
               "gt_choice": gold, "answer": answer}
        row.update({"circular_of": rid, "circular_rotation": k} if form == "fields" else
                   {"circular": {"record": rid, "rotation": k, "record_correct": None}})
        rows.append(row)
    return rows


@pytest.mark.parametrize("form", ["fields", "answers_jsonl"])
def test_circular_rotations_are_grouped_by_record(tmp_path, form):
    f = write_jsonl(tmp_path / "circ.jsonl", _rotations(form))
    result = runner.invoke(app, ["score", "--scenario", "ScienceQA", "--answers", str(f), "--json",
                                 "--no-ci"])
    assert result.exit_code == 0, output(result)
    data = json.loads(result.stdout)
    # q0 right in all 3 rotations, q1 in 1 of 2: circular 1/2, rotation 0 2/2, rotations 4/5
    assert (data["circular_accuracy"], data["accuracy"], data["rotation_accuracy"]) == (50.0, 100.0, 80.0)
    assert data["n"] == 2 and data["unparsed"] == 0
    assert data["circular"]["rotations_correct"] == {"1/2": 1, "3/3": 1}
    # --no-circular: every rotation a question of its own (plain accuracy over 5)
    result = runner.invoke(app, ["score", "--scenario", "ScienceQA", "--answers", str(f), "--json", "--no-ci",
                                 "--no-circular"])
    assert json.loads(result.stdout)["accuracy"] == 80.0 and json.loads(result.stdout)["n"] == 5
    result = runner.invoke(app, ["score", "--metric", "multiple_choice", "--answers", str(f), "--no-ci"])
    assert result.exit_code == 0, output(result)
    text = output(result)
    assert "multiple_choice, circular" in text and "records = 2" in text
    assert "1 of 2 records right in every rotation" in text
    assert "chance = 14.35" in text  # (1/3**3 + 1/2**2) / 2: every rotation guessed right


def test_circular_errors_name_the_line(tmp_path):
    from lamm.bench.scoring import ScoringError, score_file

    rows = _rotations("fields")
    mixed = [*rows[:3], {k: v for k, v in rows[3].items() if not k.startswith("circular")}, rows[4]]
    f = write_jsonl(tmp_path / "mixed.jsonl", mixed)
    with pytest.raises(ScoringError, match=r"line 4 \(record 3, id 'q1'\): no circular grouping .* line 1"):
        score_file("ScienceQA", f, ci=False)
    f = write_jsonl(tmp_path / "partial.jsonl", rows[:4])  # q1 lacks rotation 1
    result = runner.invoke(app, ["score", "--scenario", "AI2D", "--answers", str(f)])
    assert result.exit_code == 2 and "line 4" in output(result) and "lacks rotations [1]" in output(result)
    cls = write_jsonl(tmp_path / "cls.jsonl", [{"id": "a", "image": "a.png", "query": "q", "label": "cat",
                                                "answer": "cat", "circular_of": "a", "circular_rotation": 0}])
    result = runner.invoke(app, ["score", "--scenario", "CIFAR10", "--answers", str(cls)])
    assert result.exit_code == 2 and "groups the rotations of multiple-choice questions" in output(result)
    assert score_file("CIFAR10", cls, ci=False, circular=False).metrics == {"accuracy": 100.0}


def test_multiple_choice_answers_with_categories_are_scored_per_category(tmp_path, monkeypatch):
    """MMBench / SEED-Bench answer files: accuracy per category in the table and in --json."""
    from lamm.cli import common

    monkeypatch.setattr(common.console, "width", 200)
    rows = [{"id": str(i), "gt_choices": ["red", "blue"], "gt_choice": i % 2, "category": cat,
             "answer": ans} for i, (cat, ans) in enumerate([("colour", "(A)"), ("colour", "(A)"),
                                                           ("shape", "(A)"), ("shape", "hmm")])]
    f = write_jsonl(tmp_path / "mc.jsonl", rows)
    result = runner.invoke(app, ["score", "--metric", "multiple_choice", "--answers", str(f), "--json", "--no-ci"])
    assert result.exit_code == 0, output(result)
    data = json.loads(result.stdout)
    assert data["accuracy"] == 50.0 and data["uncategorized"] == 0  # rows 0 and 2 right, row 3 unread
    assert data["categories"] == {"colour": {"accuracy": 50.0, "questions": 2, "correct": 1, "unparsed": 0},
                                  "shape": {"accuracy": 50.0, "questions": 2, "correct": 1, "unparsed": 1}}
    result = runner.invoke(app, ["score", "--metric", "multiple_choice", "--answers", str(f)])
    assert result.exit_code == 0 and "accuracy per category" in output(result) and "shape" in output(result)
