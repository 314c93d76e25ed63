"""The model's context, kept by the engine for every caller: ``max_new_tokens`` capped at the room left
(``finish_reason="length"``), an over-long prompt refused before anything runs, with the numbers."""

from __future__ import annotations

import pytest

from lamm.conversation import Conversation, MediaRef
from lamm.infer.engine import (
    ContextLengthError,
    GenerateRequest,
    GenerationInfo,
    GenerationSettings,
    LoglikelihoodRequest,
    fit_to_context,
    load_engine,
)

# the tiny lamm model's prompts (system message + template): 40, 38 and 48 tokens
SHORT, SHORTER, LONG = "what is it?", "hello", "describe the image in detail, please"
CTX = 46


def _req(text: str, max_new_tokens: int, rid: str | None = None, media=None) -> GenerateRequest:
    return GenerateRequest(Conversation.single_turn(text, media or [], id=rid),
                           GenerationSettings(max_new_tokens=max_new_tokens))


# --------------------------------------------------------------------------------- fit_to_context
def test_fit_to_context_caps_refuses_and_leaves_the_callers_request_alone():
    a, b, c = _req("a", 8, "qa"), _req("b", 8), _req("c", 3)
    out = fit_to_context([a, b, c], [15, None, 16], 20)
    assert [r.settings.max_new_tokens for r in out] == [5, 8, 3]  # room 5; unknown count; fits as asked
    assert a.settings.max_new_tokens == 8 and out[2] is c
    assert fit_to_context([a], [30], None)[0] is a  # no known context: as is
    with pytest.raises(ContextLengthError) as err:
        fit_to_context([b, a, c], [3, 20, 25], 20)
    e = err.value
    assert e.indices == [1, 2] and e.context_length == 20 and e.n_requests == 3
    msg = str(e)
    assert "request 1 (id 'qa'): the prompt takes 20 tokens" in msg
    assert "request 2: the prompt takes 25 tokens" in msg
    assert "context is 20 tokens" in msg and "whole call of 3 requests was refused" in msg
    assert "shorten the prompt" in msg and "fewer images" in msg and "longer context" in msg
    # OpenAI's rule (the server's): prompt + max_new_tokens over the context is refused, not capped
    assert fit_to_context([a], [12], 20, cap=False)[0] is a
    with pytest.raises(ContextLengthError, match=r"15 tokens and max_new_tokens asks for 8 more.*lower max_"):
        fit_to_context([a], [15], 20, cap=False)


def test_dummy_context_length_counts_words():
    r = _req(SHORT, 10)
    n = load_engine("dummy").prompt_tokens(r)
    assert n == 18 + 3  # the default system message's words and the question's
    eng = load_engine("dummy:constant=one two three four five six", context_length=n + 4)
    assert eng.context_length == n + 4
    assert eng.generate([r]) == ["one two three four"]
    assert eng.usage.last == [GenerationInfo(n, 4, "length")]
    with pytest.raises(ValueError, match="positive integer"):
        load_engine("dummy", context_length=0)


# ------------------------------------------------------------------------------------- lamm backend
@pytest.fixture(scope="module", params=[False, True], ids=["dynamic", "static"])
def lamm_engine(request, tiny_model_dir):
    """The tiny checkpoint told that its context is CTX tokens (its RoPE would go on past it, so a hook
    records every position the model is fed: none may reach CTX)."""
    eng = load_engine(f"lamm:{tiny_model_dir}", device="cpu", batch_size=4, static_cache=request.param)
    base = eng._base_llm()
    base.config.max_position_embeddings = CTX
    eng.positions = []

    def record(_module, args, kwargs):
        eng.positions.append(int(kwargs["position_ids"].max()))

    handle = base.register_forward_pre_hook(record, with_kwargs=True)
    yield eng
    handle.remove()
    eng.close()


def test_lamm_engine_counts_the_tiny_prompts(lamm_engine):
    assert lamm_engine.context_length == CTX
    assert [lamm_engine.prompt_tokens(_req(t, 1)) for t in (SHORT, SHORTER, LONG)] == [40, 38, 48]


def test_lamm_caps_new_tokens_at_the_context(lamm_engine):
    eng = lamm_engine
    eng.positions.clear()
    # batched together: the first is capped at 46 - 40 = 6 new tokens, the second fits as asked
    got = eng.generate([_req(SHORT, 20), _req(SHORTER, 4)])
    assert eng.usage.last == [GenerationInfo(40, 6, "length"), GenerationInfo(38, 4, "length")]
    assert max(eng.positions) < CTX
    # the capped reply is the one asked with max_new_tokens=6 (the cap cuts, it does not change the text)
    assert got == eng.generate([_req(SHORT, 6), _req(SHORTER, 4)])
    eng.positions.clear()
    assert "".join(eng.stream(_req(SHORT, 20))) == got[0]
    assert eng.usage.last == [GenerationInfo(40, 6, "length")] and max(eng.positions) < CTX


