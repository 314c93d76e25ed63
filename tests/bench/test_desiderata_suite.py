"""``lamm bench desiderata``: the ICL formulas by hand, the six axes from hand-made run records, the radar
SVG's geometry, the configs, and the command end to end on a small synthetic set (dummy model and judge)."""

from __future__ import annotations

import doctest
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamm.bench.desiderata import icl as icl_mod
from lamm.bench.desiderata.icl import icl_summary, riacc, riacc_undefined_reason
from lamm.bench.desiderata.radar import AXES, CENTER, RADIUS, radar_svg
from lamm.bench.desiderata.robustness import rrm
from lamm.bench.desiderata.scores import (
    MAPPINGS,
    calibration_axis,
    hallucination_axis,
    icl_axis,
    instruction_following_axis,
    language_axis,
    robustness_axis,
)
from lamm.bench.desiderata.suite import DesiderataConfig, load_desiderata_config, plan_runs, run_desiderata
from lamm.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "bench" / "desiderata"
SVG = "{http://www.w3.org/2000/svg}"


def test_doctests():
    for mod in (icl_mod,):
        r = doctest.testmod(mod)
        assert r.failed == 0 and r.attempted > 0


# ------------------------------------------------------------------------------------------------ ICL formulas
def test_riacc_by_hand():
    assert riacc(70.0, 60.0, 20.0) == pytest.approx(125.0)  # (70-20)/(60-20)*100
    assert riacc(20.0, 60.0, 20.0) == 0.0 and riacc(60.0, 60.0, 20.0) == 100.0
    assert riacc(10.0, 60.0, 20.0) == pytest.approx(-25.0)  # below chance: not clipped
    assert riacc(33.0, 50.0, 25.0) == rrm(33.0, 50.0, 25.0)  # the very same formula as robustness's RRM
    assert riacc_undefined_reason(70.0, 60.0, 20.0) is None
    for zero in (20.0, 10.0):  # zero-shot not above chance
        assert math.isnan(riacc(50.0, zero, 20.0))
        assert f"zero-shot accuracy {zero:g} is not above chance 20" in riacc_undefined_reason(50.0, zero, 20.0)
    assert math.isnan(riacc(math.nan, 60.0, 20.0)) and riacc_undefined_reason(math.nan, 60, 20) == "ICL accuracy is missing"
    assert math.isnan(riacc(50.0, None, 20.0)) and "zero-shot accuracy is missing" == riacc_undefined_reason(50, None, 20)


def test_icl_summary_by_hand():
    # given out of order: the cells come back in retriever order (random, fixed, topk_text, topk_image), then k
    cells = {("topk_text", 2): 80.0, ("random", 2): 50.0, ("topk_text", 1): 40.0, ("random", 1): 70.0}
    s = icl_summary(60.0, cells, 20.0)
    assert [(c["retriever"], c["k"]) for c in s["cells"]] == [("random", 1), ("random", 2), ("topk_text", 1), ("topk_text", 2)]
    assert [c["gain"] for c in s["cells"]] == [10.0, -10.0, -20.0, 20.0]
    assert [c["riacc"] for c in s["cells"]] == pytest.approx([125.0, 75.0, 50.0, 150.0])
    assert all(c["undefined"] is None for c in s["cells"])
    # groups: the RIAcc of the group's mean accuracy (= the mean of its cells' RIAccs)
    assert s["by_retriever"]["random"]["accuracy"] == 60.0 and s["by_retriever"]["random"]["riacc"] == 100.0
    assert s["by_k"][1]["accuracy"] == 55.0 and s["by_k"][1]["riacc"] == pytest.approx(87.5)
    assert s["by_k"][2]["accuracy"] == 65.0 and s["by_k"][2]["riacc"] == pytest.approx(112.5)
    assert s["by_k"][2]["gain"] == pytest.approx(5.0)
    assert s["accuracy"] == 60.0 and s["gain"] == 0.0 and s["riacc"] == pytest.approx(100.0) and s["n_cells"] == 4
    assert s["riacc"] == pytest.approx(sum(c["riacc"] for c in s["cells"]) / 4)
    assert s["zero_shot_accuracy"] == 60.0 and s["chance"] == 20.0


