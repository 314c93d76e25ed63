"""The ``lamm:`` backend on the tiny checkpoint: batching, media caching, streaming, scoring, LoRA merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lamm.conversation import Conversation, MediaRef, context_token_count, tokenize_continuation
from lamm.infer.engine import GenerateRequest, GenerationSettings, LoglikelihoodRequest, load_engine


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    Image.new("RGB", (50, 40), "red").save(d / "red.png")
    Image.new("RGB", (30, 60), "blue").save(d / "blue.png")
    np.save(d / "cloud.npy", np.random.default_rng(0).uniform(size=(1500, 6)).astype(np.float32))
    return d


@pytest.fixture(scope="module")
def engine(tiny_model_dir, media):
    eng = load_engine(f"lamm:{tiny_model_dir}", media_root=str(media), batch_size=3, device="cpu")
    yield eng
    eng.close()


def _req(q: str, path: str | None = None, modality: str = "image", **kw) -> GenerateRequest:
    refs = [MediaRef(modality, path=path)] if path else []
    return GenerateRequest(Conversation.single_turn(q, refs), GenerationSettings(**{"max_new_tokens": 12, **kw}))


def _requests() -> list[GenerateRequest]:
    return [_req("what is it?", "red.png"), _req("describe the image in detail, please", "red.png"),
            _req("what colour?", "blue.png"), _req("what object?", "cloud.npy", "pcl"), _req("hello"),
            _req("and this one?", "red.png")]


def test_batched_equals_one_by_one_model_generate(engine):
    reqs = _requests()
    got = engine.generate(reqs)
    m = engine.model
    want = []
    for r in reqs:
        tc = m.tokenize(r.conversation, add_generation_prompt=True)
        want += m.generate([tc], m.preprocess_media(tc.media, engine.media_root), max_new_tokens=12)
    assert got == want
    # red.png is shared by three requests in different batches: encoded once
    assert engine.last_call_encoded == 3
    assert engine.usage.prompt_tokens > 0 and engine.usage.completion_tokens > 0


def test_stream_pieces_join_to_generate(engine):
    for r in _requests()[:4]:
        pieces = list(engine.stream(r))
        assert "".join(pieces) == engine.generate([r])[0]


def test_seeded_sampling_is_reproducible(engine):
    r = _req("what is it?", "red.png", temperature=1.0, top_p=0.9, seed=7, max_new_tokens=8)
    assert engine.generate([r]) == engine.generate([r])
    assert "".join(engine.stream(r)) == engine.generate([r])[0]


def test_template_stop_and_request_stop(engine):
    r = _req("what is it?", "red.png")
    full = engine.generate([r])[0]
    assert "###" not in full
    if len(full) > 3:
        r.settings.stop = [full[2:4]]
        assert engine.generate([r])[0] == full[: full.index(full[2:4])].strip()


def test_loglikelihood_kv_reuse_matches_model(engine, media):
    conv = Conversation.single_turn("what colour is it?", [MediaRef("image", path="red.png")])
    other = Conversation.single_turn("what is it?", [MediaRef("pcl", path="cloud.npy")])
    options = [" red", " a blue square", " green", " yes"]
    reqs = [LoglikelihoodRequest(conv, o) for o in options] + [LoglikelihoodRequest(other, " a cube")]
    got = engine.loglikelihood(reqs)
    assert engine.last_call_encoded == 2  # the image once for four options
    m = engine.model
    prompts = [m.tokenize(r.conversation, add_generation_prompt=True) for r in reqs]
    want = m.loglikelihood(prompts, [tokenize_continuation(r.continuation, m.tokenizer) for r in reqs],
                           m.preprocess_media([x for p in prompts for x in p.media], engine.media_root))
    for g, (s, mean, n) in zip(got, want):
        assert g.n_tokens == n
        assert g.sum_logprob == pytest.approx(s, abs=1e-4) and g.mean_logprob == pytest.approx(mean, abs=1e-4)
    engine.kv_reuse = False
    try:
        plain = engine.loglikelihood(reqs)
    finally:
        engine.kv_reuse = True
    assert [p.sum_logprob for p in plain] == pytest.approx([g.sum_logprob for g in got], abs=1e-4)


def test_loglikelihood_context_is_conditioned_on_but_not_scored(engine, media):
    """A request with ``context`` scores only its continuation's tokens, after the context: the same
    per-token log-probs as the whole reply scored, minus the context's leading tokens (kv and plain)."""
    conv = Conversation.single_turn("what colour is it?", [MediaRef("image", path="red.png")])
    m = engine.model
    reply = tokenize_continuation("The answer is (A) red", m.tokenizer)
    ctx = tokenize_continuation("The answer is (", m.tokenizer)
    k = context_token_count(reply, ctx)
    assert 0 < k < len(reply)
    prompt = m.tokenize(conv, add_generation_prompt=True)
    media_t = m.preprocess_media(list(prompt.media), engine.media_root)
    # the whole reply's per-token log-probs, from the model's own scorer, one continuation token at a time
    token_lp = []
    for j in range(1, len(reply) + 1):
        (s_j, _, _), = m.loglikelihood([prompt], [reply[:j]], media_t)
        token_lp.append(s_j - sum(token_lp))
    want = sum(token_lp[k:])
    for kv in (True, False):
        engine.kv_reuse = kv
        try:
            got = engine.loglikelihood([LoglikelihoodRequest(conv, "A) red", context="The answer is ("),
                                        LoglikelihoodRequest(conv, "The answer is (A) red")])
        finally:
            engine.kv_reuse = True
        assert got[0].n_tokens == len(reply) - k and got[1].n_tokens == len(reply)
        assert got[0].sum_logprob == pytest.approx(want, abs=1e-4)
        assert got[0].mean_logprob == pytest.approx(want / (len(reply) - k), abs=1e-4)
        assert got[1].sum_logprob == pytest.approx(sum(token_lp), abs=1e-4)
    with pytest.raises(ValueError, match="has no tokens"):
        engine.loglikelihood([LoglikelihoodRequest(conv, "", context="The answer is (")])