def test_lamm_refuses_an_overlong_prompt_before_generating(lamm_engine):
    eng = lamm_engine
    eng.positions.clear()
    before = eng.usage.completion_tokens
    with pytest.raises(ContextLengthError) as err:
        eng.generate([_req(SHORTER, 4), _req(LONG, 4, rid="long")])
    assert err.value.indices == [1] and isinstance(err.value, ValueError)
    assert "request 1 (id 'long'): the prompt takes 48 tokens" in str(err.value)
    assert "context is 46 tokens" in str(err.value)
    assert eng.positions == [] and eng.usage.completion_tokens == before  # nothing ran
    with pytest.raises(ContextLengthError, match="request 0: the prompt takes 48 tokens"):
        next(eng.stream(_req(LONG, 4)))
    assert eng.positions == []


def test_lamm_refuses_a_loglikelihood_past_the_context(tiny_model_dir):
    eng = load_engine(f"lamm:{tiny_model_dir}", device="cpu")
    eng._base_llm().config.max_position_embeddings = CTX
    conv = Conversation.single_turn(SHORT, id="q")
    fits = eng.loglikelihood([LoglikelihoodRequest(conv, "yes")])
    assert fits[0].n_tokens >= 1
    too_long = "yes " * 10
    with pytest.raises(ContextLengthError, match=r"request 1 \(id 'q'\): the prompt takes 40 tokens and the "
                                                 r"continuation \d+ more"):
        eng.loglikelihood([LoglikelihoodRequest(conv, "yes"), LoglikelihoodRequest(conv, too_long)])


# --------------------------------------------------------------------------------------- hf backend
@pytest.fixture(scope="module")
def hf_engine(tiny_llava_dir):
    eng = load_engine(f"hf:{tiny_llava_dir}", device="cpu", batch_size=4)
    yield eng
    eng.close()


def test_hf_caps_refuses_and_counts_once(hf_engine, image_file, monkeypatch):
    eng = hf_engine
    text_conf = eng.model.config.get_text_config(decoder=True)
    monkeypatch.setattr(text_conf, "max_position_embeddings", text_conf.max_position_embeddings)
    img = [MediaRef("image", path=str(image_file))]
    r = _req("what is in the image?", 10, media=img)
    n = eng.prompt_tokens(r)
    text_conf.max_position_embeddings = n + 3
    got = eng.generate([r, _req("yes", 2)])
    info = eng.usage.last[0]
    assert info.prompt_tokens == n and info.completion_tokens <= 3
    assert info.finish_reason == ("length" if info.completion_tokens == 3 else "stop")
    assert got[0] == eng.generate([_req("what is in the image?", 3, media=img)])[0]
    # the server counts a request, then generates it: the processor builds that prompt once
    calls = []
    real = eng._inputs
    monkeypatch.setattr(eng, "_inputs", lambda convs, texts: calls.append(len(convs)) or real(convs, texts))
    fresh = _req("what is it?", 2, media=img)
    eng.prompt_tokens(fresh)
    eng.generate([fresh])
    assert calls == [1, 1]  # one count, one batch (without the kept count: two counts)
    text_conf.max_position_embeddings = n
    with pytest.raises(ContextLengthError, match=rf"request 0 \(id 'img'\): the prompt takes {n} tokens.*"
                                                 rf"context is {n} tokens"):
        eng.generate([_req("what is in the image?", 2, rid="img", media=img)])
    with pytest.raises(ContextLengthError):
        next(eng.stream(_req("what is in the image?", 2, media=img)))


# ----------------------------------------------------------------------------------------- server
def test_server_maps_a_backend_refusal_to_context_length_exceeded():
    """A backend that refuses only while generating (it cannot count up front) is still a 400
    context_length_exceeded, plain and streamed."""
    from fastapi.testclient import TestClient

    from lamm.infer.backends.dummy import DummyEngine
    from lamm.infer.server import ServerConfig, create_app

    class CountsLate(DummyEngine):
        def prompt_tokens(self, request):
            return None  # the server cannot check up front

        def generate(self, requests, progress=None):  # the backend counts its own way, and refuses
            counts = [DummyEngine.prompt_tokens(self, r) for r in requests]
            fit_to_context(requests, counts, self.context_length)
            return super().generate(requests, progress)

    client = TestClient(create_app(CountsLate(context_length=10), ServerConfig(model_name="m")),
                        raise_server_exceptions=False)
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "w " * 30}],
                                                      "stream": stream, "max_tokens": 2})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "context_length_exceeded" and "context is 10 tokens" in err["message"]


def test_dummy_loglikelihood_refuses_what_does_not_fit():
    """The dummy counts words; prompt + context + continuation over its context refuses the call."""
    from lamm.conversation import Conversation
    from lamm.infer.engine import ContextLengthError, LoglikelihoodRequest, load_engine

    eng = load_engine("dummy", context_length=26)  # system message + question + "and": 23 words
    conv = Conversation.single_turn("one two three four", id="q")
    ok = LoglikelihoodRequest(conv, "five six", context="and")
    assert eng.loglikelihood([ok])[0].n_tokens == 2
    too_long = LoglikelihoodRequest(conv, "five six seven eight nine", context="and")
    with pytest.raises(ContextLengthError, match=r"request 1 \(id 'q'\).*continuation 5 more"):
        eng.loglikelihood([ok, too_long])
