"""ICL retrievers: deterministic, never the sample itself, top-k by text and by image similarity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_synth_layout

from lamm.bench.icl import (
    FixedRetriever,
    ImageRetriever,
    RandomRetriever,
    TfidfRetriever,
    make_retriever,
    point_cloud_embedding,
)
from lamm.bench.recipe import load_recipe
from lamm.bench.runner import build_retriever, run_recipe
from lamm.bench.scenarios import Sample, ScenarioError, load_scenario
from lamm.conversation import MediaRef


def _s(i: int | str, question: str = "q", path: str | None = None, answer: str = "a") -> Sample:
    return Sample(id=str(i), media=[MediaRef("image", path=path or f"/img/{i}.png")], question=question,
                  references={}, answer=answer)


def test_random_is_seeded_by_sample_and_never_the_sample():
    pool = [_s(i) for i in range(10)]
    r = RandomRetriever(pool, k=3, seed=0)
    for i in range(10):
        got = r.retrieve(pool[i])  # the sample is in the pool: it must never come back
        assert len(got) == 3 and len({g.id for g in got}) == 3 and pool[i].id not in {g.id for g in got}
    assert [g.id for g in r.retrieve(pool[0])] == [g.id for g in RandomRetriever(pool, 3, seed=0).retrieve(pool[0])]
    picks = {tuple(g.id for g in r.retrieve(_s(f"x{j}"))) for j in range(8)}
    assert len(picks) > 1, "different samples get different examples"


def test_same_media_or_record_is_excluded_and_short_pool_errors():
    pool = [_s("other", path="/img/q.png"), _s("q/part", path="/img/z.png"), _s(1), _s(2)]
    pool[1].group = "q"
    q = _s("q", path="/img/q.png")
    assert {g.id for g in RandomRetriever(pool, 2).retrieve(q)} == {"1", "2"}
    with pytest.raises(ValueError, match="fewer than k=3"):
        RandomRetriever(pool, 3).retrieve(q)
    no_answer = [_s(5, answer=None), _s(6)]  # type: ignore[arg-type]
    assert [g.id for g in RandomRetriever(no_answer, 1).retrieve(q)] == ["6"]


def test_fixed():
    pool = [_s(i) for i in range(5)]
    r = FixedRetriever(pool, 2, ids=["3", "1"])
    assert [g.id for g in r.retrieve(_s("x"))] == ["3", "1"]
    assert [g.id for g in r.retrieve(pool[3])] == ["1", "0"]  # itself replaced by the next pool sample
    assert [g.id for g in make_retriever("fixed", pool, 2).retrieve(_s("x"))] == ["0", "1"]
    with pytest.raises(ValueError, match="not in the pool"):
        FixedRetriever(pool, 1, ids=["nope"])


def test_topk_text_most_similar_last():
    pool = [_s(0, "how many red circles are there"), _s(1, "what colour is the sky"),
            _s(2, "how many circles"), _s(3, "name the animal")]
    got = TfidfRetriever(pool, 2).retrieve(_s("q", "are there red circles"))
    assert [g.id for g in got] == ["2", "0"]  # "0" shares the most (and the rarest) words: shown last
    assert [g.id for g in TfidfRetriever(pool, 1).retrieve(pool[0])] == ["2"]  # never itself


def test_topk_image_by_content(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(4)]
    paths = []
    for i, a in enumerate(arrays):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(a).save(paths[-1])
    query_path = tmp_path / "q.png"
    Image.fromarray(np.clip(arrays[2].astype(int) + 3, 0, 255).astype(np.uint8)).save(query_path)
    pool = [_s(i, path=str(p)) for i, p in enumerate(paths)]
    got = ImageRetriever(pool, 2).retrieve(_s("q", path=str(query_path)))
    assert got[-1].id == "2"
    # the identical file is excluded even under another id
    assert "2" not in {g.id for g in ImageRetriever(pool, 2).retrieve(_s("q2", path=str(paths[2])))}


def test_point_cloud_embedding_and_retrieval(tmp_path):
    rng = np.random.default_rng(0)
    flat = np.concatenate([rng.uniform(-1, 1, (200, 2)), np.zeros((200, 1))], axis=1)
    ball = rng.normal(size=(200, 3))
    e1, e2 = point_cloud_embedding(flat), point_cloud_embedding(ball)
    assert e1.shape == (67,) and not np.allclose(e1, e2)
    pool = []
    for i, pts in enumerate([flat, ball]):
        np.save(tmp_path / f"{i}.npy", pts.astype(np.float32))
        pool.append(Sample(id=str(i), media=[MediaRef("pcl", path=str(tmp_path / f"{i}.npy"))], question="q",
                           references={}, answer="a"))
    np.save(tmp_path / "q.npy", (ball * 1.01).astype(np.float32))
    q = Sample(id="q", media=[MediaRef("pcl", path=str(tmp_path / "q.npy"))], question="q", references={})
    assert ImageRetriever(pool, 1).retrieve(q)[0].id == "1"


def test_runner_draws_examples_from_the_pool_split(tmp_path):
    root = make_synth_layout(tmp_path / "synth")
    recipe = load_recipe("synth_classification_icl")
    out = run_recipe(recipe, "dummy", out_dir=tmp_path / "run", root=root, show_progress=False)
    import json

    rows = [json.loads(line) for line in (tmp_path / "run" / "answers.jsonl").read_text().splitlines()]
    assert len(rows) == out.results["n"] == 4
    for row in rows:
        assert row["prompt"].count("<image>") == 3  # two examples + the question
    sc = load_scenario(recipe.scenario, root)
    ret = build_retriever(recipe, sc, root)
    for s in sc.samples():
        assert all(int(e.id) < 500001 for e in ret.retrieve(s)), "examples come from the train split"
    for bad, msg in (("instruction.icl.pool=test", "evaluated file itself"),
                     ("instruction.icl.pool=null", "icl.pool is not set")):
        with pytest.raises(ScenarioError, match=msg):
            build_retriever(load_recipe("synth_classification_icl", [bad]), sc, root)
    ret = build_retriever(load_recipe("synth_classification_icl", ["instruction.icl.retriever=topk_text",
                                                                   "instruction.icl.pool=benchmark/train/Classification_Synth.json"]), sc, root)
    assert len(ret.retrieve(sc.samples()[0])) == 2


def test_a_task_without_gold_answer_text_refuses_icl_before_the_engine_loads(tmp_path):
    import json

    from _lammbench_helpers import make_lamm_benchmark

    from lamm.bench.recipe import Recipe

    root = make_lamm_benchmark(tmp_path / "data", scenarios=["Locating-LSP", "Locating-FSC147", "LSP"])
    for name, fname in (("Locating-LSP", "Locating_LSP.json"), ("Locating-FSC147", "Locating_FSC147.json"),
                        ("LSP", "Keypoints_Detection_LSP.json")):
        (root / f"pool_{fname}").write_text((root / fname).read_text())
        recipe = Recipe.model_validate({"name": "icl", "scenario": {"name": name}, "instruction": {
            "icl": {"retriever": "random", "k": 1, "pool": f"pool_{fname}"}}})
        sc = load_scenario(recipe.scenario, root)
        msg = rf"scenario '{name}' \(family '\w+'\) has no gold answer text for in-context examples.*ICL"
        with pytest.raises(ScenarioError, match=msg):
            build_retriever(recipe, sc, root)
        with pytest.raises(ScenarioError, match="no gold answer text"):  # the engine is never loaded
            run_recipe(recipe, "no-such-backend:x", out_dir=tmp_path / "run", root=root, show_progress=False)
    assert json.loads((root / "Locating_LSP.json").read_text())  # the data itself is fine
    # the retriever says so too, and a short pool says how many samples had no answer to show
    with pytest.raises(ValueError, match="no gold answer text for in-context examples"):
        RandomRetriever([_s(i, answer=None) for i in range(3)], 1)
    ret = RandomRetriever([_s(1), _s(2, answer=None), _s(3, answer=None)], 2)
    with pytest.raises(ValueError, match=r"1 eligible examples .*\(2 of its 3 samples have no gold answer"):
        ret.retrieve(_s(9))


def test_runner_icl_pool_in_the_release_layout(tmp_path):
    from _lammbench_helpers import make_release_pool

    from lamm.bench.recipe import Recipe

    root, _ = make_release_pool(tmp_path, "2D_Benchmark/meta_file/CIFAR10_pool.json")
    recipe = Recipe.model_validate({"name": "icl", "scenario": {"name": "CIFAR10"}, "instruction": {
        "icl": {"retriever": "topk_image", "k": 1, "pool": "2D_Benchmark/meta_file/CIFAR10_pool.json"}}})
    out = run_recipe(recipe, "dummy", out_dir=tmp_path / "run", root=root, show_progress=False)
    assert out.results["n"] == 3
    ret = build_retriever(recipe, load_scenario(recipe.scenario, root), root)
    assert all(Path(p.media[0].path).is_file() for p in ret.pool)