def test_fingerprint_is_the_manifest_fingerprint(engine, tiny_model_dir):
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    assert engine.fingerprint() == f"lamm:{manifest['fingerprint']}"


def test_auto_batch_size_backs_off_on_oom(engine, monkeypatch):
    from lamm.infer.batching import Batcher

    engine_batcher = engine.batcher
    engine.batcher = Batcher("auto", auto_start=8)
    real = engine._generate_batch
    sizes = []

    def flaky(batch, cache):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(batch, cache)

    monkeypatch.setattr(engine, "_generate_batch", flaky)
    try:
        reqs = _requests()
        got = engine.generate(reqs)
    finally:
        engine.batcher = engine_batcher
    assert sizes[:3] == [6, 3, 1] and set(sizes[3:]) == {1} and engine.batcher is engine_batcher
    monkeypatch.undo()
    assert got == engine.generate(reqs)


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    from lamm.model.checkpoint import save_checkpoint
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    model = MultimodalLM.from_config(model_preset("tiny", ["llm_mode=lora"]))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a LoRA that changes the model (B starts at zero: merging would be trivial)
        for name, p in model.llm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    out = tmp_path_factory.mktemp("lora") / "ckpt"
    save_checkpoint(model, out)
    return out


def test_merge_lora_gives_the_same_answers(lora_dir, media):
    plain = load_engine(f"lamm:{lora_dir}", media_root=str(media), device="cpu")
    merged = load_engine(f"lamm:{lora_dir}", media_root=str(media), device="cpu", merge_lora=True)
    assert not any("lora_" in n for n, _ in merged.model.llm.named_parameters())
    assert any("lora_" in n for n, _ in plain.model.llm.named_parameters())
    reqs = _requests()[:3]
    assert merged.generate(reqs) == plain.generate(reqs)
    conv = reqs[0].conversation
    a = plain.loglikelihood([LoglikelihoodRequest(conv, " red circle")])[0]
    b = merged.loglikelihood([LoglikelihoodRequest(conv, " red circle")])[0]
    assert b.sum_logprob == pytest.approx(a.sum_logprob, abs=1e-3)
    assert merged.fingerprint() == plain.fingerprint()


