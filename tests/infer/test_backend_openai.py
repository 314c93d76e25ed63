"""The ``openai:`` backend: against our own server (dummy model) and against scripted HTTP failures."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from lamm.conversation import Conversation, MediaRef
from lamm.infer.backends.openai import OpenAIError, conversation_messages, parse_target
from lamm.infer.engine import GenerateRequest, GenerationSettings, load_engine
from lamm.infer.server import ServerConfig, create_app


def _req(text: str = "hi", media=None, **settings) -> GenerateRequest:
    return GenerateRequest(Conversation.single_turn(text, media or []), GenerationSettings(**settings))


def test_parse_target(monkeypatch):
    assert parse_target("m@http://h:1/v1/") == ("m", "http://h:1/v1")
    assert parse_target("org/m@name@https://h/v1") == ("org/m@name", "https://h/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://x/v1")
    assert parse_target("gpt-4o") == ("gpt-4o", "http://x/v1")
    with pytest.raises(ValueError, match="model name"):
        parse_target("@http://h/v1")


def test_round_trip_through_our_server(image_file, pcl_file, run_uvicorn):
    dummy = load_engine("dummy")
    app = create_app(dummy, ServerConfig(model_name="dummy"))
    with run_uvicorn(app) as url:
        eng = load_engine(f"openai:dummy@{url}/v1", concurrency=3)
        reqs = [_req(f"question {i}") for i in range(5)]
        reqs.append(_req("what is it?", [MediaRef("image", path=str(image_file))]))
        reqs.append(_req("what is it?", [MediaRef("pcl", path=str(pcl_file))]))
        got = eng.generate(reqs)
        # the server's dummy sees media as loaded data (no path), so compare text-only answers exactly
        assert got[:5] == dummy.generate(reqs[:5])
        assert all(a.startswith("The answer is (") for a in got)
        assert eng.usage.requests == 7 and eng.usage.completion_tokens > 0
        streamed = "".join(eng.stream(_req("question 0")))
        assert streamed == got[0]
        stopped = eng.generate([_req("question 0", stop=["]"])])[0]
        assert stopped == got[0][: got[0].index("]")]
        assert eng.fingerprint() == f"openai:dummy@{url}/v1"
        eng.close()


def test_images_sent_as_data_urls(image_file):
    msgs = conversation_messages(Conversation.single_turn("q", [MediaRef("image", path=str(image_file))]), None)
    part = msgs[-1]["content"][0]
    assert part["type"] == "image_url"
    head, data = part["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64" and base64.b64decode(data) == image_file.read_bytes()
    assert msgs[0]["role"] == "system" and msgs[-1]["content"][1] == {"type": "text", "text": "q"}


def _scripted(statuses: list[int], seen: list[dict]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"body": json.loads(request.content), "auth": request.headers.get("authorization")})
        status = statuses.pop(0) if statuses else 200
        if status != 200:
            return httpx.Response(status, json={"error": {"message": f"scripted {status}"}})
        return httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}],
                                         "usage": {"prompt_tokens": 7, "completion_tokens": 2}})
    return httpx.MockTransport(handler)


def test_retries_with_backoff_then_succeeds(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    seen: list[dict] = []
    eng = load_engine("openai:m@http://fake/v1", transport=_scripted([503, 429], seen), backoff=0.001)
    assert eng.generate([_req(max_new_tokens=5, temperature=0.7, seed=3)]) == ["ok"]
    assert len(seen) == 3 and seen[0]["auth"] == "Bearer sk-test"
    body = seen[-1]["body"]
    assert body["max_tokens"] == 5 and body["temperature"] == 0.7 and body["seed"] == 3 and body["model"] == "m"
    assert (eng.usage.prompt_tokens, eng.usage.completion_tokens, eng.usage.requests) == (7, 2, 1)


def test_gives_up_after_retries_with_clear_message():
    seen: list[dict] = []
    eng = load_engine("openai:m@http://fake/v1", transport=_scripted([500] * 10, seen), max_retries=2, backoff=0.001)
    with pytest.raises(OpenAIError, match=r"failed after 3 attempt\(s\): HTTP 500: scripted 500"):
        eng.generate([_req()])
    assert len(seen) == 3 and eng.usage.failures == 1


def test_client_errors_are_not_retried():
    seen: list[dict] = []
    eng = load_engine("openai:m@http://fake/v1", transport=_scripted([400], seen), backoff=0.001)
    with pytest.raises(OpenAIError, match="HTTP 400"):
        eng.generate([_req()])
    assert len(seen) == 1


def test_connection_refused_is_retried_then_raised(free_port):
    eng = load_engine(f"openai:m@http://127.0.0.1:{free_port()}/v1", max_retries=1, backoff=0.001, timeout=2)
    with pytest.raises(OpenAIError, match="ConnectError"):
        eng.generate([_req()])


def test_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="unknown option"):
        load_engine("openai:m@http://fake/v1", temprature=1)


def test_vllm_missing_gives_install_hint():
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only where vLLM is installed
        pytest.skip("vLLM is installed here")
    with pytest.raises(ValueError, match="pip install vllm"):
        load_engine("vllm:some/model")


# ------------------------------------------------------------------------------------------ streaming
def _sse(text: str) -> bytes:
    return f'data: {json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]})}\n\n'.encode()


class _Events(httpx.SyncByteStream):
    """A scripted SSE body: byte chunks, then optionally a dropped connection."""

    def __init__(self, chunks: list[bytes], drop: bool = False) -> None:
        self.chunks, self.drop = chunks, drop

    def __iter__(self):
        yield from self.chunks
        if self.drop:
            raise httpx.ReadError("connection reset by peer")


def _streaming_engine(bodies: list[_Events], calls: list[int]):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=bodies.pop(0))
    return load_engine("openai:m@http://fake/v1", transport=httpx.MockTransport(handler), backoff=0.0)


_FULL = [_sse("Hello "), _sse("world, "), _sse("bye."), b"data: [DONE]\n\n"]


def test_stream_drop_after_pieces_raises_instead_of_repeating_them():
    calls: list[int] = []
    eng = _streaming_engine([_Events(_FULL[:2], drop=True), _Events(_FULL)], calls)
    pieces = eng.stream(_req(max_new_tokens=8))
    got = next(pieces) + next(pieces)
    with pytest.raises(OpenAIError, match="after part of the reply"):
        next(pieces)
    # the consumer keeps exactly what arrived once; no second request re-sent the start of the reply
    assert got == "Hello world, " and len(calls) == 1 and eng.usage.failures == 1


def test_stream_drop_before_any_piece_is_retried():
    calls: list[int] = []
    eng = _streaming_engine([_Events([], drop=True), _Events(_FULL)], calls)
    assert "".join(eng.stream(_req(max_new_tokens=8))) == "Hello world, bye."
    assert len(calls) == 2 and eng.usage.failures == 0 and eng.usage.requests == 1


@pytest.mark.parametrize("tail, match", [
    ([(b'data: {"error": {"message": "generation failed: RuntimeError: CUDA error", '
       b'"type": "server_error"}}\n\n')], "reported an error.*CUDA error"),
    ([], r"without 'data: \[DONE\]'"),
    ([b"data: {not json\n\n"], "malformed server-sent event"),
])
def test_stream_that_ends_badly_is_an_error_not_a_short_reply(tail, match):
    calls: list[int] = []
    eng = _streaming_engine([_Events([_sse("The answer")] + tail)], calls)
    with pytest.raises(OpenAIError, match=match):
        "".join(eng.stream(_req(max_new_tokens=8)))
    assert eng.usage.failures == 1 and len(calls) == 1


def test_stream_failure_in_our_server_reaches_the_client(run_uvicorn):
    from lamm.infer.backends.dummy import DummyEngine

    class FailsMidway(DummyEngine):
        def stream(self, request):
            yield "The answer"
            raise RuntimeError("device lost")

    with run_uvicorn(create_app(FailsMidway("constant=x"), ServerConfig(model_name="m"))) as url:
        eng = load_engine(f"openai:m@{url}/v1", max_retries=0)
        with pytest.raises(OpenAIError, match="device lost"):
            "".join(eng.stream(_req(max_new_tokens=8)))
        assert eng.usage.failures == 1
        eng.close()


def test_upstream_finish_reason_and_usage_are_recorded_per_request():
    """generate and stream record the server's finish_reason and token counts in usage.last; a stop
    string cut here (beyond the four the server applies) makes the reason "stop"."""
    from lamm.infer.engine import GenerationInfo

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        why = "length" if body["max_tokens"] == 3 else "stop"
        choice = {"message": {"content": "one two three"}, "finish_reason": why}
        usage = {"prompt_tokens": 9, "completion_tokens": body["max_tokens"]}
        return httpx.Response(200, json={"choices": [choice], "usage": usage})

    eng = load_engine("openai:m@http://fake/v1", transport=httpx.MockTransport(handler), concurrency=2)
    many_stops = list("abcd") + ["two"]  # the fifth is cut here, not by the server
    eng.generate([_req(max_new_tokens=3), _req(max_new_tokens=5), _req(max_new_tokens=3, stop=many_stops)])
    assert eng.usage.last == [GenerationInfo(9, 3, "length"), GenerationInfo(9, 5, "stop"),
                              GenerationInfo(9, 3, "stop")]
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 8}}
    body = [_sse("Hello "), f"data: {json.dumps(end)}\n\n".encode(),
            f"data: {json.dumps(usage)}\n\n".encode(), b"data: [DONE]\n\n"]
    eng = _streaming_engine([_Events(body)], [])
    assert "".join(eng.stream(_req(max_new_tokens=8))) == "Hello "
    assert eng.usage.last == [GenerationInfo(4, 8, "length")]


# --------------------------------------------------------------------------------- the server's context
def _context_server(ctx: int, calls: list[dict], style: str = "vllm") -> httpx.MockTransport:
    """A server with a context of ``ctx`` "tokens" (words of the user messages) that refuses prompt +
    max_tokens over it as vLLM words it (or as OpenAI, giving no counts)."""
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        n = sum(len(str(m["content"]).split()) for m in body["messages"] if m["role"] == "user")
        if n + body["max_tokens"] > ctx:
            msg = (f"This model's maximum context length is {ctx} tokens. However, you requested "
                   f"{n + body['max_tokens']} tokens ({n} in the messages, {body['max_tokens']} in the completion).")
            err = {"message": msg, "type": "BadRequestError", "code": 400} if style == "vllm" else \
                {"message": "Please reduce the length of the messages.", "code": "context_length_exceeded"}
            return httpx.Response(400, json={"error": err})
        return httpx.Response(200, json={"choices": [{"message": {"content": f"answer {n}"}, "finish_reason": "length"}],
                                         "usage": {"prompt_tokens": n, "completion_tokens": body["max_tokens"]}})
    return httpx.MockTransport(handler)


def _conv_req(text: str, qid: str, max_new_tokens: int = 10):
    from lamm.conversation import Conversation
    from lamm.infer.engine import GenerateRequest, GenerationSettings

    return GenerateRequest(Conversation.single_turn(text, id=qid), GenerationSettings(max_new_tokens=max_new_tokens))


def test_server_context_refusals_follow_the_engine_rule():
    """A prompt that fits gets max_tokens cut to the room left; one that does not is named in one
    ContextLengthError after the others are answered, and the next call reuses their replies."""
    from lamm.infer.engine import ContextLengthError

    calls: list[dict] = []
    eng = load_engine("openai:m@http://fake/v1", transport=_context_server(12, calls), backoff=0.0, concurrency=1)
    short, near, long = (_conv_req("one two", "a"), _conv_req("w " * 8, "b"), _conv_req("w " * 13, "c"))
    with pytest.raises(ContextLengthError, match=r"request 2 \(id 'c'\): the prompt takes 13 tokens") as e:
        eng.generate([short, near, long])
    assert e.value.indices == [2] and e.value.context_length == 12
    assert [c["max_tokens"] for c in calls] == [10, 10, 4, 10]  # near: refused at 10, sent again with 12 - 8
    n = len(calls)
    assert eng.generate([short, near]) == ["answer 2", "answer 8"] and len(calls) == n  # kept, not asked again
    assert eng.usage.last[1].finish_reason == "length"
    assert eng.generate([short]) == ["answer 2"] and len(calls) == n + 1  # kept only for the next call
    # a server that gives no counts: refused as "strict", counts unknown
    calls.clear()
    eng = load_engine("openai:m@http://fake/v1", transport=_context_server(12, calls, "openai"), backoff=0.0)
    with pytest.raises(ContextLengthError, match="the server did not say the model's context") as e:
        eng.generate([near])
    assert e.value.refused[0].prompt_tokens is None and e.value.context_length is None and len(calls) == 1


def test_server_context_refusal_in_a_stream():
    from lamm.infer.engine import ContextLengthError

    calls: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        n = sum(len(str(m["content"]).split()) for m in body["messages"] if m["role"] == "user")
        if n + body["max_tokens"] > 12:
            return httpx.Response(400, json={"error": {"message": f"this model's context is 12 tokens; the messages "
                                                       f"take {n} tokens", "code": "context_length_exceeded"}})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=_Events(_FULL))

    eng = load_engine("openai:m@http://fake/v1", transport=httpx.MockTransport(handler), backoff=0.0, max_retries=0)
    assert "".join(eng.stream(_conv_req("w " * 8, "b"))) == "Hello world, bye."
    assert [c["max_tokens"] for c in calls] == [10, 4]
    with pytest.raises(ContextLengthError, match=r"request 0 \(id 'c'\): the prompt takes 13 tokens"):
        "".join(eng.stream(_conv_req("w " * 13, "c")))
