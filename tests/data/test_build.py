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
from lamm.data.build import BuildConfig, BuildError, build, describe_result, load_build_config
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


def _labels_cfg(tmp_path: Path, labels: dict, out: Path, **extra) -> BuildConfig:
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    data = {
        "out_dir": str(out),
        "check_media": False,
        "sources": {"l": {"type": "label_list", "args": {"path": str(tmp_path / "labels.json")}}},
        "tasks": [{"builder": "classification", "source": "l"}],
    }
    data.update(extra)
    return config_from_dict(BuildConfig, data)


def test_rebuild_removes_the_previous_builds_stale_split_files_only(tmp_path):
    out = tmp_path / "out"
    labels = {f"img{i}.jpg": ["cat", "dog"][i % 2] for i in range(40)}
    first = build(_labels_cfg(tmp_path, labels, out, split={"fractions": {"train": 0.5, "val": 0.5}}))
    assert set(first.files) == {"train", "val"} and first.report["files"] == first.files
    (out / "notes.json").write_text("{}")  # not written by a build: never touched
    (out / "test.json").write_text("[]")  # not listed by the previous report: never touched
    res = build(_labels_cfg(tmp_path, labels, out, split={"fractions": {"train": 1.0}}))
    assert res.files == {"train": "train.json"}
    assert not (out / "val.json").exists()  # would leak half the images beside the new train.json
    assert (out / "notes.json").exists() and (out / "test.json").exists()
    assert res.report["removed_stale_files"] == ["val.json"]
    assert json.loads((out / "build_report.json").read_text())["removed_stale_files"] == ["val.json"]
    assert "val.json" in describe_result(res)
    # a report written before it listed its files: its validated split names are used
    build(_labels_cfg(tmp_path, labels, out, split={"fractions": {"train": 0.5, "val": 0.5}}))
    report = json.loads((out / "build_report.json").read_text())
    del report["files"]
    (out / "build_report.json").write_text(json.dumps(report))
    res = build(_labels_cfg(tmp_path, labels, out, split={"fractions": {"train": 1.0}}))
    assert res.report["removed_stale_files"] == ["val.json"] and not (out / "val.json").exists()
    # switching to JSONL: the previous train.json is stale too
    res = build(_labels_cfg(tmp_path, labels, out, output_format="jsonl"))
    assert res.report["removed_stale_files"] == ["train.json"] and (out / "train.jsonl").exists()


def test_record_ids_of_similar_names_differ_and_duplicate_ids_name_their_makers(tmp_path):
    labels = {"dog (1).jpg": "dog", "dog-1.jpg": "dog", "cat.jpg": "cat"}
    res = build(_labels_cfg(tmp_path, labels, tmp_path / "a"))
    assert res.stats["total"]["records"] == 3
    ids = [r["id"] for r in read_records(tmp_path / "a" / "train.json")]
    assert len(set(ids)) == 3 and "labels_cat_classification" in ids
    # two sources with one dataset name and the same ids: the error names both tasks and sources
    cfg = _labels_cfg(tmp_path, labels, tmp_path / "b")
    cfg = config_from_dict(
        BuildConfig,
        {
            **cfg.model_dump(mode="json"),
            "sources": {s: cfg.sources["l"].model_dump(mode="json") for s in ("l", "m")},
            "tasks": [
                {"builder": "classification", "source": "l"},
                {"builder": "classification", "source": "m", "name": "classification"},
            ],
        },
    )
    with pytest.raises(
        BuildError,
        match=r"made twice .*by task 'classification' \(source 'l', record labels:dog \(1\)\) and by "
        r"task 'classification' \(source 'm', record labels:dog \(1\)\)\): two sources .*distinct 'dataset'",
    ):
        build(cfg)


def test_crowd_images_are_not_applicable_for_all_object_detection(tmp_path):
    inst = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 30], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 5, 70, 60], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 5, 10, 30], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(inst))
    cfg = config_from_dict(
        BuildConfig,
        {
            "out_dir": str(tmp_path / "o"),
            "check_media": False,
            "sources": {"c": {"type": "coco", "args": {"instances": str(tmp_path / "inst.json")}}},
            "tasks": [{"builder": "detection", "source": "c", "params": {"mode": "all"}}],
        },
    )
    res = build(cfg)
    assert res.report["tasks"]["detection"]["not_applicable"] == 1
    assert [r["src_id"] for r in read_records(tmp_path / "o" / "train.json")] == ["2"]