def test_icl_summary_undefined_and_errors():
    s = icl_summary(25.0, {("random", 1): 40.0, ("fixed", 1): 30.0}, 25.0)
    assert math.isnan(s["riacc"]) and "not above chance 25" in s["undefined"]
    assert all(math.isnan(c["riacc"]) for c in s["cells"]) and s["cells"][0]["gain"] == 15.0
    missing = icl_summary(60.0, {("random", 1): math.nan, ("random", 2): 70.0}, 20.0)
    assert math.isnan(missing["accuracy"]) and missing["undefined"] == "ICL accuracy is missing"
    assert missing["cells"][1]["riacc"] == pytest.approx(125.0)
    with pytest.raises(ValueError, match="at least one"):
        icl_summary(60.0, {}, 20.0)
    with pytest.raises(ValueError, match="k = 0 is the zero-shot"):
        icl_summary(60.0, {("random", 0): 50.0}, 20.0)


# ------------------------------------------------------------------------------------------------ axes
def _run(name, score, *, chance=25.0, status="ok", **extra):
    return {"name": name, "dir": f"x/{name}", "recipe": extra.pop("recipe", name), "status": status, "score": score,
            "chance": chance, "ci": [score - 1, score + 1] if score is not None else None, "n": 10, "unparsed": 0,
            "metrics": extra.pop("metrics", {"accuracy": score}), **extra}


def test_calibration_and_hallucination_axes():
    cal = lambda e: {"ece": e, "ece_ci": [1, 2], "accuracy": 50, "mean_confidence": 60, "overconfidence": 10, "n": 10, "n_bins": 10}
    a = calibration_axis([_run("a", 50, calibration=cal(10.0)), _run("b", 40, calibration=cal(30.0)),
                          {"name": "c", "dir": "x/c", "recipe": "c", "status": "not run", "reason": "data missing"}],
                         MAPPINGS["calibration"])
    assert a["raw"] == 20.0 and a["value"] == 80.0 and a["status"] == "ok"
    assert [d["reliability"] for d in a["detail"]] == ["x/a/reliability.svg", "x/b/reliability.svg"]
    assert a["excluded"] == [{"what": "c", "reason": "data missing", "kind": "not run"}]
    none = calibration_axis([], MAPPINGS["calibration"])
    assert none["value"] is None and none["status"] == "not run" and "no calibration recipes" in none["reason"]
    pope = lambda acc, f1: {"accuracy": acc, "f1": f1, "precision": 50, "recall": 100, "yes_ratio": 100}
    runs = [_run("r", 50.0, metrics=pope(50.0, 66.7)), _run("p", 70.0, metrics=pope(70.0, 60.0))]
    h = hallucination_axis(runs, "accuracy", MAPPINGS["hallucination"])
    assert h["raw"] == 60.0 and h["value"] == 60.0 and h["detail"]["r"]["yes_ratio"] == 100
    assert hallucination_axis(runs, "f1", "")["raw"] == pytest.approx(63.35)


def test_icl_axis_clips_for_drawing_only_and_lists_undefined():
    runs = [_run("c0", 60.0, chance=20.0, recipe="c", retriever=None, k=0),
            _run("c1", 100.0, chance=20.0, recipe="c", retriever="random", k=1),  # RIAcc 200
            _run("v0", 20.0, chance=25.0, recipe="v", retriever=None, k=0),  # zero-shot below chance
            _run("v1", 50.0, chance=25.0, recipe="v", retriever="random", k=1)]
    a = icl_axis(runs, MAPPINGS["icl"])
    assert a["raw"] == pytest.approx(200.0) and a["value"] == 100.0 and a["status"] == "ok"
    assert a["excluded"][0]["what"] == "v" and "not above chance" in a["excluded"][0]["reason"]
    assert a["detail"]["c"]["cells"][0]["riacc"] == pytest.approx(200.0)
    only_bad = icl_axis(runs[2:], MAPPINGS["icl"])
    assert only_bad["value"] is None and only_bad["status"] == "undefined" and "v: zero-shot" in only_bad["reason"]