def test_stream_can_be_resumed_on_other_threads(engine):
    """Gradio and Starlette advance a streaming generator from worker threads, one step per thread."""
    import threading

    r = _req("describe the image in detail, please", "red.png", max_new_tokens=16)
    it = engine.stream(r)
    pieces: list[str] = []
    errors: list[BaseException] = []

    def step() -> None:
        try:
            pieces.append(next(it))
        except StopIteration:
            pieces.append(None)
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    while not errors and (not pieces or pieces[-1] is not None):
        t = threading.Thread(target=step)
        t.start()
        t.join()
    assert not errors, errors[0]
    assert "".join(p for p in pieces if p) == engine.generate([r])[0]


def test_static_cache_engine_gives_the_same_answers(tiny_model_dir, media, engine):
    """The CUDA decoding path (static KV cache; graphs only on CUDA) forced on here: same replies."""
    static = load_engine(f"lamm:{tiny_model_dir}", media_root=str(media), batch_size=3, device="cpu",
                         static_cache="true")
    reqs = _requests() + [_req("what is it?", "red.png", temperature=0.8, seed=5)]
    assert static.generate(reqs) == engine.generate(reqs)
    assert static._static is not None and engine._static is None  # auto: dynamic loop on the CPU
    with pytest.raises(ValueError, match="static_cache='maybe'"):
        load_engine(f"lamm:{tiny_model_dir}", device="cpu", static_cache="maybe")


def test_merge_lora_rebuilds_the_static_decoder(lora_dir, media):
    eng = load_engine(f"lamm:{lora_dir}", media_root=str(media), device="cpu", static_cache=True)
    reqs = _requests()[:3]
    before = eng.generate(reqs)
    old = eng._static
    assert eng.merge_lora() and eng._static is None
    assert eng.generate(reqs) == before and eng._static is not old


@pytest.mark.parametrize("static", ["false", "true"])
def test_seeded_sampling_does_not_depend_on_the_batch(tiny_model_dir, media, static):
    """A seeded request's reply is the same alone, in a batch of 3 different requests (same or other
    seeds), and streamed; on the static-cache (CUDA) decoding path too."""
    eng = load_engine(f"lamm:{tiny_model_dir}", media_root=str(media), batch_size=3, device="cpu",
                      static_cache=static)
    kw = {"temperature": 1.0, "top_p": 0.95}
    target = _req("what is it?", "red.png", seed=7, **kw)
    alone = eng.generate([target])[0]
    same_seed = eng.generate([_req("describe the image in detail, please", "blue.png", seed=7, **kw), target,
                              _req("hello", seed=7, **kw)])
    other_seeds = eng.generate([_req("what object?", "cloud.npy", "pcl", seed=1, **kw), target,
                                _req("and this one?", "red.png", **kw)])
    assert same_seed[1] == alone and other_seeds[1] == alone
    assert "".join(eng.stream(target)) == alone
    # it really samples: the same prompt with other seeds gives other replies
    greedy = eng.generate([_req("what is it?", "red.png")])[0]
    others = eng.generate([_req("what is it?", "red.png", seed=s, **kw) for s in (8, 9)])
    assert len({alone, greedy, *others}) > 2


def test_top_p_zero_keeps_the_top_token(engine):
    greedy = engine.generate([_req("what is it?", "red.png")])[0]
    r = _req("what is it?", "red.png", temperature=1.0, top_p=0.0, seed=3)
    assert engine.generate([r])[0] == greedy
    assert "".join(engine.stream(r)) == greedy
