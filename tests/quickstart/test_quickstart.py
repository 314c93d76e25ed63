"""The quickstart end to end: a shortened run in the default suite, the full run as a slow test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lamm.cli.main import app

SMALL = ["bench_limit=12", "n_train_2d=60", "n_test_2d=16", "n_train_objects_3d=40", "n_test_objects_3d=12",
         "n_train_scenes_3d=14", "n_test_scenes_3d=6", "micro_batch_size=8"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("qs")
    res = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--minutes", "0.25", *SMALL, "cpu_threads=1"])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_every_artifact_exists_validates_and_loads(short_run):
    from lamm.data.records import validate_file
    from lamm.model.checkpoint import load_checkpoint

    out, output = short_run
    summary = json.loads((out / "summary.json").read_text())
    paths = {k: Path(v) for k, v in summary["paths"].items()}
    for name, path in paths.items():
        assert path.exists(), f"{name}: {path} missing"
    synth = paths["synthetic data"]
    for f in [*sorted((out / "data").glob("*.json")), *sorted((out / "data" / "by_task").glob("*.json"))]:
        if f.name in ("stats.json", "build_report.json"):
            continue
        report = validate_file(f, root=synth)
        assert report.ok and report.n_records > 0, [str(p) for p in report.problems[:5]]
    for f in sorted((synth / "benchmark" / "test").glob("*.json")):
        assert validate_file(f, root=synth).ok
    model = load_checkpoint(paths["trained model"])
    assert model.num_media_tokens("image") > 0
    # both benchmark runs scored every task of the suite
    for which in ("untrained", "trained"):
        assert len(summary[which]) == 10 and all(v["n"] > 0 for v in summary[which].values())
    html = (out / "report.html").read_text()
    assert "<svg" in html and "synth_classification" in html
    assert not any(ext in html for ext in ('src="http', "src='http", 'href="http', "<script", "@import"))
    md = (out / "report.md").read_text()
    assert "| synth_counting | accuracy |" in md
    assert "trained model" in output


def test_loss_fell(short_run):
    out, _ = short_run
    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) >= 10
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_rerun_resumes_without_redoing_work(short_run):
    out, _ = short_run
    before = json.loads((out / "summary.json").read_text())
    ckpt_mtime = Path(before["paths"]["trained model"]).stat().st_mtime
    res = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--minutes", "0.25", *SMALL, "cpu_threads=1"])
    assert res.exit_code == 0, res.output
    after = json.loads((out / "summary.json").read_text())
    assert after["trained"] == before["trained"] and after["untrained"] == before["untrained"]
    assert Path(after["paths"]["trained model"]).stat().st_mtime == ckpt_mtime
    runs = [json.loads((p / "run_info.json").read_text()) for p in (out / "bench" / "trained").iterdir()
            if (p / "run_info.json").exists()]
    assert runs and all(r["generated"] == 0 for r in runs)  # every answer came from the cache


def test_rerun_with_other_settings_is_refused(short_run):
    """Resuming with another seed would pair seed-0 instructions and model with seed-1 images."""
    out, _ = short_run
    before = (out / "quickstart_config.yaml").read_text()
    res = CliRunner().invoke(app, ["quickstart", "--out", str(out), "--minutes", "0.25", "--seed", "1", *SMALL,
                                   "cpu_threads=1"])
    assert res.exit_code == 2, res.output
    assert "seed: 0 → 1" in res.output and "use another --out" in res.output
    assert (out / "quickstart_config.yaml").read_text() == before  # nothing touched


@pytest.mark.slow
def test_full_quickstart_beats_chance(tmp_path):
    """The README's main job with default settings: the trained model clears every target."""
    res = CliRunner().invoke(app, ["quickstart", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    from lamm.quickstart import TARGETS
    from lamm.quickstart_report import target_rows

    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {r["task"]: r for r in target_rows(summary["untrained"], summary["trained"], TARGETS)}
    for task in TARGETS:
        assert rows[task]["met"], rows[task]


def test_curriculum_shares_cover_every_step():
    from lamm.quickstart import CURRICULUM, QuickstartConfig, stage_steps

    assert abs(sum(share for *_, share in CURRICULUM) - 1.0) < 1e-9
    for minutes in (0.25, 1.0, 7.0, 10.0):
        cfg = QuickstartConfig(minutes=minutes)
        assert sum(stage_steps(cfg)) == cfg.steps and min(stage_steps(cfg)) >= 5
    assert stage_steps(QuickstartConfig(minutes=7.0)) == [168, 235, 437]


def test_merge_turns_groups_questions_of_one_image():
    from lamm.quickstart import merge_turns

    def rec(i, image, q):
        return {"id": f"r{i}", "image": image, "task_type": "VQA", "template_id": f"t{i}",
                "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": f"a{i}"}]}

    recs = [rec(0, "a.png", "q0"), rec(1, "b.png", "q1"), rec(2, "a.png", "q2"), rec(3, "a.png", "q3")]
    merged = merge_turns(recs, 2)
    assert [r["id"] for r in merged] == ["r0", "r3", "r1"]
    assert [t["value"] for t in merged[0]["conversations"]] == ["q0", "a0", "q2", "a2"]
    assert merged[0]["template_id"] == "t0|t2" and merged[0]["image"] == "a.png"
    assert len(merged[1]["conversations"]) == 2 and merged[2]["conversations"] == recs[1]["conversations"]
    assert sorted(r["id"] for r in merge_turns(recs, 1)) == ["r0", "r1", "r2", "r3"]


def test_learning_curve_survives_a_non_finite_loss():
    """One diverged step (NaN loss) must not turn every coordinate of the curve into NaN."""
    from lamm.quickstart_report import _curve_svg

    svg = _curve_svg([{"step": 1, "loss": float("nan")}, {"step": 2, "loss": 2.0}, {"step": 3, "loss": 1.0}])
    assert "1 step(s) with a NaN / inf loss not drawn" in svg
    assert "nan," not in svg.lower() and ",nan" not in svg.lower()