def test_generation_resume_takes_paths_from_the_current_source_and_redoes_changed_context(tmp_path):
    inst = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 100, "height": 100} for i in (1, 2)],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [10, 10, 30, 30]} for i in (1, 2)],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (tmp_path / "inst.json").write_text(json.dumps(inst))
    reply = json.dumps(
        {
            "description": " ".join(["A small grey cat sits quietly on the wooden floor near the door"] * 3)
            + "."
        }
    )

    def cfg(prefix: str) -> BuildConfig:
        return config_from_dict(
            BuildConfig,
            {
                "out_dir": str(tmp_path / "o"),
                "check_media": False,
                "sources": {
                    "coco": {
                        "type": "coco",
                        "args": {"instances": str(tmp_path / "inst.json"), "image_prefix": prefix},
                    }
                },
                "generate": [
                    {
                        "name": "c3",
                        "kind": "description",
                        "source": "coco",
                        "engine": f"dummy:constant={reply}",
                        "retry_wait": 0,
                    }
                ],
                "quality": {"near_dedup": False, "exact_dedup": False},
            },
        )

    build(cfg("WRONG_images"))
    res = build(cfg("coco_images"))  # the user fixes the prefix and reruns
    recs = read_records(tmp_path / "o" / "train.json")
    assert sorted(r["image"] for r in recs) == ["coco_images/1.jpg", "coco_images/2.jpg"]
    g = res.report["generation"]["c3"]
    assert (g["already_done"], g["regenerated"], g["generated"]) == (2, 0, 0)  # paths only: nothing redone
    # the annotations change (a box moves): that record's context differs and it is generated again
    inst["annotations"][1]["bbox"] = [50, 50, 30, 30]
    (tmp_path / "inst.json").write_text(json.dumps(inst))
    g = build(cfg("coco_images")).report["generation"]["c3"]
    assert (g["already_done"], g["regenerated"], g["generated"]) == (1, 1, 1)
    again = build(cfg("coco_images")).report["generation"]["c3"]  # the regenerated line now wins
    assert (again["already_done"], again["regenerated"], again["generated"]) == (2, 0, 0)


def test_stats_keep_files_that_share_a_stem(tmp_path):
    from lamm.data.stats import split_names, stats_for_files

    rec = {
        "image": "x.jpg",
        "task_type": "classification",
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a cat"}],
    }
    for d, n in (("a", 3), ("b", 1)):
        (tmp_path / d).mkdir()
        (tmp_path / d / "train.json").write_text(json.dumps([{**rec, "id": f"{d}{i}"} for i in range(n)]))
    files = [tmp_path / "a" / "train.json", tmp_path / "b" / "train.json"]
    st = stats_for_files(files)
    assert list(st["splits"]) == ["a/train.json", "b/train.json"] and st["total"]["records"] == 4
    assert split_names([tmp_path / "a" / "train.json", tmp_path / "a" / "val.json"]) == ["train", "val"]
    card_md = tmp_path / "card.md"
    res = CliRunner().invoke(cli(), ["stats", *map(str, files), "--json", "--card", str(card_md)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["total"]["records"] == 4
    card = card_md.read_text()
    assert "a/train.json" in card and "b/train.json" in card


def test_dataset_card_says_generation_cost_is_the_last_runs(tmp_path):
    """After a resumed build the engine counted only the last invocation's requests: the card keeps the
    record total apart from what that run generated, and labels tokens and cost as the last run's."""
    from lamm.data.stats import dataset_card, stats_for_files

    f = tmp_path / "train.json"
    f.write_text(json.dumps([{"id": "a", "image": "a.png", "task_type": "conversation",
                              "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]))
    gen = {"c3": {"model": "m", "prompt_pack": "c3_description", "generated": 12, "already_done": 28,
                  "failed": 0, "prompt_tokens": 120, "completion_tokens": 30, "cost_usd": 0.5}}
    card = dataset_card(stats_for_files([f]), name="x", generation=gen)
    assert "| records | generated by the last run |" in card and "cost of the last run (USD)" in card
    assert "| c3 | m | `c3_description` | 40 | 12 | 0 | 120 | 30 | 0.5 |" in card
