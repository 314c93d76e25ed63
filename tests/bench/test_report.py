"""Reports: a leaderboard across models and tasks in Markdown and self-contained HTML with SVG charts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_lamm_benchmark

from lamm.bench.report import Entry, find_results, leaderboard_html, leaderboard_markdown, write_leaderboard
from lamm.bench.runner import run_recipe

MODELS = {"echo": "dummy", "ans": "dummy:constant=The answer is (B). There are 4 [0.2, 0.2]. cat"}
RECIPES = ["scienceqa", "fsc147", "cifar10", "locating_fsc147", "flickr30k"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("runs")
    root = make_lamm_benchmark(base / "data", scenarios=["ScienceQA", "FSC147", "CIFAR10", "Locating-FSC147",
                                                         "Flickr30k"])
    for tag, spec in MODELS.items():
        for r in RECIPES:
            run_recipe(r, spec, out_dir=base / "runs" / tag / r, root=root, show_progress=False)
    return base / "runs"


def test_markdown_leaderboard(runs):
    entries = find_results([runs])
    assert len(entries) == 10
    md = leaderboard_markdown(entries)
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert all(r in header for r in RECIPES) and "fsc147 (mae)" in header
    rows = [line for line in md.splitlines() if line.startswith("| dummy")]
    assert len(rows) == 2 and all(line.count("|") == len(RECIPES) + 2 for line in rows)
    assert "Higher is better except fsc147 (mae)" in md
    cells = dict(zip([c.strip() for c in header.split("|")[2:-1]],
                     [c.strip() for c in next(line for line in rows if "constant" in line).split("|")[2:-1]]))
    assert cells["scienceqa (accuracy)"] == "33.33"  # "(B)" is right for 1 of the 3 records
    assert cells["cifar10 (accuracy)"] == "33.33"  # "cat" is the label of 1 of the 3 records


def test_html_is_self_contained_with_bars_and_radar(runs):
    page = leaderboard_html(find_results([runs]))
    assert page.startswith("<!DOCTYPE html>") and page.count("<table") == 1
    assert "<script" not in page.lower()
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', page)
    assert not links, links
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}
    assert page.count("<svg") == len(RECIPES) + 1  # a bar chart per task + the radar
    radar = page[page.rindex("<svg"):]
    assert radar.count('fill-opacity="0.2"') == len(MODELS)
    for fam in ("multiple_choice", "counting", "classification", "locating", "caption"):
        assert f">{fam}</text>" in radar


def test_write_leaderboard_and_errors(runs, tmp_path):
    paths = write_leaderboard([runs / "echo", runs / "ans" / "fsc147"], tmp_path / "board")
    assert paths["markdown"].is_file() and paths["html"].is_file()
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        find_results([tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="no results.json"):
        find_results([tmp_path / "board"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.json").write_text("{}")
    with pytest.raises(ValueError, match="not a lamm bench results.json"):
        find_results([bad])


def _results(model: str, task: str, family: str, score: float, ci: list[float] | None = None) -> dict:
    return {"model": model, "recipe": task, "scenario": task, "family": family, "headline": "accuracy",
            "score": score, "metrics": {"accuracy": score}, "ci": {"accuracy": ci or [score - 5, score + 5]},
            "n": 10, "n_records": 10, "n_questions": 10, "limit": None, "unparsed": 0,
            "higher_is_better": True, "unscaled": [], "lower_is_better": [], "chance": None, "split": "test",
            "source": f"{task}.json",
            "inferencer": "direct", "instruction": {"prompt_id": "default", "prompt": "{question}"},
            "model_fingerprint": "fp", "recipe_hash": "h", "versions": {"lamm": "0"}}


def test_radar_leaves_off_a_family_a_model_never_ran(tmp_path):
    import json

    for model, runs in (("A", [("cls", "classification", 80.0), ("vqa", "multiple_choice", 60.0),
                               ("pope", "pope", 70.0)]),
                        ("B", [("cls", "classification", 80.0), ("vqa", "multiple_choice", 60.0)])):
        for task, family, score in runs:
            d = tmp_path / model / task
            d.mkdir(parents=True)
            (d / "results.json").write_text(json.dumps(_results(model, task, family, score)))
    page = leaderboard_html(find_results([tmp_path]))
    radar = page[page.rindex("<svg"):page.rindex("</svg>")]
    assert ">classification</text>" in radar and ">multiple_choice</text>" in radar
    assert ">pope</text>" not in radar  # B would be drawn at 0 there, as if it had scored 0
    for pts in re.findall(r'<polygon points="([^"]+)" fill="#', radar):
        assert len(pts.split()) == 2  # one vertex per family every model has
    assert "model B: no run for family pope" in page


def test_intervals_are_printed_with_the_digits_of_their_value():
    from lamm.bench.report import run_report_markdown

    md = run_report_markdown(_results("m", "t", "classification", 66.67, [66.66, 66.68]), [])
    assert "**accuracy: 66.67** [66.66, 66.68]" in md and "| accuracy | 66.67 | [66.66, 66.68] |" in md
    # the HTML table formats the same way
    entry = Entry("m", "t", "classification", _results("m", "t", "classification", 66.67, [66.66, 66.68]),
                  Path("."))
    assert "66.67<small> [66.66, 66.68]</small>" in leaderboard_html([entry])


def test_a_circular_run_has_its_own_column_and_radar_axis(tmp_path):
    """A circular run's headline (circular accuracy) is neither averaged with plain multiple-choice accuracy
    on the radar nor put in the plain run's column, even under the same recipe name."""
    from lamm.bench.recipe import load_recipe
    from lamm.bench.report import family_scores

    root = make_lamm_benchmark(tmp_path / "data", scenarios=["ScienceQA"])
    for tag, spec in MODELS.items():
        run_recipe("scienceqa", spec, out_dir=tmp_path / "runs" / tag / "plain", root=root,
                   show_progress=False)
        run_recipe(load_recipe("scienceqa", ["scenario.circular=true"]), spec,
                   out_dir=tmp_path / "runs" / tag / "circ", root=root, show_progress=False)
    entries = find_results([tmp_path / "runs"])
    assert {(e.task, e.family) for e in entries} == {("scienceqa", "multiple_choice"),
                                                      ("scienceqa (circular)", "multiple_choice (circular)")}
    values = family_scores(entries)
    for e in entries:  # one run per (model, family): each axis is that run's own score, not a mean
        assert values[(e.model, e.family)] == e.results["metrics"][e.results["headline"]]
    # "(B)" for every rotation: right in rotation 0 of 1 record in 3, never in every rotation
    always_b = MODELS["ans"]
    assert values[(always_b, "multiple_choice")] == 100 / 3
    assert values[(always_b, "multiple_choice (circular)")] == 0.0
    md = leaderboard_markdown(entries)
    header = next(line for line in md.splitlines() if line.startswith("| model"))
    assert sorted(c.strip() for c in header.split("|")[2:-1]) == ["scienceqa (accuracy)",
                                                                  "scienceqa (circular) (circular_accuracy)"]
    assert "several runs" not in md
    radar = leaderboard_html(entries)
    radar = radar[radar.rindex("<svg"):]
    assert ">multiple_choice</text>" in radar and ">multiple_choice (circular)</text>" in radar


def test_recipes_lists_whether_a_recipe_is_circular(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from lamm.cli import common
    from lamm.cli.bench_runs import register

    monkeypatch.setattr(common.console, "width", 250)
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """bench"""

    register(app)
    res = CliRunner().invoke(app, ["recipes"])
    assert res.exit_code == 0, res.output
    header = next(line for line in res.output.splitlines() if "inferencer" in line)
    assert header.split("┃")[-2].strip() == "circular"
    cells = {line.split("│")[1].strip(): line.split("│")[-2].strip() for line in res.output.splitlines()
             if line.startswith("│")}
    assert cells["scienceqa_circular"] == "yes" and cells["synth_vqa_circular"] == "yes"
    assert cells["scienceqa"] == "-" and cells["mme"] == "-"
