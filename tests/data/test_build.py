"""The build pipeline and its CLI: configs/data/*.yaml validate; `lamm data build configs/data/synthetic.yaml`
over a small synthetic set made here produces valid, deterministic, leak-free instruction data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lamm.cli.data_build import register
from lamm.config import ConfigError, config_from_dict
from lamm.data.build import BuildConfig, BuildError, build, load_build_config
from lamm.data.quality import media_key
from lamm.data.records import read_records, validate_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "data"
PROVENANCE = ("src_dataset", "src_id", "builder", "template_id", "seed")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from lamm.data.synthetic import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(
        root,
        SynthConfig(
            n_train_2d=40,
            n_test_2d=4,
            n_train_objects_3d=14,
            n_test_objects_3d=2,
            n_train_scenes_3d=10,
            n_test_scenes_3d=2,
            points_per_object=64,
            points_per_scene=256,
        ),
    )
    return root


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _main() -> None:  # a group, as `lamm data` is
        pass

    register(app)
    return app


@pytest.mark.parametrize("name", ["synthetic", "lamm_c4", "coco_c1c3"])
def test_bundled_configs_validate(name):
    cfg = load_build_config(CONFIGS / f"{name}.yaml")
    assert cfg.sources and (cfg.tasks or cfg.generate)
    assert "${" not in cfg.to_yaml()
    for t in cfg.tasks:
        assert t.source in cfg.sources
    with pytest.raises(ConfigError, match=r"\$\{nope\} is not defined in 'paths'"):
        load_build_config(CONFIGS / f"{name}.yaml", ["out_dir=${nope}/x"])


def test_build_synthetic_via_cli(synth, tmp_path):
    out = tmp_path / "instruct"
    args = ["build", str(CONFIGS / "synthetic.yaml"), f"paths.synthetic={synth}", f"out_dir={out}"]
    res = CliRunner().invoke(cli(), args)
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} >= {
        "train.json",
        "val.json",
        "stats.json",
        "DATASET_CARD.md",
        "build_report.json",
        "build_config.yaml",
        "dropped.jsonl",
    }
    splits = {}
    for name in ("train", "val"):
        rep = validate_file(out / f"{name}.json", root=synth, check_media=True)
        assert rep.ok and rep.n_warnings == 0, [str(p) for p in rep.problems[:5]]
        splits[name] = read_records(out / f"{name}.json")
    train = splits["train"]
    tasks = {r["task_type"] for r in train}
    assert tasks == {
        "classification",
        "counting",
        "detection",
        "VQA",
        "classification3d",
        "detection3d",
        "visual_grounding3d",
    }
    assert all(all(k in r for k in PROVENANCE) for r in train)
    media = {s: {media_key(r) for r in recs} for s, recs in splits.items()}
    assert not media["train"] & media["val"]
    assert all(
        m.startswith(("2d/images/train/", "3d/objects/train/", "3d/scenes/train/")) for m in media["train"]
    )
    # short, fixed answer formats per task (what a tiny model can learn)
    for r in train:
        a = r["conversations"][1]["value"]
        t = r["task_type"]
        if t == "counting":
            assert re.fullmatch(r"\d+", a)
        elif t == "VQA":
            # answer_style: text in configs/data/synthetic.yaml — the option's text, never a letter
            assert re.fullmatch(r"The answer is [a-z]+\.", a), a
        elif t in ("classification", "classification3d"):
            assert re.fullmatch(r"[a-z]+", a)
        elif t == "visual_grounding3d":
            assert re.fullmatch(r"\[[-0-9., ]+\]", a)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["total"]["records"] == len(train) + len(splits["val"])
    card = (out / "DATASET_CARD.md").read_text()
    assert "# Dataset card: synthetic" in card and "| `counting` |" in card
    # the same command gives byte-identical files
    out2 = tmp_path / "again"
    assert CliRunner().invoke(cli(), args[:-1] + [f"out_dir={out2}"]).exit_code == 0
    for f in ("train.json", "val.json", "stats.json"):
        assert (out / f).read_bytes() == (out2 / f).read_bytes()
    # stats and convert commands on the result
    res = CliRunner().invoke(cli(), ["stats", str(out / "train.json"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["total"]["records"] == len(train)
    res = CliRunner().invoke(
        cli(), ["convert", str(out / "train.json"), str(tmp_path / "sg.jsonl"), "--to", "sharegpt"]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        cli(), ["convert", str(tmp_path / "sg.jsonl"), str(tmp_path / "back.json"), "--from", "sharegpt"]
    )
    assert res.exit_code == 0 and read_records(tmp_path / "back.json") == train


def _cfg(synth: Path, out: Path, **extra) -> BuildConfig:
    data = {
        "out_dir": str(out),
        "vision_root": str(synth),
        "seed": 1,
        "sources": {
            "s2d": {"type": "synthetic2d", "args": {"root": str(synth)}, "max_records": 12},
            "s3d": {"type": "synthetic_scenes3d", "args": {"root": str(synth)}},
        },
        "tasks": [{"builder": "counting", "source": "s2d", "answer_ids": ["count.a01"]}],
    }
    data.update(extra)
    return config_from_dict(BuildConfig, data)


def test_generation_in_build_with_dedup_and_source_splits(synth, tmp_path):
    text = (
        "The picture shows a few bright geometric shapes scattered over a pale background, each drawn in a "
        "single flat colour with crisp edges and plenty of empty space between them."
    )
    gen = [
        {
            "name": "c3",
            "kind": "description",
            "source": "s2d",
            "engine": "dummy:constant=" + json.dumps({"description": text}),
            "retry_wait": 0,
            "concurrency": 2,
        }
    ]
    cfg = _cfg(synth, tmp_path / "o", generate=gen, split={"mode": "source"})
    res = build(cfg)
    recs = read_records(tmp_path / "o" / "train.json")
    desc = [r for r in recs if r["task_type"] == "description"]
    assert len(desc) == 1  # one dummy text for every image: the rest are near duplicates
    q = res.report["quality"]
    assert q["dropped"]["near_duplicates"] == 11 and q["reasons"]["near_duplicate"] == 11
    assert desc[0]["builder"] == "generate.description@1.0" and desc[0]["generator"]["model"].startswith(
        "dummy:"
    )
    assert res.report["generation"]["c3"]["generated"] == 12
    assert (tmp_path / "o" / "generated" / "c3.jsonl").exists()
    dropped = [json.loads(line) for line in (tmp_path / "o" / "dropped.jsonl").read_text().splitlines()]
    assert len(dropped) == 11 and all(d["reason"].startswith("near_duplicate: of ") for d in dropped)
    # a rerun resumes: the engine is not asked again, the output is the same
    before = (tmp_path / "o" / "train.json").read_bytes()
    res2 = build(cfg)
    assert (
        res2.report["generation"]["c3"]["already_done"] == 12
        and res2.report["generation"]["c3"]["generated"] == 0
    )
    assert (tmp_path / "o" / "train.json").read_bytes() == before


def test_build_errors(synth, tmp_path):
    with pytest.raises(BuildError, match="source 'nope' is used but not defined"):
        build(_cfg(synth, tmp_path / "a", tasks=[{"builder": "counting", "source": "nope"}]))
    with pytest.raises(
        BuildError, match="task 'detection3d': builder 'detection3d' makes 'pcl' records but source 's2d'"
    ):
        build(_cfg(synth, tmp_path / "b", tasks=[{"builder": "detection3d", "source": "s2d"}]))
    with pytest.raises(BuildError, match="made twice.*distinct 'name'"):
        build(_cfg(synth, tmp_path / "c", tasks=[{"builder": "counting", "source": "s2d"}] * 2))
    twice = [
        {"builder": "counting", "source": "s2d"},
        {"builder": "counting", "source": "s2d", "name": "count2"},
    ]
    # a named second run draws its own templates; identical draws would be exact duplicates and dropped
    res = build(_cfg(synth, tmp_path / "d", tasks=twice))
    assert res.stats["total"]["records"] + res.report["quality"]["dropped"]["exact_duplicates"] == 24
    assert res.stats["total"]["records"] > 12
    # the named task's records carry its name (a provenance field the quickstart groups by)
    written = json.loads((tmp_path / "d" / "train.json").read_text())
    assert {r.get("task") for r in written} == {None, "count2"}
    assert all(r["id"].endswith("_count2") for r in written if r.get("task") == "count2")
    with pytest.raises(
        BuildError,
        match=r"(?s)split .train.: 12 of 12 records are invalid; nothing was written.*file not found",
    ):
        build(_cfg(synth, tmp_path / "e", vision_root=str(tmp_path)))
    assert not (tmp_path / "e" / "train.json").exists()