def test_robustness_axis_by_hand():
    # the worked example of docs/desiderata.md (robustness): clean 80, chance 20, noise 50 and typos 71 → 50, 85, overall 67.5
    runs = [_run("clean", 80.0, chance=20.0, recipe="a", corruption=None),
            _run("noise", 50.0, chance=20.0, recipe="a", corruption="gaussian_noise@3"),
            _run("typos", 71.0, chance=20.0, recipe="a", corruption="typos@3"),
            _run("clean_b", 60.0, chance=20.0, recipe="b", corruption=None),
            _run("noise_b", 5.0, chance=20.0, recipe="b", corruption="jpeg@3")]  # RRM −37.5
    a = robustness_axis(runs, MAPPINGS["robustness"])
    d = a["detail"]["a"]
    assert d["per_corruption"]["gaussian_noise@3"]["rrm"] == pytest.approx(50.0)
    assert d["per_corruption"]["typos@3"]["rrm"] == pytest.approx(85.0) and d["rrm"] == pytest.approx(67.5)
    assert a["detail"]["b"]["rrm"] == pytest.approx(-37.5)
    assert a["raw"] == pytest.approx((67.5 - 37.5) / 2) and a["value"] == pytest.approx(15.0)
    neg = robustness_axis(runs[3:], "")
    assert neg["raw"] == pytest.approx(-37.5) and neg["value"] == 0.0  # clipped for drawing, raw kept


def test_instruction_following_and_language_axes():
    runs = [_run("l", 80.0, verbalizer="letters", metrics={"match_rate": 80.0, "label_rate": 90.0}),
            _run("n", 40.0, verbalizer="numbers", metrics={"match_rate": 40.0, "label_rate": 50.0})]
    cons = {"numbers": {"consistency": 75.0, "n": 4, "n_common": 10, "n_unparsed": 6}}
    a = instruction_following_axis(runs, cons, "letters", MAPPINGS["instruction_following"])
    assert a["value"] == 60.0 and a["detail"]["mean_consistency"] == 75.0
    assert a["detail"]["per_verbalizer"]["numbers"]["label_rate"] == 50.0
    off = language_axis([_run("v", 30.0)], None, MAPPINGS["language"])
    assert off["value"] is None and off["status"] == "not run" and off["reason"] == "not run (no --judge)"
    judged = {"v": {"mean_score": 7.5, "ci": [7, 8], "n": 4, "n_scored": 4, "failures": 0},
              "w": {"mean_score": None, "ci": [None, None], "n": 2, "n_scored": 0, "failures": 2}}
    on = language_axis([_run("v", 30.0), _run("w", 30.0)], judged, MAPPINGS["language"])
    assert on["raw"] == 7.5 and on["value"] == 75.0 and on["excluded"][0]["what"] == "w"


# ------------------------------------------------------------------------------------------------ radar SVG
def _dist(x, y):
    return math.hypot(x - CENTER[0], y - CENTER[1])


def _points(el):
    return [tuple(map(float, p.split(","))) for p in el.get("points").split()]


def test_radar_geometry_and_na_axis():
    vals = {"calibration": 50.0, "icl": 130.0, "instruction_following": 0.0, "language": None,
            "robustness": -20.0, "hallucination": 80.0}
    root = ET.fromstring(radar_svg({"m": vals}))
    rings = root.findall(f"{SVG}polygon[@class='ring']")
    assert [r.get("data-ring") for r in rings] == ["20", "40", "60", "80", "100"]
    for r in rings:  # hexagons: 6 vertices, all at ring/100 of the radius
        pts = _points(r)
        assert len(pts) == 6 and all(_dist(*p) == pytest.approx(RADIUS * int(r.get("data-ring")) / 100, abs=0.01) for p in pts)
    assert [a.get("data-axis") for a in root.findall(f"{SVG}line[@class='axis']")] == list(AXES)
    labels = {t.get("data-axis"): "".join(t.itertext()) for t in root.findall(f"{SVG}text[@class='axis-label']")}
    assert set(labels) == set(AXES) and labels["language"] == "language performancen/a"
    assert labels["calibration"] == "calibration50.0"
    (poly,) = root.findall(f"{SVG}polygon[@class='model']")
    assert poly.get("data-model") == "m"
    pts = _points(poly)
    expected = [50.0, 100.0, 0.0, 0.0, 0.0, 80.0]  # clipped to [0, 100]; n/a at 0
    assert [_dist(*p) for p in pts] == pytest.approx([RADIUS * v / 100 for v in expected], abs=0.01)
    # the first axis points straight up, the next ones clockwise (SVG y grows downwards)
    assert pts[0][0] == pytest.approx(CENTER[0]) and pts[0][1] < CENTER[1] and pts[1][0] > CENTER[0]
    titles = [c.find(f"{SVG}title").text for c in root.findall(f"{SVG}circle")]
    assert "m — language performance: n/a" in titles and "m — in-context learning: 100.0" in titles


