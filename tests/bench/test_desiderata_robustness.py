"""Robustness desideratum: seeded corruptions (image, point cloud, text), corrupted scenarios that every
backend and cache tells apart from the clean ones, and RRM against hand-computed values."""

from __future__ import annotations

import base64
import doctest
import io
import json
import math
import pickle
import random
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_synth_layout

from lamm.bench.cache import ResponseCache
from lamm.bench.desiderata import robustness as rob
from lamm.bench.desiderata import text_corruptions
from lamm.bench.desiderata.corruptions import (
    CORRUPTIONS,
    DROPOUT_MIN_POINTS,
    CorruptionTransform,
    apply_corruption,
    corruptions_for,
    describe_corruptions,
)
from lamm.bench.desiderata.robustness import (
    CorruptedRecordScenario,
    CorruptedScenario,
    corrupt_scenario,
    robustness_summary,
    rrm,
    rrm_undefined_reason,
)
from lamm.bench.options import split_options
from lamm.bench.recipe import CorruptionConfig, Recipe, ScenarioConfig, load_recipe, recipe_hash
from lamm.bench.runner import run_recipe
from lamm.bench.scenarios import ScenarioError, load_scenario
from lamm.conversation import Conversation, MediaRef
from lamm.media import load_media

IMAGE = [n for n in CORRUPTIONS if CORRUPTIONS.get(n).modality == "image"]
PCL = [n for n in CORRUPTIONS if CORRUPTIONS.get(n).modality == "pcl"]
TEXT = [n for n in CORRUPTIONS if CORRUPTIONS.get(n).modality == "text"]
MC = "Context: a sunny garden. Question: Which colour is the largest circle here? Options: (A) red (B) blue (C) green"


