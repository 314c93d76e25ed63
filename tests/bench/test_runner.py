"""The runner: every LAMM recipe end to end with the dummy model, outputs, cache reuse, --limit, SIGKILL
and resume without regenerating, suites, and the CLI commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import LAMM_FILES, CountingEngine, make_lamm_benchmark, make_synth_layout

from lamm.bench.cache import ResponseCache
from lamm.bench.recipe import Recipe, list_recipes, load_recipe, recipe_hash
from lamm.bench.runner import run_recipe, run_suite
from lamm.bench.scenarios import MissingDataError, ScenarioError
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.engine import LoglikelihoodResult

HERE = Path(__file__).parent
LAMM_RECIPES = sorted(n for n, p in list_recipes().items()
                      if load_recipe(p).scenario.name in LAMM_FILES)


@pytest.fixture(scope="module")
def lamm_root(tmp_path_factory) -> Path:
    return make_lamm_benchmark(tmp_path_factory.mktemp("lamm"))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_lamm_scenario_has_a_recipe():
    assert {load_recipe(r).scenario.name for r in LAMM_RECIPES} == set(LAMM_FILES)


@pytest.mark.parametrize("recipe", LAMM_RECIPES)
def test_run_each_lamm_recipe_with_dummy(lamm_root, tmp_path, recipe):
    out = tmp_path / "run"
    res = run_recipe(recipe, "dummy", out_dir=out, root=lamm_root, show_progress=False)
    r = res.results
    for f in ("answers.jsonl", "results.json", "report.md", "recipe.yaml", "run_info.json", "log.jsonl", "cache.sqlite"):
        assert (out / f).is_file(), f
    assert json.loads((out / "results.json").read_text()) == r
    rec = load_recipe(recipe)
    assert r["recipe_hash"] == recipe_hash(rec) and r["model_fingerprint"] == "dummy:echo"
    # circular: unparsed counts rotations (3 per record)
    assert r["n"] == r["n_records"] == 3 and 0 <= r["unparsed"] <= (9 if rec.scenario.circular else 3)
    assert r["headline"] in r["metrics"] and r["headline"] in r["ci"]
    assert set(r["versions"]) == {"lamm", "torch", "transformers"}
    rows = _rows(out / "answers.jsonl")
    ids = [f"{LAMM_FILES[rec.scenario.name][1]}_{i}" for i in range(3)]
    if rec.scenario.circular:  # every rotation of each record's 3 options, rotation 0 under the record's id
        ids = [i if k == 0 else f"{i}#c{k}" for i in ids for k in range(3)]
        assert r["headline"] == "circular_accuracy" and r["n_questions"] == 9
    assert [row["id"] for row in rows] == ids
    for row in rows:
        assert {"prompt", "answer", "parsed", "unparsed", "scores", "question", "media"} <= set(row)
        assert row["scores"]
    if rec.scenario.name == "LSP":
        assert r["n_questions"] == 42 and len(rows[0]["answer"]) == 14
    if rec.inferencer.type == "ppl":
        assert all(abs(sum(row["extra"]["option_probs"]) - 1) < 1e-9 for row in rows)
    assert res.n_generated == r["n_questions"] and res.n_cached == 0
    assert r["headline"] in (out / "report.md").read_text()
    # a rerun answers from the cache and writes the same results
    again = run_recipe(recipe, "dummy", out_dir=out, root=lamm_root, show_progress=False)
    assert again.n_generated == 0 and again.results == r


def test_limit_and_errors(tmp_path):
    root = make_lamm_benchmark(tmp_path / "data", n=10, scenarios=["FSC147", "CIFAR10"])
    a = run_recipe("fsc147", "dummy", out_dir=tmp_path / "a", root=root, limit=4, show_progress=False)
    assert a.results["n"] == 4 and a.results["n_records"] == 10 and a.results["limit"] == 4
    ids = [row["id"] for row in _rows(tmp_path / "a" / "answers.jsonl")]
    b = run_recipe("fsc147", "dummy", out_dir=tmp_path / "a", root=root, limit=6, show_progress=False)
    assert b.n_generated == 2 and set(ids) <= {row["id"] for row in _rows(tmp_path / "a" / "answers.jsonl")}
    recs = json.loads((root / "Counting_FSC147.json").read_text())
    del recs[1]["num"]
    (root / "Counting_FSC147.json").write_text(json.dumps(recs))
    with pytest.raises(ScenarioError, match=r"Counting_FSC147\.json: record 1 \(id 'count_1'\): field 'num'"):
        run_recipe("fsc147", "dummy", out_dir=tmp_path / "b", root=root, show_progress=False)
    with pytest.raises(ValueError, match="needs answer options"):
        run_recipe(load_recipe("fsc147", ["inferencer.type=ppl"]), "dummy", out_dir=tmp_path / "c", root=root,
                   show_progress=False)


def test_sigkill_then_resume_generates_each_sample_once(tmp_path):
    root = make_lamm_benchmark(tmp_path / "data", n=6, scenarios=["FSC147"])
    out, log, ready = tmp_path / "run", tmp_path / "calls.log", tmp_path / "ready"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(HERE / "_slow_run.py"), "fsc147", str(root), str(out), str(log),
                             str(ready), "3", "inferencer.batch_size=1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "the run never reached its 4th generation"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: blocked inside the 4th generation
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.json").exists()
    recipe = load_recipe("fsc147", ["inferencer.batch_size=1"])
    with ResponseCache(out / "cache.sqlite") as c:
        assert c.count("dummy:echo", recipe_hash(recipe)) == 3
    resumed = run_recipe(recipe, CountingEngine(str(log)), out_dir=out, root=root, show_progress=False)
    assert resumed.n_generated == 3 and resumed.n_cached == 3
    calls = log.read_text().split()
    assert len(calls) == 6 and len(set(calls)) == 6, "no sample was generated twice"
    clean = run_recipe(recipe, "dummy", out_dir=tmp_path / "clean", root=root, show_progress=False)
    assert clean.n_generated == 6
    assert (out / "results.json").read_bytes() == (tmp_path / "clean" / "results.json").read_bytes()
    assert (out / "answers.jsonl").read_bytes() == (tmp_path / "clean" / "answers.jsonl").read_bytes()


def test_synthetic_suite_and_skips(tmp_path):
    root = make_synth_layout(tmp_path / "synth")  # only 3 of the 10 synthetic files
    with pytest.raises(MissingDataError):
        run_suite("synthetic", "dummy", out_dir=tmp_path / "s1", root=root, show_progress=False)
    summary = run_suite("synthetic", "dummy", out_dir=tmp_path / "s2", root=root, skip_missing=True,
                        show_progress=False, limit=2)
    assert {r["recipe"] for r in summary["runs"]} == {"synth_classification", "synth_vqa", "synth3d_grounding"}
    assert len(summary["skipped"]) == 7
    assert (tmp_path / "s2" / "leaderboard.html").is_file()
    assert json.loads((tmp_path / "s2" / "suite.json").read_text())["skipped"] == summary["skipped"]
    assert json.loads((tmp_path / "s2" / "synth_vqa" / "results.json").read_text())["n"] == 2


def _cli() -> typer.Typer:
    from lamm.cli.bench_runs import register

    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """bench"""

    register(app)
    return app


def test_cli_run_recipes_report(tmp_path, lamm_root, monkeypatch):
    from lamm.cli import common

    monkeypatch.setattr(common.console, "width", 250)  # tables must not be cut to 80 columns
    runner = CliRunner()
    app = _cli()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["run", "--model", "dummy", "--recipe", "scienceqa", "--root", str(lamm_root),
                              "--out", str(out), "--no-progress", "--json", "inferencer.batch_size=2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["recipe"] == "scienceqa"
    res = runner.invoke(app, ["run", "--model", "dummy", "--recipe", "scienceqa", "--root", str(tmp_path / "none"),
                              "--out", str(out)])
    assert res.exit_code == 2 and "benchmark file not found" in res.output
    res = runner.invoke(app, ["recipes"])
    assert res.exit_code == 0 and "scienceqa_ppl" in res.output
    res = runner.invoke(app, ["recipes", "--scenarios"])
    assert res.exit_code == 0 and "Synth3D-Grounding" in res.output
    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0 and (out / "leaderboard.html").is_file()


def test_recipe_object_and_default_recipe(tmp_path, lamm_root):
    r = Recipe.model_validate({"name": "t", "scenario": {"name": "SVT"}, "inferencer": {"type": "cot"}})
    res = run_recipe(r, "dummy", out_dir=tmp_path / "t", root=lamm_root, show_progress=False)
    assert res.n_generated == 3
    assert all("rationale" in row["extra"] for row in _rows(tmp_path / "t" / "answers.jsonl"))
    res = run_recipe("Locating-FSC147", "dummy", out_dir=tmp_path / "d", root=lamm_root, show_progress=False)
    assert res.results["recipe"] == "Locating-FSC147"


def test_cache_hit_with_other_content_is_regenerated(tmp_path):
    """Same recipe, model and sample ids, other data: answers are asked again, counted, never reused."""
    root_a = make_lamm_benchmark(tmp_path / "a", n=4, scenarios=["ScienceQA"])
    root_b = make_lamm_benchmark(tmp_path / "b", n=4, scenarios=["ScienceQA"])
    f = root_b / "VQA_ScienceQA.json"
    recs = json.loads(f.read_text())
    for r in recs:  # a different question set under the same ids
        r["query"] = "Which animal? Options: (A) cat (B) dog (C) cow"
        r["gt_choices"] = ["cat", "dog", "cow"]
    f.write_text(json.dumps(recs))
    out = tmp_path / "run"
    a = run_recipe("scienceqa", "dummy", out_dir=out, root=root_a, show_progress=False)
    assert a.n_generated == 4 and a.n_stale == 0
    assert json.loads((out / "run_info.json").read_text())["stale_regenerated"] == 0
    b = run_recipe("scienceqa", "dummy", out_dir=out, root=root_b, show_progress=False)
    assert (b.n_generated, b.n_cached, b.n_stale) == (4, 0, 4)
    assert json.loads((out / "run_info.json").read_text())["stale_regenerated"] == 4
    rows = _rows(out / "answers.jsonl")
    assert all("Which animal?" in row["prompt"] for row in rows)
    # unchanged data: everything from the cache again
    again = run_recipe("scienceqa", "dummy", out_dir=out, root=root_b, show_progress=False)
    assert (again.n_generated, again.n_cached, again.n_stale) == (0, 4, 0)
    assert again.results == b.results
    # one image rewritten (regenerated data): only that sample is asked again
    img = root_b / recs[2]["image"]
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    one = run_recipe("scienceqa", "dummy", out_dir=out, root=root_b, show_progress=False)
    assert (one.n_generated, one.n_cached, one.n_stale) == (1, 3, 1)
    # an entry cached before fingerprints existed cannot be checked: regenerated
    recipe = load_recipe("scienceqa")
    with ResponseCache(out / "cache.sqlite") as c:
        legacy_entry = {"answer": "old", "prompt": "p", "extra": {}}  # no "fingerprint"
        c.put_many("dummy:echo", recipe_hash(recipe), {recs[0]["id"]: legacy_entry})
    legacy = run_recipe("scienceqa", "dummy", out_dir=out, root=root_b, show_progress=False)
    assert (legacy.n_generated, legacy.n_stale) == (1, 1)
    assert _rows(out / "answers.jsonl")[0]["answer"] != "old"


class TieEngine(DummyEngine):
    """The dummy engine with every option scored the same: every ppl choice is a tie."""

    def loglikelihood(self, requests, progress=None):
        return [LoglikelihoodResult(-2.0, -1.0, 2) for _ in requests]


def test_ppl_ties_are_counted_in_results_and_report(tmp_path):
    root = make_synth_layout(tmp_path / "synth")
    recipe = load_recipe("synth_vqa", ["inferencer.type=ppl"])
    out = run_recipe(recipe, TieEngine("echo"), out_dir=tmp_path / "tie", root=root, show_progress=False)
    assert out.results["ppl_ties"] == 4 == out.results["n_questions"]
    rows = _rows(tmp_path / "tie" / "answers.jsonl")
    assert all(r["extra"]["tied"] == [0, 1, 2] and r["extra"]["choice"] == 0 for r in rows)
    assert "ppl ties: 4 of 4 questions" in (tmp_path / "tie" / "report.md").read_text()
    out = run_recipe(recipe, "dummy", out_dir=tmp_path / "plain", root=root, show_progress=False)
    rows = _rows(tmp_path / "plain" / "answers.jsonl")
    assert out.results["ppl_ties"] == sum("tied" in r["extra"] for r in rows)
    direct = run_recipe("synth_vqa", "dummy", out_dir=tmp_path / "direct", root=root, show_progress=False)
    assert "ppl_ties" not in direct.results


def test_cifar10_ppl_offers_every_class_even_from_a_one_label_file(tmp_path):
    root = make_lamm_benchmark(tmp_path / "data", n=4, scenarios=["CIFAR10"])
    f = root / "Classification_CIFAR10.json"
    f.write_text(json.dumps([dict(r, label="cat") for r in json.loads(f.read_text())]))
    out = run_recipe(load_recipe("cifar10", ["inferencer.type=ppl"]), "dummy", out_dir=tmp_path / "run",
                     root=root, show_progress=False)
    assert out.results["chance"] == 10.0
    assert all(len(r["extra"]["options"]) == 10 for r in _rows(tmp_path / "run" / "answers.jsonl"))
    # a generic file with one label offers one option: ppl refuses it, naming the sample
    recipe = Recipe.model_validate({"name": "one", "scenario": {
        "name": "generic", "file": "Classification_CIFAR10.json", "metric": "classification"},
        "inferencer": {"type": "ppl"}})
    with pytest.raises(ValueError, match=r"sample 'cls_0' offers 1 answer option"):
        run_recipe(recipe, "dummy", out_dir=tmp_path / "one", root=root, show_progress=False)


def test_suite_lists_recipe_files_relative_to_itself(tmp_path, monkeypatch):
    root = make_synth_layout(tmp_path / "synth")
    suite_dir = tmp_path / "mysuite"
    suite_dir.mkdir()
    (suite_dir / "r1.yaml").write_text("name: r1\nscenario: {name: Synth-VQA}\n")
    (suite_dir / "s.yaml").write_text("name: s\nrecipes: [r1.yaml]\n")
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    summary = run_suite("mysuite/s.yaml", "dummy", out_dir=tmp_path / "out", root=root, show_progress=False)
    assert [r["recipe"] for r in summary["runs"]] == ["r1"]


def test_a_missing_image_of_a_size_dependent_metric_fails_before_any_answer(tmp_path):
    """LSP keypoints scale by the image size: a missing image stops the run at its start, naming the
    record and field, before the model is asked anything."""
    root = make_lamm_benchmark(tmp_path / "root", n=3, scenarios=["LSP"])
    (root / "lsp_media" / "1.png").unlink()
    engine = CountingEngine(str(tmp_path / "log.jsonl"))
    with pytest.raises(ScenarioError, match=r"record 1 \(id 'lsp_1'\): field 'image': .*1.png: cannot read"):
        run_recipe("LSP", engine, out_dir=tmp_path / "out", root=root, show_progress=False)
    assert not (tmp_path / "log.jsonl").exists() or not (tmp_path / "log.jsonl").read_text().strip()


def test_a_log_line_cut_by_a_kill_is_cut_before_the_next_run_appends(tmp_path):
    """A kill mid-append leaves log.jsonl ending in a cut line; the next run cuts it off (and says how many
    bytes it cut) instead of gluing its first event onto it: every line of the log parses."""
    root = make_lamm_benchmark(tmp_path / "data", n=2, scenarios=["FSC147"])
    out = tmp_path / "run"
    out.mkdir()
    whole = json.dumps({"event": "start", "recipe": "fsc147"}) + "\n"
    torn = '{"event": "batch", "rank": 0, "n": 2, "do'
    (out / "log.jsonl").write_text(whole + torn, encoding="utf-8")
    run_recipe("fsc147", "dummy", out_dir=out, root=root, show_progress=False)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[0] == json.loads(whole) and events[1]["event"] == "start"
    assert events[1]["log_cut_bytes"] == len(torn) and events[-1]["event"] == "done"
    # an intact log is left alone
    run_recipe("fsc147", "dummy", out_dir=out, root=root, show_progress=False)
    events = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert events[0] == json.loads(whole) and "log_cut_bytes" not in events[-2]
