"""Record validation: one malformed fixture per problem, all reported, none stopping the others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lamm.cli.main import app
from lamm.data.records import read_records, validate_file, validate_records, write_records

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "examples"


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "img" / "ok.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "pcl").mkdir()
    np.save(tmp_path / "pcl" / "ok.npy", np.zeros((16, 6), dtype=np.float32))
    return tmp_path


def good(**kw):
    rec = {"id": "r", "image": "img/ok.png", "task_type": "conversation",
           "conversations": [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "A square."}]}
    rec.update(kw)
    return rec


def turns(*pairs):
    return [{"from": f, "value": v} for f, v in pairs]


# (name, record, expected field, expected severity)
CASES = [
    ("missing conversations", {"id": "a", "image": "img/ok.png", "task_type": "VQA"}, "conversations", "error"),
    ("role not human/gpt", good(conversations=turns(("human", "q"), ("assistant", "a"))), "conversations[1].from", "error"),
    ("starts with gpt", good(conversations=turns(("gpt", "a"), ("human", "q"))), "conversations[0].from", "error"),
    ("not alternating", good(conversations=turns(("human", "q"), ("human", "q2"))), "conversations[1].from", "error"),
    ("both image and pcl", good(pcl="pcl/ok.npy"), "image|pcl", "error"),
    ("text-only with a media task type", {k: v for k, v in good(task_type="VQA").items() if k != "image"},
     "task_type", "warning"),
    ("unknown task type", good(task_type="dance"), "task_type", "warning"),
    ("empty value", good(conversations=turns(("human", "  "), ("gpt", "a"))), "conversations[0].value", "error"),
    ("media missing", good(image="img/nope.png"), "image", "error"),
    ("media does not load", good(image="img/broken.png"), "image", "error"),
    ("bad 2D box", good(task_type="detection", conversations=turns(("human", "boxes?"), ("gpt", "cat [0.5, 0.2, 0.1, 0.9]"))),
     "conversations[1].value", "error"),
    ("bad 3D box", {"id": "p", "pcl": "pcl/ok.npy", "task_type": "detection3d",
                    "conversations": turns(("human", "q"), ("gpt", "chair [0, 0, 0, 1, -1, 1]"))}, "conversations[1].value", "error"),
    ("ends with human", good(conversations=turns(("human", "q"), ("gpt", "a"), ("human", "q2"))), "conversations", "error"),
    ("missing id", {k: v for k, v in good().items() if k != "id"}, "id", "error"),
]


@pytest.mark.parametrize("name,record,field,severity", CASES, ids=[c[0] for c in CASES])
def test_each_problem_is_caught(root, name, record, field, severity):
    report = validate_records([good(id="fine"), record], file="f.json", root=root)
    hits = [p for p in report.problems if p.index == 1 and p.field == field and p.severity == severity]
    assert hits, f"{name}: expected a {severity} on {field}, got {[str(p) for p in report.problems]}"
    assert all(p.index == 1 for p in report.problems), "the good record must not be flagged"
    assert hits[0].file == "f.json"
    assert report.ok == (severity != "error")


def test_all_problems_reported_in_one_pass(root):
    records = [c[1] for c in CASES]
    report = validate_records(records, file="all.json", root=root)
    flagged = {p.index for p in report.problems}
    assert flagged == set(range(len(CASES)))
    assert report.n_invalid == sum(c[3] == "error" for c in CASES)


def test_misspelled_commonsenseqa_accepted(root):
    report = validate_records([good(task_type="commomsenseqa")], root=root)
    assert report.problems == [] and report.task_types["commonsenseqa"] == 1


def test_placeholder_and_pcl_record_ok(root):
    rec = {"id": "p1", "pcl": "pcl/ok.npy", "task_type": "classification3d",
           "conversations": turns(("human", "<pcl>\nWhat object is this?"), ("gpt", "A chair."))}
    assert validate_records([rec], root=root).ok


def test_benchmark_records(root):
    recs = [
        {"id": "1", "image": "img/ok.png", "query": "What is it?", "label": "cat"},
        {"id": "2", "image": "img/ok.png", "query": "Find", "object": [{"label": "cat", "bbox": [0.3, 0.2, 0.1, 0.5]}]},
        {"id": "3", "image": "img/ok.png", "query": "Pick", "gt_choice": 5, "gt_choices": ["a", "b"]},
        {"id": "4", "pcl": "pcl/ok.npy", "query": "Where", "object": [1, 2, 3, 0.5, 0.5, -1]},
        {"id": "5", "image": "img/ok.png", "query": ""},
    ]
    report = validate_records(recs, file="b.json", root=root, kind="benchmark")
    fields = {(p.index, p.field) for p in report.problems}
    assert (1, "object[0].bbox") in fields
    assert (2, "gt_choice") in fields
    assert (3, "object") in fields
    assert (4, "query") in fields and (4, "ground truth") in fields
    assert 0 not in {p.index for p in report.problems}


def test_reference_examples_validate():
    for f in sorted(EXAMPLES.glob("*.json")):
        report = validate_file(f, check_media=False)
        assert report.ok, [str(p) for p in report.problems]


def test_read_write_roundtrip(tmp_path):
    recs = [good(id=str(i)) for i in range(3)]
    write_records(tmp_path / "a.json", recs)
    write_records(tmp_path / "a.jsonl", recs)
    assert read_records(tmp_path / "a.json") == recs == read_records(tmp_path / "a.jsonl")


def test_cli_validate_exit_codes_and_json(root):
    ok = root / "ok.json"
    write_records(ok, [good(id="1"), good(id="2")])
    bad = root / "bad.jsonl"
    write_records(bad, [good(id="1"), CASES[0][1], CASES[4][1]])
    runner = CliRunner()
    res = runner.invoke(app, ["data", "validate", str(ok), "--root", str(root)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "validate", str(bad), "--root", str(root), "--json"])
    assert res.exit_code == 1
    report = json.loads(res.output)
    assert report["ok"] is False
    assert report["files"][0]["n_invalid"] == 2
    assert {p["index"] for p in report["files"][0]["problems"]} == {1, 2}
    res = runner.invoke(app, ["data", "validate", str(root / "missing.json")])
    assert res.exit_code == 2


def test_cli_validate_default_root_is_file_folder(root):
    sub = root / "img"
    write_records(sub / "local.json", [good(id="1", image="ok.png")])
    res = CliRunner().invoke(app, ["data", "validate", str(sub / "local.json")])
    assert res.exit_code == 0, res.output


def test_cli_validate_prints_messages_verbatim_not_as_markup(tmp_path):
    # "[x1, y1, x2, y2]" was eaten as a style tag and "[/...]" crashed the printer (a closing tag)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([{"id": "a[/b]", "image": "x.jpg", "query": "q?",
                                  "object": [{"label": "cat", "bbox": [0.1, 0.2]}]}]))
    res = CliRunner().invoke(app, ["data", "validate", str(bench), "--no-media"])
    assert res.exit_code == 1 and isinstance(res.exception, (SystemExit, type(None))), res.output  # no crash
    flat = " ".join(res.output.split())
    assert "expected 4 numbers [x1, y1, x2, y2], got [0.1, 0.2]" in flat, res.output
    assert "id='a[/b]'" in flat and "[error]" in flat


def test_text_only_instruction_records_are_valid_and_counted(root):
    """LLaVA mixes text-only dialogues into multimodal data: an instruction record without media is valid
    (modality "text"); a benchmark record without media is still an error."""
    text = {k: v for k, v in good(id="t").items() if k != "image"}
    report = validate_records([good(id="i"), text], file="mix.json", root=root, kind="instruction")
    assert report.ok and not report.problems, [str(p) for p in report.problems]
    assert report.modalities == {"image": 1, "text": 1}
    bench = {"id": "b", "query": "What is it?", "label": "cat"}
    report = validate_records([bench], file="b.json", root=root, kind="benchmark")
    assert [(p.field, p.severity) for p in report.problems] == [("image|pcl", "error")]
