"""Calibration desideratum: ECE over equal-count bins by hand, reliability bins and diagram, the summary,
and the runner writing ``calibration`` + ``reliability.svg`` for ppl recipes with the dummy engine."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_synth_layout

from lamm.bench.desiderata.calibration import (
    calibration_from_answers,
    calibration_summary,
    expected_calibration_error,
    reliability_bins,
    reliability_svg,
)
from lamm.bench.runner import run_recipe


def _two_bin_set() -> tuple[list[float], list[int]]:
    """20 samples, shuffled: the 10 least confident have mean confidence 0.55 and 7 correct; the 10 most
    confident mean confidence 0.95 and 6 correct. With 2 bins: ECE = 0.5·|0.70−0.55| + 0.5·|0.60−0.95|."""
    low = [(0.5, 1)] * 4 + [(0.6, 1)] * 3 + [(0.5, 0)] + [(0.6, 0)] * 2
    high = [(0.9, 1)] * 2 + [(1.0, 1)] * 4 + [(0.9, 0)] * 3 + [(1.0, 0)]
    pairs = low + high
    random.Random(3).shuffle(pairs)
    return [c for c, _ in pairs], [k for _, k in pairs]


def test_ece_by_hand_two_bins():
    conf, corr = _two_bin_set()
    assert expected_calibration_error(conf, corr, n_bins=2) == pytest.approx(100 * (0.5 * 0.15 + 0.5 * 0.35))
    bins = reliability_bins(conf, corr, n_bins=2)
    assert [b["n"] for b in bins] == [10, 10]
    assert bins[0]["confidence"] == pytest.approx(55.0) and bins[0]["accuracy"] == pytest.approx(70.0)
    assert bins[1]["confidence"] == pytest.approx(95.0) and bins[1]["accuracy"] == pytest.approx(60.0)
    assert (bins[0]["conf_min"], bins[0]["conf_max"], bins[1]["conf_min"], bins[1]["conf_max"]) == (50, 60, 90, 100)


def test_ece_default_ten_bins_by_hand():
    # 20 samples, 10 bins of 2: confidences 0.05, 0.1, ..., 1.0, correct every third sample
    conf = [round(0.05 * (k + 1), 2) for k in range(20)]
    corr = [int(k % 3 == 0) for k in range(20)]
    expected = sum(2 * abs((corr[2 * b] + corr[2 * b + 1]) / 2 - (conf[2 * b] + conf[2 * b + 1]) / 2)
                   for b in range(10)) / 20
    assert expected_calibration_error(conf[::-1], corr[::-1]) == pytest.approx(100 * expected)


def test_perfectly_calibrated_is_zero_and_confidently_wrong_is_100():
    conf = [0.8] * 10 + [0.3] * 10
    corr = [1] * 8 + [0] * 2 + [1] * 3 + [0] * 7
    assert expected_calibration_error(conf, corr, n_bins=2) == pytest.approx(0.0, abs=1e-9)
    assert expected_calibration_error([1.0] * 50, [False] * 50) == pytest.approx(100.0)
    assert expected_calibration_error([0.99] * 50, [0] * 50) == pytest.approx(99.0)
    assert expected_calibration_error([0.99] * 50, [1] * 50) == pytest.approx(1.0)


def test_bin_sizes_ties_and_small_inputs():
    assert [b["n"] for b in reliability_bins([0.5] * 23, [1] * 23)] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    # fewer samples than bins: one bin per sample, so ECE = mean |correct − confidence|
    assert [b["n"] for b in reliability_bins([0.2, 0.9, 0.5], [0, 1, 1])] == [1, 1, 1]
    assert expected_calibration_error([0.2, 0.9, 0.5], [0, 1, 1]) == pytest.approx(100 * (0.2 + 0.1 + 0.5) / 3)
    # ties keep input order: bins {0, 1} and {2, 3} → |0.5−0.5|·2 + |0.5−0.7|·2, over 4
    assert expected_calibration_error([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1], n_bins=2) == pytest.approx(10.0)
    assert math.isnan(expected_calibration_error([], []))
    assert reliability_bins([], []) == []


def test_input_errors():
    with pytest.raises(ValueError, match="pair up"):
        expected_calibration_error([0.5, 0.6], [1])
    with pytest.raises(ValueError, match=r"confidence 1 is 1\.5"):
        expected_calibration_error([0.5, 1.5], [1, 0])
    with pytest.raises(ValueError, match="probability"):
        expected_calibration_error([float("nan")], [1])
    with pytest.raises(ValueError, match="0/1"):
        expected_calibration_error([0.5], [2])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0.5], [1], n_bins=0)
    with pytest.raises(ValueError, match=r"row 1 \(id 'b'\): 'option_probs'"):
        calibration_summary([{"id": "a", "option_probs": [0.5, 0.5], "correct": True}, {"id": "b", "correct": True}])


def test_summary_fields_and_determinism():
    conf, corr = _two_bin_set()
    rows = [{"option_probs": [c, 1 - c], "correct": bool(k)} for c, k in zip(conf, corr)]
    s = calibration_summary(rows, n_bins=2, seed=1, n_boot=200)
    assert s["n"] == 20 and s["n_bins"] == 2 and len(s["bins"]) == 2
    assert s["ece"] == pytest.approx(25.0)
    assert s["accuracy"] == pytest.approx(65.0) and s["mean_confidence"] == pytest.approx(75.0)
    assert s["overconfidence"] == pytest.approx(10.0)
    lo, hi = s["ece_ci"]
    assert 0.0 <= lo <= hi <= 100.0
    assert calibration_summary(rows, n_bins=2, seed=1, n_boot=200) == s
    assert calibration_summary(rows, ci=False)["ece_ci"] is None
    empty = calibration_summary([])
    assert empty["n"] == 0 and math.isnan(empty["ece"]) and empty["bins"] == [] and empty["ece_ci"] is None


def test_calibration_from_answers_rows():
    lines = [{"id": "a", "extra": {"option_probs": [0.7, 0.3]}, "scores": {"accuracy": 1.0}},
             {"id": "b", "extra": {"option_probs": [0.4, 0.6]}, "scores": {"accuracy": 0.0}},
             {"id": "c", "extra": {"option_probs": [0.1, 0.9]}, "scores": {"accuracy": [2, 2]}}]
    s = calibration_from_answers(lines, "accuracy", ci=False)
    assert s["n"] == 3 and s["accuracy"] == pytest.approx(200 / 3)
    assert s["ece"] == pytest.approx(100 * (0.3 + 0.6 + 0.1) / 3)
    assert calibration_from_answers(lines[:2] + [{"id": "c", "extra": {}, "scores": {}}], "accuracy") is None
    assert calibration_from_answers([{"id": "lsp", "extra": {"head": {"option_probs": [1.0]}}}], "pck") is None
    assert calibration_from_answers([], "accuracy") is None


def test_reliability_svg_is_self_contained_and_deterministic():
    conf, corr = _two_bin_set()
    bins = reliability_bins(conf, corr, n_bins=2)
    svg = reliability_svg(bins, "run <1>", ece=25.0)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "run &lt;1&gt; — ECE 25.00%" in svg
    assert svg.count("<rect") == 1 + len(bins) and svg.count("<circle") == len(bins)
    assert "script" not in svg and "http://www.w3.org/2000/svg" in svg and "href" not in svg
    assert reliability_svg(bins, "run <1>", ece=25.0) == svg
    assert reliability_svg([], "") .count("<rect") == 1


@pytest.mark.parametrize("recipe", ["synth_classification_ppl", "synth_vqa_ppl"])
def test_runner_writes_calibration_for_ppl_recipes(tmp_path, recipe):
    root = make_synth_layout(tmp_path / "synth", n_train=2, n_test=12)
    out = tmp_path / "run"
    r = run_recipe(recipe, "dummy", out_dir=out, root=root, show_progress=False).results
    cal = r["calibration"]
    assert {"ece", "ece_ci", "accuracy", "mean_confidence", "overconfidence", "n", "n_bins", "bins"} <= set(cal)
    assert cal["n"] == 12 and cal["n_bins"] == 10 and [b["n"] for b in cal["bins"]] == [2, 2] + [1] * 8
    assert cal["accuracy"] == pytest.approx(r["metrics"]["accuracy"])
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    conf = [max(row["extra"]["option_probs"]) for row in rows]
    corr = [row["scores"]["accuracy"] == 1.0 for row in rows]
    assert cal["ece"] == pytest.approx(expected_calibration_error(conf, corr))
    assert json.loads((out / "results.json").read_text())["calibration"] == cal
    svg = (out / "reliability.svg").read_text()
    assert svg.startswith("<svg") and recipe in svg
    assert "ECE" in (out / "report.md").read_text()
    # a resumed run (all answers cached) writes the same bytes
    before = (out / "results.json").read_bytes()
    run_recipe(recipe, "dummy", out_dir=out, root=root, show_progress=False)
    assert (out / "results.json").read_bytes() == before and (out / "reliability.svg").read_text() == svg


def test_runner_direct_run_has_no_calibration(tmp_path):
    root = make_synth_layout(tmp_path / "synth", n_train=2, n_test=3)
    r = run_recipe("synth_vqa", "dummy", out_dir=tmp_path / "run", root=root, show_progress=False).results
    assert "calibration" not in r and not (tmp_path / "run" / "reliability.svg").exists()


def test_doctests():
    import doctest

    import lamm.bench.desiderata.calibration as mod

    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0