def test_radar_overlays_models():
    root = ET.fromstring(radar_svg({"a": {a: 40.0 for a in AXES}, "b": {**{a: 60.0 for a in AXES}, "icl": None}}))
    polys = root.findall(f"{SVG}polygon[@class='model']")
    assert [p.get("data-model") for p in polys] == ["a", "b"] and polys[0].get("stroke") != polys[1].get("stroke")
    assert all(_dist(*p) == pytest.approx(0.4 * RADIUS, abs=0.01) for p in _points(polys[0]))
    labels = {t.get("data-axis"): "".join(t.itertext()) for t in root.findall(f"{SVG}text[@class='axis-label']")}
    assert labels["icl"].endswith("n/a: b") and labels["calibration"] == "calibration"
    with pytest.raises(ValueError, match="at least one model"):
        radar_svg({})


# ------------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_yaml_validates_and_plans(path):
    cfg = load_config(DesiderataConfig, path)  # unknown keys are errors
    assert cfg.name == path.stem
    plan = plan_runs(cfg)
    assert {p.desideratum for p in plan} == set(AXES)
    assert load_desiderata_config(path.stem).model_dump() == cfg.model_dump()


def test_default_config_needs_no_point_clouds():
    from lamm.bench.recipe import scenario_meta

    plan = plan_runs(load_desiderata_config(None))
    assert all(scenario_meta(p.recipe)[2] == "image" for p in plan)
    icl = [p for p in plan if p.desideratum == "icl" and p.key["recipe"] == "synth_classification"]
    assert len(icl) == 1 + 4 * 3 and icl[0].key["k"] == 0  # zero-shot + every retriever x k
    assert len([p for p in plan if p.desideratum == "instruction_following"]) == 6


@pytest.mark.parametrize("overrides, match", [
    (["calibration.recipes=[synth_vqa]"], "calibration.recipes\\[0\\].*ppl"),
    (["hallucination.recipes=[synth_vqa]"], "hallucination.recipes\\[0\\].*pope"),
    (["icl.recipes=[synth_counting]"], "icl.recipes\\[0\\].*'mae'"),
    (["robustness.recipes=[{recipe: synth_classification_noise, corruptions: [jpeg]}]"], "already corrupts"),
    (["robustness.recipes=[{recipe: synth_vqa, corruptions: [gausian_noise]}]"], "unknown corruption 'gausian_noise'"),
    (["instruction_following.verbalizers=[numbers]"], "consistency_against 'letters'"),
    (["icl.shots=[0]"], "shots"),
    (["language.recipes=[no_such_recipe]"], "language.recipes\\[0\\].*no_such_recipe"),
    (["icl.retriver=random"], "unknown key"),
])
def test_config_errors_name_the_field(overrides, match):
    with pytest.raises(ConfigError, match=match):
        plan_runs(load_desiderata_config(None, overrides))


# ------------------------------------------------------------------------------------------------ end to end
SMALL = """
name: small
limit: 6
calibration: {recipes: [synth_classification_ppl, synth_vqa_ppl]}
icl: {recipes: [synth_vqa], retrievers: [random, topk_text], shots: [1, 2, 3]}
instruction_following: {verbalizers: [letters, numbers]}
robustness:
  recipes:
    - {recipe: synth_classification, corruptions: [gaussian_noise]}
    - {recipe: synth_vqa, corruptions: [typos]}
"""


@pytest.fixture(scope="module")
def synth_root(make_synth_2d) -> Path:
    return make_synth_2d(8, 8, name="synth_des")