def _picture(size: int = 96) -> Image.Image:
    """A smooth gradient with a few flat shapes: blur, JPEG and pixelation all visibly change it."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size] / size
    a = np.stack([x, y, 1 - x * y], axis=-1) * 200
    for _ in range(6):
        x0, y0, w = rng.integers(0, size - 20, 3)
        a[y0:y0 + 10 + w % 20, x0:x0 + 10 + w % 15] = rng.integers(0, 255, 3)
    return Image.fromarray(a.astype(np.uint8))


def _cloud(n: int = 2048) -> np.ndarray:
    rng = np.random.default_rng(2)
    return np.concatenate([rng.uniform(-1, 1, (n, 3)), rng.uniform(0, 1, (n, 3))], axis=1).astype(np.float32)


def _diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


def _run(name, x, severity=3, seed=0, sample_id="s1"):
    return apply_corruption(name, x, severity, seed=seed, sample_id=sample_id)


def test_registry_and_severity_tables():
    assert set(IMAGE) >= {"gaussian_noise", "gaussian_blur", "jpeg", "brightness", "contrast", "occlusion"}
    assert set(PCL) == {"jitter", "dropout", "rotation", "outliers"}
    assert set(TEXT) == {"typos", "word_swap", "distractor"}
    assert all(len(r["levels"]) == 5 and r["description"] for r in describe_corruptions())
    assert set(corruptions_for("pcl")) == set(PCL) | set(TEXT)
    with pytest.raises(ValueError, match="severity must be an integer 1–5"):
        _run("jpeg", _picture(), severity=6)
    with pytest.raises(KeyError, match="did you mean 'gaussian_noise'"):
        _run("gausian_noise", _picture())
    with pytest.raises(TypeError, match="corrupts images"):
        _run("jpeg", _cloud())
    with pytest.raises(ValueError, match=r"point clouds \(N, 3\|6\)"):
        _run("jitter", np.zeros((5, 4), np.float32))


@pytest.mark.parametrize("name", IMAGE)
def test_image_corruptions(name):
    img = _picture()
    out = _run(name, img)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == img.size
    assert out.tobytes() == _run(name, img).tobytes(), "same (seed, id, name, severity) -> same bytes"
    assert _diff(out, img) > 1.0, "the corruption visibly changes the image"
    if CORRUPTIONS.get(name).stochastic:
        assert out.tobytes() != _run(name, img, seed=1).tobytes()
        assert out.tobytes() != _run(name, img, sample_id="s2").tobytes()
    else:  # blur, JPEG, ...: no randomness at all
        assert out.tobytes() == _run(name, img, seed=1).tobytes()
    assert _run(name, img.convert("L")).mode == "RGB"


@pytest.mark.parametrize("name", ["gaussian_noise", "gaussian_blur", "salt_pepper", "pixelate", "occlusion"])
def test_image_severity_is_monotone(name):
    img = _picture()
    diffs = [_diff(_run(name, img, severity=s), img) for s in range(1, 6)]
    assert diffs == sorted(diffs) and diffs[-1] > 2 * diffs[0], diffs


@pytest.mark.parametrize("name", PCL)
def test_point_cloud_corruptions(name):
    pts = _cloud()
    out = _run(name, pts)
    assert out.dtype == np.float32 and out.ndim == 2 and out.shape[1] == 6
    assert out.tobytes() == _run(name, pts).tobytes()
    assert out.tobytes() != _run(name, pts, seed=1).tobytes()
    assert out.tobytes() != _run(name, pts, sample_id="s2").tobytes()
    assert _run(name, pts[:, :3]).shape[1] == 3
    if name in ("jitter", "rotation"):
        assert out.shape == pts.shape and np.array_equal(out[:, 3:], pts[:, 3:]), "colours untouched"
        assert np.linalg.norm(out[:, :3] - pts[:, :3], axis=1).mean() > 0.01
        assert np.allclose(out[:, 2], pts[:, 2], atol=1e-6) or name == "jitter", "rotation keeps z"
    if name == "dropout":
        assert len(out) == math.ceil(len(pts) * 0.5)
        rows = {r.tobytes() for r in pts}
        assert all(r.tobytes() in rows for r in out), "dropout keeps points as they were"
        small = _cloud(40)
        assert np.array_equal(_run(name, small), small), f"at least {DROPOUT_MIN_POINTS} points are kept"
        assert len(_run(name, _cloud(100), severity=5)) == DROPOUT_MIN_POINTS
    if name == "outliers":
        assert np.array_equal(out[: len(pts)], pts) and len(out) == len(pts) + round(0.05 * len(pts))
        extra = out[len(pts):, :3]
        assert (extra >= pts[:, :3].min(0) - 1e-6).all() and (extra <= pts[:, :3].max(0) + 1e-6).all()


def test_point_cloud_severity_is_monotone():
    pts = _cloud()
    moved = [np.linalg.norm(_run("jitter", pts, severity=s)[:, :3] - pts[:, :3], axis=1).mean() for s in range(1, 6)]
    assert moved == sorted(moved) and moved[-1] > 3 * moved[0]
    kept = [len(_run("dropout", pts, severity=s)) for s in range(1, 6)]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]
    # the angle of rotation grows with the severity: compare the displacement of the same points
    turned = [np.linalg.norm(_run("rotation", pts, severity=s)[:, :2] - pts[:, :2], axis=1).mean() for s in (1, 5)]
    assert turned[1] > turned[0]


@pytest.mark.parametrize("name", TEXT)
def test_text_corruptions(name):
    q = "What is the largest shape in the picture of the garden?"
    out = _run(name, q)
    assert isinstance(out, str) and out != q
    assert out == _run(name, q)
    assert _run(name, q, seed=1) != out or _run(name, q, sample_id="s9") != out
    assert len({_run(name, q, sample_id=f"s{i}") for i in range(20)}) > 3, "the sample id seeds the choices"
    for sev in range(1, 6):
        got = _run(name, MC, severity=sev)
        _, tail = split_options(MC)
        assert got.endswith(tail) and got != MC, "options and their labels are never corrupted"
        assert "Question:" in got and got.startswith("Context:") or name == "distractor", "field labels kept"


def test_text_corruptions_never_raise_and_keep_options():
    rnd = random.Random(0)
    alphabet = "abcdefghij XYZ?:.,()\n\t" + "é"
    for i in range(300):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40)))
        if rnd.random() < 0.5:
            text += rnd.choice([" Options: (A) x (B) y", "\nOptions:\n(A) one\n(B) two", " (A) cat (B) dog"])
        stem, tail = split_options(text)
        assert stem + tail == text
        for name in TEXT:
            out = _run(name, text, severity=rnd.randint(1, 5), sample_id=str(i))
            assert out.endswith(tail)


def test_text_strength_grows_with_severity():
    q = " ".join(["shape", "colour", "circle", "square", "triangle", "large", "small", "image"] * 3)
    for name in ("typos", "word_swap"):
        changed = [sum(a != b for a, b in zip(q.split(), _run(name, q, severity=s).split())) for s in (1, 5)]
        assert changed[1] > changed[0], (name, changed)
    assert _run("distractor", q, severity=5).count(".") == 5


def test_doctests():
    for mod in (rob, text_corruptions):
        res = doctest.testmod(mod)
        assert res.failed == 0 and res.attempted > 0


# -------------------------------------------------------------------------------------------------- RRM
def test_rrm_by_hand_and_edge_cases():
    assert rrm(50.0, 80.0, 20.0) == 50.0
    assert rrm(80.0, 80.0, 20.0) == 100.0 and rrm(20.0, 80.0, 20.0) == 0.0
    assert rrm(90.0, 80.0, 20.0) == pytest.approx(116.6666667)  # better on corrupted input: not clipped
    assert rrm(10.0, 80.0, 20.0) == pytest.approx(-16.6666667)  # below chance
    assert rrm(0.5, 0.8, 0.2) == pytest.approx(50.0)  # any consistent unit
    for bad in ((50.0, 20.0, 20.0), (50.0, 10.0, 20.0), (math.nan, 80.0, 20.0), (50.0, 80.0, math.nan)):
        assert math.isnan(rrm(*bad)) and rrm_undefined_reason(*bad)
    assert "not above chance" in rrm_undefined_reason(30.0, 20.0, 25.0)
    assert rrm_undefined_reason(50.0, 80.0, 20.0) is None


def test_robustness_summary():
    s = robustness_summary(80.0, {"gaussian_noise@3": 50.0, "typos@3": 71.0, "jpeg@3": 20.0}, 20.0)
    per = {k: v["rrm"] for k, v in s["per_corruption"].items()}
    assert per == pytest.approx({"gaussian_noise@3": 50.0, "typos@3": 85.0, "jpeg@3": 0.0})
    assert s["mean_corrupted_accuracy"] == pytest.approx(47.0)
    assert s["rrm"] == pytest.approx(45.0) == pytest.approx(sum(per.values()) / 3), "both definitions agree"
    assert s["undefined"] is None and s["n_corruptions"] == 3
    low = robustness_summary(20.0, {"a": 30.0}, 25.0)
    assert math.isnan(low["rrm"]) and "not above chance" in low["undefined"]
    missing = robustness_summary(80.0, {"a": 50.0, "b": math.nan}, 20.0)
    assert math.isnan(missing["rrm"]) and "no accuracy for b" in missing["undefined"]
    assert missing["per_corruption"]["a"]["rrm"] == 50.0
    with pytest.raises(ValueError, match="at least one"):
        robustness_summary(80.0, {}, 20.0)


# ------------------------------------------------------------------------------------ scenarios and runs
@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return make_synth_layout(tmp_path_factory.mktemp("synth"))


def _cfg(name: str, severity: int = 3, seed: int = 0, scenario: str = "Synth-Classification") -> ScenarioConfig:
    return ScenarioConfig(name=scenario, corruption=CorruptionConfig(name=name, severity=severity, seed=seed))


def test_corrupt_scenario_media_is_lazy_and_keyed(synth_root):
    clean = load_scenario(ScenarioConfig(name="Synth-Classification"), synth_root)
    noisy = load_scenario(_cfg("gaussian_noise"), synth_root)
    assert isinstance(noisy, CorruptedRecordScenario) and noisy.records == clean.records
    assert noisy.chance == clean.chance and noisy.metric == clean.metric
    cs, ns = clean.samples(), noisy.samples()
    assert [s.id for s in cs] == [s.id for s in ns] and [s.question for s in cs] == [s.question for s in ns]
    for c, n in zip(cs, ns):
        ref = n.media[0]
        assert ref.data is None and ref.path == c.media[0].path, "lazy: nothing decoded yet"
        assert ref.variant == f"gaussian_noise@3#0/{n.id}"
        want = apply_corruption("gaussian_noise", load_media(ref.path), 3, seed=0, sample_id=n.id)
        assert ref.read().tobytes() == want.tobytes() and ref.data is None
        assert ref.read().tobytes() != load_media(ref.path).tobytes()
    assert pickle.loads(pickle.dumps(ns[0].media[0])).read().tobytes() == ns[0].media[0].read().tobytes()
    # the inferencers' fresh copies keep the transform
    from lamm.bench.inferencers import _media

    fresh = _media(ns[0])[0]
    assert fresh is not ns[0].media[0] and fresh.variant == ns[0].media[0].variant
    assert fresh.load().tobytes() == ns[0].media[0].read().tobytes()


def test_media_ref_transform_contract(tmp_path):
    p = tmp_path / "a.png"
    _picture(32).save(p)
    t = CorruptionTransform("jpeg", 5, 0, "x")
    with pytest.raises(ValueError, match="go together"):
        MediaRef("image", path=str(p), transform=t)
    with pytest.raises(ValueError, match="needs a path"):
        MediaRef("image", data=_picture(32), transform=t, variant=t.variant)
    ref = MediaRef("image", path=str(p), transform=t, variant=t.variant)
    assert ref.load().tobytes() == _run("jpeg", load_media(p), severity=5, sample_id="x").tobytes()
    assert replace(ref, data=None).read().tobytes() == ref.data.tobytes()


def test_text_corruption_of_a_scenario(synth_root):
    clean = load_scenario(ScenarioConfig(name="Synth-VQA"), synth_root).samples()
    typo = load_scenario(_cfg("typos", scenario="Synth-VQA"), synth_root).samples()
    for c, t in zip(clean, typo):
        assert t.question != c.question and t.options == c.options and t.media == c.media
        assert t.question.endswith(split_options(c.question)[1])
    pcl = load_scenario(_cfg("distractor", scenario="Synth3D-Grounding"), synth_root).samples()
    assert all(s.question.endswith("Find the brown chair closest to the window.") for s in pcl)


def test_errors_name_the_field_and_what_fits(synth_root):
    with pytest.raises(ScenarioError, match=r"scenario\.corruption\.name: 'jitter' corrupts pcl input.*"
                                            r"corruptions that fit: .*gaussian_noise.*typos"):
        load_scenario(_cfg("jitter"), synth_root)
    with pytest.raises(ScenarioError, match=r"scenario\.corruption\.name: unknown corruption 'gausian_noise'; "
                                            r"did you mean 'gaussian_noise'"):
        load_scenario(_cfg("gausian_noise"), synth_root)
    with pytest.raises(ScenarioError, match="corrupts image input.*fit: .*jitter"):
        load_scenario(_cfg("occlusion", scenario="Synth3D-Grounding"), synth_root)


def test_unchanged_questions_are_counted(tmp_path):
    root = make_synth_layout(tmp_path / "s", n_train=1, n_test=2)
    f = root / "benchmark" / "test" / "Classification_Synth.json"
    recs = json.loads(f.read_text())
    recs[0]["query"] = "Shape?"  # one word: nothing to swap
    f.write_text(json.dumps(recs))
    sc = load_scenario(_cfg("word_swap"), root)
    with pytest.warns(UserWarning, match="left 1 question"):
        sc.samples()
    assert sc.unchanged == {recs[0]["id"]}


def test_other_scenario_types_are_wrapped(synth_root):
    inner = load_scenario(ScenarioConfig(name="Synth-Classification"), synth_root)

    class Other:  # any object with the Scenario protocol
        name, metric, task_type, modality, source = "o", "classification", "classification", "image", "src"
        records = inner.records

        def samples(self, indices=None):
            return inner.samples(indices)

    wrapped = corrupt_scenario(Other(), CorruptionConfig(name="contrast", severity=2))
    assert isinstance(wrapped, CorruptedScenario) and wrapped.records is inner.records
    assert all(s.media[0].variant.startswith("contrast@2#0/") for s in wrapped.samples([0, 1]))


def test_run_recipe_clean_vs_corrupted_with_dummy(synth_root, tmp_path):
    cache = tmp_path / "cache.sqlite"
    kw = {"root": synth_root, "cache_path": cache, "show_progress": False}
    clean = run_recipe("synth_classification", "dummy", out_dir=tmp_path / "clean", **kw)
    noisy = run_recipe("synth_classification_noise", "dummy", out_dir=tmp_path / "noisy", **kw)
    assert noisy.n_generated == clean.n_generated == 4 and noisy.n_cached == 0, "no clean answer is reused"
    base = load_recipe("synth_classification")
    typo = Recipe(name="typo", scenario=_cfg("typos"), inferencer=base.inferencer)
    typos = run_recipe(typo, "dummy", out_dir=tmp_path / "typo", **kw)
    assert typos.n_generated == 4
    rows = {k: [json.loads(x) for x in (tmp_path / k / "answers.jsonl").read_text().splitlines()]
            for k in ("clean", "noisy", "typo")}
    assert [r["id"] for r in rows["noisy"]] == [r["id"] for r in rows["clean"]]
    # image corruption: the same prompt text, but the dummy's answer hashes the media identity
    assert [r["prompt"] for r in rows["noisy"]] == [r["prompt"] for r in rows["clean"]]
    assert sum(a["answer"] != b["answer"] for a, b in zip(rows["noisy"], rows["clean"])) >= 3
    assert all(a["prompt"] != b["prompt"] for a, b in zip(rows["typo"], rows["clean"]))
    assert "corruption" not in clean.results
    assert noisy.results["corruption"] == {"name": "gaussian_noise", "severity": 3, "seed": 0, "unchanged": 0}
    assert typos.results["corruption"]["name"] == "typos" and typos.results["corruption"]["unchanged"] == 0
    hashes = {recipe_hash(load_recipe("synth_classification")), recipe_hash(load_recipe("synth_classification_noise")),
              recipe_hash(typo)}
    assert len(hashes) == 3
    with ResponseCache(cache) as c:
        assert [c.count("dummy:echo", h) for h in sorted(hashes)] == [4, 4, 4]
    again = run_recipe("synth_classification_noise", "dummy", out_dir=tmp_path / "noisy", **kw)
    assert again.n_generated == 0 and again.results == noisy.results


def test_backend_media_identities_differ_for_corrupted_refs(synth_root, tmp_path):
    from lamm.bench.icl import media_embedding
    from lamm.infer.backends.dummy import _conversation_key
    from lamm.infer.backends.lamm import media_key
    from lamm.infer.backends.openai import media_data_url

    clean = load_scenario(ScenarioConfig(name="Synth-Classification"), synth_root).samples()[0]
    noisy = load_scenario(_cfg("gaussian_noise"), synth_root).samples()[0]
    c_ref, n_ref = clean.media[0], noisy.media[0]
    assert media_key(c_ref, None) != media_key(n_ref, None)
    assert media_key(n_ref, None) == media_key(replace(n_ref, data=None), None), "stable within a call"
    conv = [Conversation.single_turn("q", [r]) for r in (c_ref, n_ref)]
    assert _conversation_key(conv[0]) != _conversation_key(conv[1])
    # openai/vllm: the corrupted pixels are sent, not the clean file
    url = media_data_url(replace(n_ref), None)
    assert url.startswith("data:image/png;base64,")
    sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    assert sent.tobytes() == n_ref.read().tobytes()
    assert media_data_url(replace(c_ref), None) != url
    # ICL top-k by image embeds what the model is shown
    assert not np.allclose(media_embedding(clean), media_embedding(noisy))


def test_lamm_model_preprocessing_sees_corrupted_media(synth_root):
    from lamm.model.config import model_preset
    from lamm.model.mllm import preprocess_media

    cfg = model_preset("tiny")
    clean = load_scenario(ScenarioConfig(name="Synth-Classification"), synth_root).samples()[0].media[0]
    noisy = load_scenario(_cfg("occlusion", severity=5), synth_root).samples()[0].media[0]
    a = preprocess_media(cfg, [clean])["image"]
    b = preprocess_media(cfg, [noisy])["image"]
    c = preprocess_media(cfg, [MediaRef("image", data=noisy.read())])["image"]
    assert not np.allclose(a.numpy(), b.numpy()) and np.array_equal(b.numpy(), c.numpy())
    assert noisy.data is None, "preprocessing does not pin the image on the ref"
