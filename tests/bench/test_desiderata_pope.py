"""POPE (hallucination desideratum): sampling, readers, scenarios, the ``pope`` metric family, CLI, recipes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lamm.bench.desiderata.pope import (
    STRATEGIES,
    PopeError,
    PopeImage,
    PopeStats,
    build_pope,
    coco_pope_images,
    read_pope_file,
)
from lamm.bench.metrics import METRICS, RecordError
from lamm.bench.metrics.intervals import percentile_interval, resample_counts
from lamm.bench.metrics.pope import parse_yes_no, pope_scores
from lamm.bench.metrics.synonyms import aliases, label_key
from lamm.bench.recipe import ScenarioConfig
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import MissingDataError, ScenarioError, load_scenario

# ---------------------------------------------------------------------------------------------- sampling


def _names(name: str) -> set[str]:
    """Every key that names ``name`` (itself and its synonyms), computed independently of the builder."""
    return {label_key(name)} | {label_key(a) for a in aliases(name.replace("_", " "))}


# synonym pairs (boat/ship, car/automobile, sofa/couch, diningtable/table) and spelling variants on purpose
VOCAB = ["boat", "ship", "car", "automobile", "sofa", "couch", "dining_table", "table", "person", "dog", "cat",
         "bus", "chair", "bicycle", "tv monitor", "bottle", "horse", "sheep", "cow", "train"]


def _variant(rng: random.Random, name: str) -> str:
    return rng.choice([name, name.upper(), name.title(), name.replace(" ", "_"), f" {name} ", name.replace("_", "-")])


def _random_images(rng: random.Random, n: int) -> list[PopeImage]:
    out = []
    for i in range(n):
        k = rng.choice([0, 1, 1, 2, 3, 4, 6, 12, len(VOCAB)])
        present = {_variant(rng, v) for v in rng.sample(VOCAB, k)}
        if rng.random() < 0.1:
            present.add("unicorn")  # a present name outside the vocabulary
        out.append(PopeImage(f"img{i}", f"images/{i}.jpg", present))
    return out


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_negatives_are_never_present_and_sets_are_balanced(strategy):
    for trial in range(40):
        rng = random.Random(trial)
        images = _random_images(rng, 12)
        per_image = rng.choice([1, 2, 3, 5])
        stats = PopeStats()
        recs = build_pope(images, VOCAB, strategy, per_image, seed=trial, stats=stats)
        by_image: dict[str, list[dict]] = {}
        for r in recs:
            by_image.setdefault(r["image_id"], []).append(r)
        for img in images:
            taken = set().union(*(_names(p.strip()) for p in img.present)) if img.present else set()
            present_keys = {label_key(p.strip()) for p in img.present}
            absent = [v for v in VOCAB if not (_names(v) & taken)]
            k = min(per_image, len(present_keys), len({label_key(v) for v in absent}))
            rows = by_image.get(img.id, [])
            yes = [r for r in rows if r["gt_answer"] == "yes"]
            no = [r for r in rows if r["gt_answer"] == "no"]
            assert len(yes) == len(no) == k, (trial, img)
            for r in no:
                assert not (_names(r["object"]) & taken), f"negative {r['object']!r} is present in {img.present}"
            for r in yes:
                assert label_key(r["object"]) in present_keys
            assert [r["gt_answer"] for r in rows] == ["yes", "no"] * k  # alternating, yes first
            for r in rows:
                assert r["query"] == f"Is there a {r['object']} in the image?" and r["image"] == img.image
        ids = [r["id"] for r in recs]
        assert len(set(ids)) == len(ids)
        assert stats.images == 12 and stats.positives == stats.negatives == len(recs) // 2
        assert stats.used + stats.no_objects + stats.no_absent == 12


def test_unbalanced_keeps_every_positive_up_to_per_image():
    imgs = [PopeImage("a", "a.jpg", {"cat", "dog", "horse"}), PopeImage("b", "b.jpg", set(VOCAB))]
    recs = build_pope(imgs, VOCAB, "random", 3, balanced=False)
    a = [r["gt_answer"] for r in recs if r["image_id"] == "a"]
    b = [r["gt_answer"] for r in recs if r["image_id"] == "b"]
    assert a == ["yes", "no"] * 3 and b == ["yes"] * 3  # b: every category present, nothing absent
    stats = PopeStats()
    assert [r for r in build_pope(imgs, VOCAB, "random", 3, stats=stats) if r["image_id"] == "b"] == []
    assert stats.no_absent == 1 and stats.used == 1


def test_reproducible_by_seed_and_independent_of_other_images():
    images = _random_images(random.Random(7), 30)
    a = build_pope(images, VOCAB, "random", 3, seed=5)
    assert json.dumps(a) == json.dumps(build_pope(images, VOCAB, "random", 3, seed=5))
    assert a != build_pope(images, VOCAB, "random", 3, seed=6)
    # random: an image's questions do not depend on which other images are built, nor on their order
    shuffled = images[::-1][:17]
    b = build_pope(shuffled, VOCAB, "random", 3, seed=5)
    for img in shuffled:
        assert [r for r in a if r["image_id"] == img.id] == [r for r in b if r["image_id"] == img.id]
    # positives are shared by the three strategies (they differ only in their negatives)
    pos = {s: [(r["image_id"], r["object"]) for r in build_pope(images, VOCAB, s, 3, seed=5) if r["gt_answer"] == "yes"]
           for s in STRATEGIES}
    assert pos["random"] == pos["popular"] == pos["adversarial"]


def test_image_subset_is_seeded_and_nested():
    images = [PopeImage(str(i), f"{i}.jpg", {"cat", "dog", "car"} if i % 3 else {"cat"}) for i in range(40)]
    stats = PopeStats()
    small = {r["image_id"] for r in build_pope(images, VOCAB, "random", 1, n_images=5, min_objects=3, stats=stats)}
    big = {r["image_id"] for r in build_pope(images, VOCAB, "random", 1, n_images=12, min_objects=3)}
    assert len(small) == 5 and len(big) == 12 and small <= big
    assert all(int(i) % 3 for i in big)
    assert stats.below_min_objects == 14 and stats.not_selected == 26 - 5 and stats.used == 5


def test_builder_errors():
    with pytest.raises(PopeError, match="strategy"):
        build_pope([], VOCAB, "frequent")
    with pytest.raises(PopeError, match="per_image"):
        build_pope([], VOCAB, "random", 0)
    with pytest.raises(PopeError, match="repeats image 0"):
        build_pope([("1", "a.jpg", {"cat"}), ("1", "b.jpg", {"dog"})], VOCAB, "random")
    with pytest.raises(PopeError, match="collection of names"):
        build_pope([("1", "a.jpg", "cat")], VOCAB, "random")
    with pytest.raises(PopeError, match="vocabulary"):
        build_pope([("1", "a.jpg", {"cat"})], [], "random")


# a small COCO file whose popular / adversarial negatives are computed by hand below
COCO_CATS = ["person", "dog", "cat", "car", "bus", "chair", "sofa", "bicycle", "automobile"]
COCO_IMAGES = {1: ["person", "dog"], 2: ["person", "car"], 3: ["person", "car", "bus"], 4: ["dog", "cat"],
               5: ["person", "chair", "car*"], 6: ["sofa"], 7: []}  # "*": a crowd annotation


def _write_coco(path: Path) -> Path:
    cid = {n: i + 1 for i, n in enumerate(COCO_CATS)}
    anns = []
    for iid, names in COCO_IMAGES.items():
        for n in names:
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cid[n.rstrip("*")],
                         "bbox": [1, 1, 4, 4], "iscrowd": int(n.endswith("*")), "area": 16})
    data = {"images": [{"id": i, "file_name": f"COCO_{i:03d}.jpg", "width": 16, "height": 16} for i in COCO_IMAGES],
            "annotations": anns, "categories": [{"id": i, "name": n} for n, i in cid.items()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# image frequency: person 4, car 3 (one crowd), dog 2, bus/cat/chair/sofa 1, bicycle/automobile 0.
# co-occurrence: person-{dog 1, car 3, bus 1, chair 1}, dog-{person 1, cat 1}, car-{person 3, bus 1, chair 1},
# bus-{person 1, car 1}, cat-{dog 1}, chair-{person 1, car 1}. automobile is a synonym of car: never a
# negative where car is present (images 2, 3, 5).
HAND = {
    "popular": {"1": ["car", "bus"], "2": ["dog", "bus"], "3": ["dog", "cat", "chair"], "4": ["person", "car"],
                "5": ["dog", "bus", "cat"], "6": ["person"]},
    "adversarial": {"1": ["car", "bus"], "2": ["bus", "chair"], "3": ["chair", "dog", "bicycle"],
                    "4": ["person", "automobile"], "5": ["bus", "dog", "bicycle"], "6": ["automobile"]},
}


@pytest.mark.parametrize("strategy", ["popular", "adversarial"])
def test_popular_and_adversarial_pick_the_hand_computed_categories(tmp_path, strategy):
    images, cats = coco_pope_images(_write_coco(tmp_path / "instances.json"))
    assert cats == COCO_CATS
    assert images[4] == PopeImage("5", "COCO_005.jpg", {"person", "chair", "car"})  # crowd counts as present
    stats = PopeStats()
    recs = build_pope(images, cats, strategy, 3, stats=stats)
    got = {}
    for r in recs:
        if r["gt_answer"] == "no":
            got.setdefault(r["image_id"], []).append(r["object"])
    assert got == HAND[strategy]
    assert stats.no_objects == 1 and stats.used == 6 and "7" not in {r["image_id"] for r in recs}
    assert recs[0]["id"] == f"1/{strategy}/{recs[0]['object']}"


# ---------------------------------------------------------------------------------------------- metric


PARSER_TABLE = [
    ("Yes", "yes"), ("yes.", "yes"), ("YES!", "yes"), ("Yes, there is a cat in the image.", "yes"),
    ("Yeah", "yes"), ("The answer is yes", "yes"), ("There is a dog on the sofa.", "yes"),
    ("I can see a dog.", "yes"), ("Certainly.", "yes"), ("Sure", "yes"),
    ("No", "no"), ("No.", "no"), ("no, there isn't", "no"), ("There is no cat in the image.", "no"),
    ("I don't see a cat.", "no"), ("I dont see any cat", "no"), ("There isn’t one.", "no"), ("Nope", "no"),
    ("The cat is not in the image", "no"), ("None.", "no"), ("I cannot see a cat.", "no"), ("Certainly not.", "no"),
    ("There is nothing like that.", "no"), ("The answer is no", "no"), ("No, yes", "no"), ("Yes, no doubt", "yes"),
    ("I'm not sure.", None), ("I can't tell from the image.", None), ("I don't know", None), ("", None),
    ("The answer is (A).", None), ("cat", None), ("eyes and noses", None), ("yesterday nobody", "no"),
    (None, None), (42, None), (["yes"], None),
]


@pytest.mark.parametrize("answer,expected", PARSER_TABLE)
def test_yes_no_parser_table(answer, expected):
    assert parse_yes_no(answer) == expected


def test_yes_no_parser_fuzz_never_raises():
    rng = random.Random(0)
    pieces = ["yes", "no", "not", "n't", "'", "’", " ", "\n", "sure", "there is", "Is", "cat", "!", "?", "(A)", "é",
              "\x00", "🙂", "don", "can", "t", "know", "tell", "NO", "Yes", "\\", "[", "]", "*", "+"]
    for _ in range(3000):
        if rng.random() < 0.5:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        else:
            text = "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(0, 40)))
        assert parse_yes_no(text) in ("yes", "no", None)


def _confusion_case():
    # gold yes ×5: yes, yes, yes, no, unparsed  → TP 3, FN 2 (one unparsed)
    # gold no ×5:  yes, no, no, no, unparsed    → FP 1, TN 3, one unparsed (not a FP, not a TN)
    answers = ["Yes", "yes.", "Yes, it is.", "No.", "Hmm.", "Yes", "No", "no", "There is no such thing.", "(B)"]
    records = [{"id": str(i), "gt_answer": "yes" if i < 5 else "no"} for i in range(10)]
    return answers, records


def test_metrics_by_hand():
    answers, records = _confusion_case()
    r = METRICS.get("pope").evaluate(answers, records, ci=False)
    assert r.headline == "f1" and r.n == 10 and r.unparsed == 2
    assert r.metrics == pytest.approx({"accuracy": 60.0, "precision": 75.0, "recall": 60.0,
                                       "f1": 100 * 2 * 0.75 * 0.6 / (0.75 + 0.6), "yes_ratio": 40.0})
    assert r.info["confusion"] == {"tp": 3, "fp": 1, "tn": 3, "fn": 2}
    assert r.info["unparsed_yes_questions"] == 1 and r.info["unparsed_no_questions"] == 1
    assert [row["accuracy"] for row in r.per_sample] == [1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
    assert pope_scores(0, 0, 5, 5, 10)["f1"] == 0.0
    never_yes = METRICS.get("pope").evaluate(["No"] * 4, [{"gt_answer": g} for g in ("yes", "no", "no", "no")],
                                             ci=False)
    assert np.isnan(never_yes.metrics["precision"]) and never_yes.metrics["f1"] == 0.0
    assert never_yes.to_dict()["metrics"]["precision"] is None  # strict JSON
    with pytest.raises(RecordError, match="gt_answer"):
        METRICS.get("pope").evaluate(["yes"], [{"gt_answer": "maybe"}])
    with pytest.raises(RecordError, match="gt_answer"):
        METRICS.get("pope").evaluate(["yes"], [{"id": "x"}])


def test_bootstrap_intervals_resample_samples_and_recompute_f1():
    answers, records = _confusion_case()
    answers, records = answers * 4, [dict(r, id=f"{k}-{r['id']}") for k in range(4) for r in records]
    fam = METRICS.get("pope")
    r = fam.evaluate(answers, records, seed=3, n_boot=300)
    assert r.ci == fam.evaluate(answers, records, seed=3, n_boot=300).ci
    assert set(r.ci) == {"f1", "accuracy", "precision", "recall", "yes_ratio"}
    # brute force: the same resamples, F1 recomputed from each resample's confusion matrix
    yes = np.array([p == "yes" for p in (parse_yes_no(a) for a in answers)])
    gold = np.array([rec["gt_answer"] == "yes" for rec in records])
    reps = []
    for counts in resample_counts(len(records), n_boot=300, seed=3):
        for w in counts:
            tp, fp, fn = w @ (yes & gold), w @ (yes & ~gold), w @ (~yes & gold)
            reps.append(200 * tp / (2 * tp + fp + fn))
    assert r.ci["f1"] == pytest.approx(percentile_interval(np.array(reps)))
    lo, hi = r.ci["f1"]
    assert lo < r.metrics["f1"] < hi


# ---------------------------------------------------------------------------------------------- scenarios, runner, CLI


@pytest.fixture(scope="module")
def synth_root(make_synth_2d) -> Path:
    return make_synth_2d(6, 8, name="synth_pope")


def test_synth_pope_scenario(synth_root):
    for split in ("train", "test"):
        for strategy in STRATEGIES:
            sc = load_scenario(ScenarioConfig(name="Synth-POPE", split=split, params={"strategy": strategy}),
                               synth_root)
            assert sc.metric == "pope" and sc.task_type == "VQA" and sc.chance == 50.0
            assert sc.pope_stats["images"] == (6 if split == "train" else 8)
            samples = sc.samples()
            assert len(samples) == len(sc.records) > 0 and all(s.options == ["yes", "no"] for s in samples)
            assert all(Path(s.media_paths[0]).is_file() for s in samples)
            assert {r["strategy"] for r in sc.records} == {strategy}
    with pytest.raises(ScenarioError, match="per_imag"):
        load_scenario(ScenarioConfig(name="Synth-POPE", params={"per_imag": 2}), synth_root)
    with pytest.raises(ScenarioError, match="strategy"):
        load_scenario(ScenarioConfig(name="Synth-POPE", params={"strategy": "hard"}), synth_root)
    with pytest.raises(MissingDataError, match="lamm data synth"):
        load_scenario(ScenarioConfig(name="Synth-POPE"), synth_root / "nothing")


def test_run_recipe_constant_yes(synth_root, tmp_path):
    res = run_recipe("synth_pope_random", "dummy:constant=Yes", out_dir=tmp_path / "run", root=synth_root,
                     show_progress=False)
    r = res.results
    assert r["family"] == "pope" and r["headline"] == "f1" and r["unparsed"] == 0
    assert r["metrics"]["recall"] == 100.0 and r["metrics"]["yes_ratio"] == 100.0
    share = 100 * r["info"]["positives"] / r["n"]
    assert share == 50.0 and r["metrics"]["precision"] == pytest.approx(share)
    assert r["metrics"]["f1"] == pytest.approx(2 * share * 100 / (share + 100))
    assert r["chance"] == 50.0 and set(r["ci"]) >= {"f1"}


def test_cli_writes_a_file_the_pope_scenario_loads(tmp_path):
    from lamm.cli.data import app

    coco = _write_coco(tmp_path / "coco" / "annotations" / "instances.json")
    img_dir = tmp_path / "coco" / "val"
    img_dir.mkdir()
    for i in COCO_IMAGES:
        (img_dir / f"COCO_{i:03d}.jpg").write_bytes(b"not opened")
    out = tmp_path / "pope_adv.json"
    args = ["pope", "--annotations", str(coco), "--images-root", str(img_dir), "--strategy", "adversarial",
            "--seed", "2", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    first = out.read_bytes()
    assert CliRunner().invoke(app, args).exit_code == 0 and out.read_bytes() == first  # byte-identical
    sc = load_scenario(ScenarioConfig(name="POPE", file=str(out)), img_dir)
    assert sc.records == read_pope_file(out)
    assert all(Path(s.media_paths[0]).is_file() for s in sc.samples())
    # the same questions when the POPE scenario builds them from the COCO file itself
    built = load_scenario(ScenarioConfig(name="POPE", file="annotations/instances.json",
                                         params={"strategy": "adversarial", "seed": 2, "images": "val"}),
                          tmp_path / "coco")
    assert built.records == sc.records and Path(built.samples()[0].media_paths[0]).is_file()
    with pytest.raises(ScenarioError, match="prebuilt POPE file"):
        load_scenario(ScenarioConfig(name="POPE", file=str(out), params={"strategy": "random"}), img_dir)
    bad = CliRunner().invoke(app, args[:-2] + ["--images-root", str(tmp_path), "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "not under --images-root" in bad.output and not (tmp_path / "x.json").exists()


def test_official_pope_jsonl_loads(tmp_path):
    f = tmp_path / "coco_pope_random.json"
    f.write_text('{"question_id": 1, "image": "a.jpg", "text": "Is there a snowboard in the image?", "label": "yes"}\n'
                 '{"question_id": 2, "image": "a.jpg", "text": "Is there a cell phone in the image?", "label": "no"}\n')
    sc = load_scenario(ScenarioConfig(name="POPE", file=f.name), tmp_path)
    assert [(r["id"], r["object"], r["gt_answer"]) for r in sc.records] == [("1", "snowboard", "yes"),
                                                                           ("2", "cell phone", "no")]
    f.write_text('[{"id": "x", "image": "a.jpg", "query": "Is there a cat?", "gt_answer": "maybe"}]')
    with pytest.raises(ScenarioError, match=r"record 0 \(id 'x'\): field 'gt_answer'"):
        load_scenario(ScenarioConfig(name="POPE", file=f.name), tmp_path)
    with pytest.raises(ScenarioError, match="scenario.file"):
        load_scenario(ScenarioConfig(name="POPE"), tmp_path)


def test_docstring_examples():
    import doctest

    import lamm.bench.desiderata.pope as mod

    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0