@pytest.fixture(scope="module")
def small_cfg(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("cfg") / "small.yaml"
    p.write_text(SMALL, encoding="utf-8")
    return p


def _cli(*args):
    from lamm.cli.main import app

    return CliRunner().invoke(app, ["bench", *args])


def test_cli_end_to_end_judge_and_cache(synth_root, small_cfg, tmp_path):
    out = tmp_path / "des"
    base = ["desiderata", "--model", "dummy", "--root", str(synth_root), "--config", str(small_cfg), "--out", str(out),
            "--no-progress"]
    res = _cli(*base)
    assert res.exit_code == 0, res.output
    for f in ("desiderata.json", "desiderata.md", "desiderata.html", "radar.svg", "cache.sqlite"):
        assert (out / f).is_file(), f
    s = json.loads((out / "desiderata.json").read_text())
    assert list(s["axes"]) == list(AXES) and list(s["radar"]) == list(AXES)
    lang = s["axes"]["language"]
    assert lang["value"] is None and lang["status"] == "not run" and lang["reason"] == "not run (no --judge)"
    assert {"desideratum": "language", "run": None, "reason": "not run (no --judge)"} in s["not_run"]
    assert s["limit"] == 6 and all(r["n"] == 6 for rs in s["runs"].values() for r in rs)
    assert len(s["runs"]["icl"]) == 1 + 2 * 3 and len(s["runs"]["robustness"]) == 4
    cal = s["axes"]["calibration"]
    assert cal["value"] == pytest.approx(100 - cal["raw"]) and len(cal["detail"]) == 2 and cal["detail"][0]["ece_ci"]
    for a in AXES:  # every axis has a value or says why not
        ax = s["axes"][a]
        assert (ax["value"] is None) == (ax["reason"] is not None) and ax["mapping"]
    assert ET.fromstring((out / "radar.svg").read_text()).find(f"{SVG}polygon[@class='model']") is not None
    assert "n/a" in (out / "radar.svg").read_text()
    page = (out / "desiderata.html").read_text()
    assert page.count("<svg") == 3 and "<script" not in page and "href=" not in page  # radar + 2 reliability diagrams
    assert "| language performance | n/a |" in (out / "desiderata.md").read_text()
    assert "language performance" in res.output and "not run (no --judge)" in res.output

    # the same command with a judge: every answer from the cache, language = 7 × 10
    res = _cli(*base, "--judge", "dummy:constant=Rating: [[7]]")
    assert res.exit_code == 0, res.output
    assert "generated 0" in res.output
    infos = [json.loads(p.read_text()) for p in out.glob("*/*/run_info.json")]
    assert len(infos) == sum(len(v) for v in s["runs"].values()) and all(i["generated"] == 0 for i in infos)
    s2 = json.loads((out / "desiderata.json").read_text())
    assert s2["radar"]["language"] == 70.0 and s2["axes"]["language"]["raw"] == 7.0
    assert (out / "language" / "synth_vqa" / "judge.json").is_file()
    assert {k: v for k, v in s2["radar"].items() if k != "language"} == {k: v for k, v in s["radar"].items() if k != "language"}
    before = (out / "desiderata.json").read_bytes()
    assert _cli(*base, "--judge", "dummy:constant=Rating: [[7]]").exit_code == 0
    assert (out / "desiderata.json").read_bytes() == before  # same inputs, same bytes

    # a second model, overlaid on the first
    other = tmp_path / "other"
    res = _cli("desiderata", "--model", "dummy:constant=The answer is (A). yes", "--root", str(synth_root), "--config",
               str(small_cfg), "--out", str(other), "--no-progress", "icl.recipes=[]", "robustness.recipes=[]")
    assert res.exit_code == 0, res.output
    o = json.loads((other / "desiderata.json").read_text())
    assert o["axes"]["icl"]["reason"] == "no ICL recipes configured" and o["axes"]["hallucination"]["value"] is not None
    res = _cli("desiderata-report", str(out), str(other), "--out", str(tmp_path / "board"))
    assert res.exit_code == 0, res.output
    polys = ET.fromstring((tmp_path / "board" / "radar.svg").read_text()).findall(f"{SVG}polygon[@class='model']")
    assert [p.get("data-model") for p in polys] == ["dummy", "dummy:constant=The answer is (A). yes"]
    assert (tmp_path / "board" / "desiderata.html").read_text().count("<svg") == 1 + 2 + 2
    res = _cli("desiderata-report", str(tmp_path / "nothing"), "--out", str(tmp_path / "b2"))
    assert res.exit_code == 2 and "no desiderata.json" in res.output


def test_missing_data_fails_early_or_is_listed(synth_root, small_cfg, tmp_path, monkeypatch):
    import lamm.infer.engine as engine_mod

    out = tmp_path / "des"
    with_3d = ["calibration.recipes=[synth_vqa_ppl, synth3d_classification_ppl]", "icl.recipes=[]",
               "robustness.recipes=[{recipe: synth3d_classification, corruptions: [jitter]}]",
               "instruction_following.verbalizers=[letters]", "hallucination.recipes=[synth_pope_random]",
               "language.recipes=[]"]
    res = _cli("desiderata", "--model", "dummy", "--root", str(synth_root), "--config", str(small_cfg), "--out",
               str(out), "--no-progress", *with_3d)
    assert res.exit_code == 2
    assert "3 of 6 runs have no data" in res.output and "--skip-missing" in res.output
    assert not (out / "calibration").exists()  # nothing was run
    loads = []
    real = engine_mod.load_engine
    monkeypatch.setattr(engine_mod, "load_engine", lambda spec, *a, **k: loads.append(spec) or real(spec, *a, **k))
    cfg = load_desiderata_config(small_cfg, with_3d)
    r = run_desiderata(cfg, "dummy", synth_root, out, skip_missing=True, show_progress=False)
    assert loads == ["dummy"]  # one engine for every run
    s = r.summary
    assert {(n["desideratum"], n["run"]) for n in s["not_run"] if n["run"]} == {
        ("calibration", "synth3d_classification_ppl"), ("robustness", "synth3d_classification-clean"),
        ("robustness", "synth3d_classification-jitter-s3")}
    assert s["axes"]["calibration"]["value"] is not None and len(s["axes"]["calibration"]["excluded"]) == 1
    rob = s["axes"]["robustness"]
    assert rob["value"] is None and rob["status"] == "not run" and "data missing" in rob["reason"]
    assert r.n_generated == 6 * 3 and (out / "desiderata.html").is_file()


def test_bad_judge_fails_before_anything_runs(synth_root, small_cfg, tmp_path):
    from lamm.bench.judge_prompts import JudgeError

    cfg = load_desiderata_config(small_cfg)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        run_desiderata(cfg, "dummy", synth_root, tmp_path / "a", judge="nope:x", show_progress=False)
    with pytest.raises(JudgeError, match="judge prompt 'single-v9'"):
        run_desiderata(load_desiderata_config(small_cfg, ["language.prompt=single-v9"]), "dummy", synth_root,
                       tmp_path / "a", judge="dummy", show_progress=False)
    assert not (tmp_path / "a").exists()


def test_scenario_errors_surface_before_anything_runs(synth_root, small_cfg, tmp_path):
    from lamm.bench.scenarios import ScenarioError

    cfg = load_desiderata_config(small_cfg, ["robustness.recipes=[{recipe: synth_classification, corruptions: [jitter]}]"])
    with pytest.raises(ScenarioError, match="'jitter' corrupts pcl input"):
        run_desiderata(cfg, "dummy", synth_root, tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a").exists()


def test_a_folder_named_like_a_config_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic").mkdir()
    assert load_desiderata_config("synthetic").name == "synthetic"


def test_recipe_paths_in_a_config_file_are_relative_to_it(tmp_path, monkeypatch):
    """Like a suite file: `recipes: [my.yaml]` in cfg/d.yaml means cfg/my.yaml, from any working directory."""
    import yaml

    from lamm.bench.desiderata.suite import plan_runs

    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "my.yaml").write_text("name: my\nscenario: {name: Synth-VQA}\ninferencer: {type: ppl}\n")
    (cfg_dir / "d.yaml").write_text(yaml.safe_dump({
        "calibration": {"recipes": ["my.yaml"]}, "icl": {"recipes": []},
        "instruction_following": {"verbalizers": [], "consistency_against": None}, "robustness": {"recipes": []},
        "hallucination": {"recipes": []}, "language": {"recipes": []}}))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    plan = plan_runs(load_desiderata_config(str(cfg_dir / "d.yaml")))
    assert [(p.desideratum, p.recipe.name) for p in plan] == [("calibration", "my")]
