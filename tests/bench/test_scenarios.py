"""Scenarios: every LAMM-Benchmark loader, the synthetic and generic scenarios, ids, subsets, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import LAMM_FILES, make_lamm_benchmark, make_release_pool

from lamm.bench.recipe import ScenarioConfig
from lamm.bench.scenarios import (
    SCENARIOS,
    MissingDataError,
    ScenarioError,
    get_scenario_spec,
    load_all,
    load_scenario,
    subset_indices,
)
from lamm.bench.scenarios.catalog import CATALOG
from lamm.bench.scenarios.synthetic import SYNTHETIC


@pytest.fixture(scope="module")
def lamm_root(tmp_path_factory) -> Path:
    return make_lamm_benchmark(tmp_path_factory.mktemp("lamm"))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    from lamm.data.synthetic import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("synth")
    synthesize(out, SynthConfig(n_train_2d=6, n_test_2d=4, n_train_objects_3d=4, n_test_objects_3d=3,
                                n_train_scenes_3d=3, n_test_scenes_3d=2, points_per_object=64, points_per_scene=256))
    return out


def test_every_catalog_scenario_is_registered():
    load_all()
    for name in CATALOG:
        assert name in SCENARIOS
        assert get_scenario_spec(name).metric == CATALOG[name].metric
    for name in SYNTHETIC:
        assert SCENARIOS.get(name).splits == ("train", "test")


@pytest.mark.parametrize("name", list(LAMM_FILES))
def test_lamm_scenario_loads(lamm_root, name):
    sc = load_scenario(ScenarioConfig(name=name), lamm_root)
    info = CATALOG[name]
    assert sc.metric == info.metric and sc.task_type == info.task_type and sc.modality == info.modality
    assert len(sc.records) == 3
    samples = sc.samples()
    per_record = 14 if name == "LSP" else 1
    assert len(samples) == 3 * per_record
    assert len({s.id for s in samples}) == len(samples)
    for s in samples:
        assert len(s.media) == 1 and s.media[0].modality == info.modality
        assert Path(s.media[0].path).is_absolute() and Path(s.media[0].path).exists()
        assert s.references is sc.records[s.index]
        assert s.question and s.task_type == info.task_type
    if info.metric == "multiple_choice":
        assert samples[0].options == sc.records[0]["gt_choices"]
    if name == "CIFAR10":  # the dataset's 10 classes, not the 3 labels of the file
        assert sc.options == list(CATALOG["CIFAR10"].classes) and samples[0].options == sc.options
        assert sc.chance == 10.0


def test_lsp_one_question_per_joint(lamm_root):
    from lamm.bench.metrics.keypoints import JOINT_NAMES

    samples = load_scenario(ScenarioConfig(name="LSP"), lamm_root).samples([1])
    assert [s.part for s in samples] == list(JOINT_NAMES)
    assert samples[0].id == "lsp_1/right ankle" and samples[0].group == "lsp_1"
    assert samples[-1].question == "Tell me the exact location of the head top key point of the person."
    assert "{}" not in "".join(s.question for s in samples)


def test_release_layout_and_old_file_names(tmp_path):
    bench = tmp_path / "2D_Benchmark"
    make_lamm_benchmark(bench, scenarios=["ScienceQA"])
    (bench / "meta_file").mkdir()
    (bench / "VQA_ScienceQA.json").rename(bench / "meta_file" / "VQA_SQAimage.json")
    sc = load_scenario(ScenarioConfig(name="ScienceQA"), tmp_path)
    assert Path(sc.source).name == "VQA_SQAimage.json"
    assert all(Path(s.media[0].path).exists() for s in sc.samples())


def test_missing_file_names_what_was_tried(tmp_path):
    with pytest.raises(MissingDataError, match=r"Classification_CIFAR10\.json.*--root"):
        load_scenario(ScenarioConfig(name="CIFAR10"), tmp_path)
    with pytest.raises(ScenarioError, match="--root"):
        load_scenario(ScenarioConfig(name="CIFAR10"), None)
    with pytest.raises(KeyError, match="did you mean 'CIFAR10'"):
        load_scenario(ScenarioConfig(name="CIFAR-10"), tmp_path)


def _write(path: Path, records: list[dict]) -> None:
    path.write_text(json.dumps(records), encoding="utf-8")


def test_record_errors_name_file_record_and_field(tmp_path):
    make_lamm_benchmark(tmp_path, scenarios=["CIFAR10", "LSP"])
    f = tmp_path / "Classification_CIFAR10.json"
    recs = json.loads(f.read_text())
    del recs[1]["query"]
    _write(f, recs)
    with pytest.raises(ScenarioError, match=r"Classification_CIFAR10\.json: record 1 \(id 'cls_1'\): field 'query'"):
        load_scenario(ScenarioConfig(name="CIFAR10"), tmp_path).samples()
    f = tmp_path / "Keypoints_Detection_LSP.json"
    recs = json.loads(f.read_text())
    recs[2]["query"] = "Where is the joint?"
    _write(f, recs)
    with pytest.raises(ScenarioError, match=r"record 2 .*field 'query'.*'\{\}'"):
        load_scenario(ScenarioConfig(name="LSP"), tmp_path).samples()
    _write(f, [{"query": "x {}", "image": "a.png", "gt_joints": []}])
    with pytest.raises(ScenarioError, match=r"record 0: field 'id'"):
        load_scenario(ScenarioConfig(name="LSP"), tmp_path)


def test_duplicate_ids_are_renamed_and_counted(tmp_path):
    make_lamm_benchmark(tmp_path, scenarios=["CIFAR10"])
    f = tmp_path / "Classification_CIFAR10.json"
    recs = json.loads(f.read_text())
    recs[2]["id"] = recs[0]["id"]
    _write(f, recs)
    sc = load_scenario(ScenarioConfig(name="CIFAR10"), tmp_path)
    assert [s.id for s in sc.samples()] == ["cls_0", "cls_1", "cls_0@2"]
    assert sc.duplicate_ids == 1


def test_subset_is_seeded_nested_and_in_file_order(tmp_path):
    make_lamm_benchmark(tmp_path, n=20, scenarios=["FSC147"])
    sc = load_scenario(ScenarioConfig(name="FSC147"), tmp_path)
    a = subset_indices(sc, 5, seed=0)
    assert a == sorted(a) and len(a) == 5 and a == subset_indices(sc, 5, seed=0)
    assert set(a) <= set(subset_indices(sc, 8, seed=0))
    assert subset_indices(sc, 5, seed=1) != a
    assert subset_indices(sc, None) == list(range(20)) == subset_indices(sc, 100)


@pytest.mark.parametrize("name", list(SYNTHETIC))
def test_synthetic_scenarios_over_lamm_data_synth(synth_root, name):
    fname, family, task_type, modality = SYNTHETIC[name]
    for split in ("train", "test"):
        sc = load_scenario(ScenarioConfig(name=name, split=split), synth_root)
        assert sc.metric == family and sc.modality == modality and sc.task_type == task_type
        assert Path(sc.source) == synth_root / "benchmark" / split / fname
        samples = sc.samples()
        assert samples and all(Path(s.media[0].path).exists() for s in samples)
        assert all(s.answer for s in samples) or family == "locating"


def test_synthetic_errors(tmp_path):
    with pytest.raises(MissingDataError, match="lamm data synth"):
        load_scenario(ScenarioConfig(name="Synth-VQA"), tmp_path)
    with pytest.raises(ScenarioError, match="unknown split 'val'"):
        load_scenario(ScenarioConfig(name="Synth-VQA", split="val"), tmp_path)


def test_generic_scenario(tmp_path):
    make_lamm_benchmark(tmp_path, scenarios=["FSC147"])
    jsonl = tmp_path / "mine.jsonl"
    recs = json.loads((tmp_path / "Counting_FSC147.json").read_text())
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in recs))
    sc = load_scenario(ScenarioConfig(name="generic", file="mine.jsonl", metric="counting"), tmp_path)
    assert sc.metric == "counting" and sc.task_type == "counting" and len(sc.samples()) == 3
    assert sc.samples()[0].answer == "3"
    with pytest.raises(ScenarioError, match="scenario.metric"):
        load_scenario(ScenarioConfig(name="generic", file="mine.jsonl"), tmp_path)
    with pytest.raises(KeyError, match="did you mean 'counting'"):
        load_scenario(ScenarioConfig(name="generic", file="mine.jsonl", metric="countin"), tmp_path)
    # without a root: the file's folder is the media root
    sc = load_scenario(ScenarioConfig(name="generic", file=str(jsonl), metric="counting"), None)
    assert Path(sc.samples()[0].media[0].path).exists()


def test_fixed_class_lists_are_the_options_whatever_labels_the_file_holds(tmp_path):
    from lamm.bench.metrics.synonyms import CIFAR10_CLASSES, UCMERCED_CLASSES

    make_lamm_benchmark(tmp_path, n=4, scenarios=["CIFAR10", "UCMerced"])
    f = tmp_path / "Classification_CIFAR10.json"
    recs = json.loads(f.read_text())
    _write(f, [dict(r, label="cat") for r in recs])  # one distinct label: still 10 options
    sc = load_scenario(ScenarioConfig(name="CIFAR10"), tmp_path)
    assert sc.options == list(CIFAR10_CLASSES) and sc.chance == 10.0
    assert all(s.options == list(CIFAR10_CLASSES) for s in sc.samples())
    uc = load_scenario(ScenarioConfig(name="UCMerced"), tmp_path)
    assert len(uc.options) == 21 and uc.chance == pytest.approx(100 / 21)
    # a class is offered as the file spells it, the others as in the class list
    assert "dense residential" in uc.options and "denseresidential" not in uc.options
    assert uc.options[1:3] == list(UCMERCED_CLASSES[1:3])
    recs[2]["label"] = "kangaroo"
    _write(f, recs)
    with pytest.raises(ScenarioError, match=r"Classification_CIFAR10\.json: record 2 \(id 'cls_2'\): field "
                                            r"'label': 'kangaroo' is not one of the 10 classes"):
        load_scenario(ScenarioConfig(name="CIFAR10"), tmp_path)


def test_without_a_class_list_chance_is_one_over_the_options_offered(tmp_path):
    make_lamm_benchmark(tmp_path, n=3, scenarios=["CelebA-Hair", "CIFAR10"])
    f = tmp_path / "Facial_Classification_CelebA(Hair).json"
    recs = json.loads(f.read_text())
    for r, attr in zip(recs, ["Black_Hair", "black", "Blond_Hair"]):  # two colours, three spellings
        r["attr"] = attr
    _write(f, recs)
    hair = load_scenario(ScenarioConfig(name="CelebA-Hair"), tmp_path)
    assert hair.options == ["black", "blond"] and hair.chance == 50.0
    # a generic classification file: its distinct labels are the options, and set the chance level
    cfg = ScenarioConfig(name="generic", file="Classification_CIFAR10.json", metric="classification")
    sc = load_scenario(cfg, tmp_path)
    assert sc.options == ["cat", "dog", "ship"] and sc.chance == pytest.approx(100 / 3)


def test_a_named_file_in_the_release_layout_resolves_media_against_its_benchmark_folder(tmp_path):
    root, _ = make_release_pool(tmp_path, "2D_Benchmark/meta_file/CIFAR10_pool.json")
    pool_file = "2D_Benchmark/meta_file/CIFAR10_pool.json"
    pool = load_scenario(ScenarioConfig(name="CIFAR10"), root, file=pool_file)
    assert pool.root == root / "2D_Benchmark"
    assert all(Path(s.media[0].path).is_file() for s in pool.samples())
    # the same file outside the benchmark folder: media resolve against ROOT, and the error says so
    root2, _ = make_release_pool(tmp_path / "b", "pools/CIFAR10_pool.json")
    with pytest.raises(ScenarioError, match=r"(?s)CIFAR10_pool\.json: record 0 \(id 'p0'\): field 'image': .*"
                                            r"not found; this file's media paths are resolved against "
                                            + str(root2).replace("\\", "\\\\") + r" \(the --root"):
        load_scenario(ScenarioConfig(name="CIFAR10"), root2, file="pools/CIFAR10_pool.json")
