"""The OpenAI-compatible server, driven by the official ``openai`` client, on the tiny lamm model."""

from __future__ import annotations

import base64
import io

import numpy as np
import openai
import pytest
from PIL import Image

from lamm.conversation import Conversation, MediaRef
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.engine import GenerateRequest, GenerationSettings, load_engine
from lamm.infer.server import (
    ChatCompletionRequest,
    MediaDecoder,
    ServerConfig,
    ServerLimits,
    build_request,
    create_app,
)


def _png_url(size: tuple[int, int], colour: str = "red") -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _npy_url(points: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, points)
    return "data:application/x-npy;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory, run_uvicorn):
    root = tmp_path_factory.mktemp("served_media")
    Image.new("RGB", (40, 40), "green").save(root / "green.png")
    (root.parent / "secret.png").write_bytes((root / "green.png").read_bytes())
    engine = load_engine(f"lamm:{tiny_model_dir}", device="cpu")
    limits = ServerLimits(max_body_bytes=300_000, max_tokens=64, max_image_pixels=128 * 128, max_media=2)
    app = create_app(engine, ServerConfig(model_name="tiny", media_roots=[str(root)], limits=limits))
    with run_uvicorn(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
        yield client, engine, url
    engine.close()


def _expected(engine, text: str, media=None, max_tokens: int = 8) -> str:
    req = GenerateRequest(Conversation.single_turn(text, media or []), GenerationSettings(max_new_tokens=max_tokens))
    return engine.generate([req])[0]


def test_models_lists_the_served_model(served):
    client, _, _ = served
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_plain_completion(served):
    client, engine, _ = served
    r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "what is it?"}],
                                       max_tokens=8, temperature=0)
    assert r.choices[0].message.content == _expected(engine, "what is it?")
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens > 0
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_completion(served):
    client, engine, _ = served
    stream = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "what is it?"}],
                                            max_tokens=8, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == _expected(engine, "what is it?")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_image_content_part(served):
    client, engine, _ = served
    url = _png_url((64, 48), "blue")
    r = client.chat.completions.create(model="tiny", max_tokens=8, temperature=0, messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "text", "text": "what colour?"}]}])
    img = Image.new("RGB", (64, 48), "blue")
    assert r.choices[0].message.content == _expected(engine, "what colour?", [MediaRef("image", data=img)])


def test_point_cloud_extension_and_media_root_paths(served):
    client, engine, _ = served
    pts = np.random.default_rng(1).uniform(size=(800, 6)).astype(np.float32)
    r = client.chat.completions.create(model="tiny", max_tokens=8, temperature=0, messages=[
        {"role": "user", "content": [{"type": "point_cloud_url", "point_cloud_url": {"url": _npy_url(pts)}},
                                     {"type": "text", "text": "what object?"}]}])
    assert r.choices[0].message.content == _expected(engine, "what object?", [MediaRef("pcl", data=pts)])
    ok = client.chat.completions.create(model="tiny", max_tokens=4, messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "green.png"}}]}])
    assert isinstance(ok.choices[0].message.content, str)
    for path in ("../secret.png", "/etc/hostname", "file:///etc/hostname"):
        with pytest.raises(openai.BadRequestError, match="media roots|not found"):
            client.chat.completions.create(model="tiny", max_tokens=4, messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": path}}]}])


@pytest.mark.parametrize("body, code", [
    ({"messages": []}, "invalid_request"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "invalid_request"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, None),
    ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000}, "max_tokens_too_large"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]},
     "remote_media_refused"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}]}]},
     None),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_url((8, 8))}}] * 3}]},
     "too_many_media"),
])
def test_malformed_requests_are_400_in_openai_shape(served, body, code):
    _, _, url = served
    import httpx

    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", **body}, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if code:
        assert err["code"] == code


def test_oversize_image_is_refused(served):
    client, _, _ = served
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": _png_url((300, 200))}}]}])
    assert e.value.status_code == 400 and "60000 pixels" in str(e.value)


def test_oversize_body_and_unknown_model(served):
    client, _, _ = served
    noisy = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="PNG")  # ~270 KB of noise, base64 > 300 KB
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="tiny", max_tokens=4, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert e.value.status_code == 413
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", max_tokens=4, messages=[{"role": "user", "content": "x"}])


def test_unsupported_modality_is_a_400(tiny_llava_dir, pcl_file):
    from fastapi.testclient import TestClient

    engine = load_engine(f"hf:{tiny_llava_dir}", device="cpu")
    client = TestClient(create_app(engine, ServerConfig(model_name="llava")))
    pts = np.load(pcl_file)
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": [
        {"type": "point_cloud_url", "point_cloud_url": {"url": _npy_url(pts)}}, {"type": "text", "text": "?"}]}]})
    assert r.status_code == 400 and "point clouds are not supported" in r.json()["error"]["message"]


def _data_url(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def _npy_header_only(shape: tuple[int, ...], body: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + body


def _pcl_body(url: str) -> dict:
    part = {"type": "point_cloud_url", "point_cloud_url": {"url": url}}
    return {"messages": [{"role": "user", "content": [part, {"type": "text", "text": "what?"}]}]}


@pytest.fixture
def dummy_client(tmp_path):
    from fastapi.testclient import TestClient

    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    cfg = ServerConfig(model_name="m", media_roots=[str(tmp_path)], limits=ServerLimits(max_points=1000))
    with TestClient(create_app(load_engine("dummy"), cfg), raise_server_exceptions=False) as client:
        yield client


def test_compressed_point_cloud_is_refused_before_it_is_expanded(dummy_client):
    import tracemalloc
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, \
            z.open("points.npy", "w", force_zip64=True) as fh:
        fh.write(_npy_header_only((4_000_000, 3)))
        for _ in range(48):
            fh.write(bytes(1_000_000))  # 48 MB of zeros: ~50 KB compressed
    url = _data_url("application/x-npz", buf.getvalue())
    assert len(url) < 200_000
    tracemalloc.start()
    try:
        r = dummy_client.post("/v1/chat/completions", json=_pcl_body(url))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "point_cloud_too_large" and err["param"] == "messages[0].content[0]"
    assert "4000000 points; the limit is 1000" in err["message"]
    assert peak < 8_000_000, f"{peak} bytes allocated to refuse a {len(url)}-byte request"


@pytest.mark.parametrize("part, what", [
    ("ply_count_word", "not an integer"),
    ("ply_count_missing", "needs a name and a count"),
    ("ply_format_missing", "'format' needs a value"),
    ("ply_count_negative", "negative"),
    ("npy_absurd_shape", "points; the limit is 1000"),
    ("npy_bad_header", "corrupt header"),
    ("path_nul", "NUL"),
])
def test_malformed_media_are_400_naming_the_part(dummy_client, part, what):
    xyz = b"property float x\nproperty float y\nproperty float z\n"
    ply = {"ply_count_word": b"ply\nformat ascii 1.0\nelement vertex abc\n" + xyz + b"end_header\n",
           "ply_count_missing": b"ply\nformat ascii 1.0\nelement vertex\nend_header\n",
           "ply_format_missing": b"ply\nformat\nend_header\n",
           "ply_count_negative": b"ply\nformat binary_little_endian 1.0\nelement vertex -1\n" + xyz
           + b"end_header\n"}
    if part in ply:
        body = _pcl_body(_data_url("application/x-ply", ply[part]))
    elif part == "npy_absurd_shape":
        body = _pcl_body(_data_url("application/x-npy", _npy_header_only((99_999_999_999, 3), bytes(24))))
    elif part == "npy_bad_header":
        body = _pcl_body(_data_url("application/x-npy", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}\n"))
    else:
        part = {"type": "image_url", "image_url": {"url": "ok\x00.png"}}
        body = {"messages": [{"role": "user", "content": [part]}]}
    r = dummy_client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "messages[0].content[0]" and what in err["message"], err
    assert err["message"].startswith("messages[0].content[0]: ")
    ok = dummy_client.post("/v1/chat/completions", json=_pcl_body(_data_url(
        "application/x-npy", _npy_header_only((2, 3), bytes(24)))))
    assert ok.status_code == 200, ok.text


def test_cli_serve_api_runs_and_stops(free_port, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from lamm.cli.main import app; app()", "serve", "api",
                             "--model", "dummy", "--port", str(port), "--model-name", "echo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stdout.read().decode() if proc.poll() is not None else "no server")
                time.sleep(0.1)
        assert r.json()["data"][0]["id"] == "echo"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=10,
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("The answer is")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.parametrize(("verb", "module", "extra"), [("api", "uvicorn", "serve"), ("web", "gradio", "web")])
def test_cli_serve_without_its_extra_says_what_to_install(monkeypatch, verb, module, extra):
    """``make quickstart`` installs the core package only: the servers then name the extra to install."""
    import importlib.util

    from typer.testing import CliRunner

    from lamm.cli.main import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    res = CliRunner().invoke(app, ["serve", verb, "--model", "dummy"])
    assert res.exit_code == 2
    assert f"needs {module}" in res.output and f"'.[{extra}]'" in res.output


# ------------------------------------------------------------------ finish_reason and usage (engine-reported)
def _sse_chunks(text: str) -> list[dict]:
    import json

    return [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]


@pytest.fixture(scope="module")
def tiny_client(tiny_model_dir):
    from fastapi.testclient import TestClient

    engine = load_engine(f"lamm:{tiny_model_dir}", device="cpu")
    with TestClient(create_app(engine, ServerConfig(model_name="tiny")), raise_server_exceptions=False) as c:
        yield c, engine


@pytest.mark.parametrize("prompt", ["a", "the answer is", "tell me a story"])
@pytest.mark.parametrize("extra", [{"max_tokens": 6}, {"max_tokens": 12, "stop": "\x7f"},
                                   {"max_tokens": 12, "stop": ["co", "dg"]}])
def test_finish_reason_and_usage_are_the_decoders_and_agree_plain_and_streamed(tiny_client, prompt, extra):
    """Usage counts the tokens the engine decoded (not the re-tokenised, cut, stripped text) and
    finish_reason says why decoding ended, identically in both modes."""
    client, engine = tiny_client
    body = {"model": "tiny", "messages": [{"role": "user", "content": prompt}], "temperature": 0, **extra}
    plain = client.post("/v1/chat/completions", json=body).json()
    chunks = _sse_chunks(client.post("/v1/chat/completions", json={
        **body, "stream": True, "stream_options": {"include_usage": True}}).text)
    s_finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1]
    assert (plain["choices"][0]["finish_reason"], plain["usage"]) == (s_finish, chunks[-1]["usage"])
    # ground truth: decode token by token with the engine's own streaming loop
    req = build_request(ChatCompletionRequest(**body), ServerConfig(), MediaDecoder(ServerConfig()))
    list(engine.stream(req))
    truth = engine.usage.last[0]
    assert plain["usage"]["completion_tokens"] == truth.completion_tokens <= extra["max_tokens"]
    assert plain["choices"][0]["finish_reason"] == truth.finish_reason
    assert plain["usage"]["prompt_tokens"] == truth.prompt_tokens == engine.prompt_tokens(req)


def test_finish_reason_length_exactly_at_max_tokens(tiny_client):
    client, _ = tiny_client
    # this prompt makes the random tiny model run on without EOS; 6 tokens decode to 8 once re-tokenised
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "a"}],
                                                  "temperature": 0, "max_tokens": 6}).json()
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 6


def test_engine_records_one_info_per_request_in_request_order(tiny_model_dir):
    from lamm.infer.engine import GenerationInfo

    engine = load_engine(f"lamm:{tiny_model_dir}", device="cpu", batch_size=2)
    reqs = [GenerateRequest(Conversation.single_turn(q), GenerationSettings(max_new_tokens=n))
            for q, n in (("a", 3), ("describe the picture in detail please", 5), ("hi", 4))]
    engine.generate(reqs)
    infos = engine.usage.last
    assert [i.prompt_tokens for i in infos] == [engine.prompt_tokens(r) for r in reqs]
    assert all(isinstance(i, GenerationInfo) and i.completion_tokens <= r.settings.max_new_tokens
               and (i.finish_reason == "length") == (i.completion_tokens == r.settings.max_new_tokens)
               for i, r in zip(infos, reqs))
    assert engine.usage.completion_tokens == sum(i.completion_tokens for i in infos)


_BASE_HI = {"messages": [{"role": "user", "content": "hi"}]}


def test_dummy_cuts_to_max_tokens_and_counts_prompt_words(dummy_client):
    r = dummy_client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hi there, what is this?"}], "max_tokens": 2}).json()
    assert r["choices"][0]["message"]["content"] == "The answer"
    assert r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 2
    assert r["usage"]["prompt_tokens"] > 5  # the system message's words and the question's five
    r = dummy_client.post("/v1/chat/completions", json=_BASE_HI).json()
    assert r["choices"][0]["finish_reason"] == "stop"
    assert r["usage"]["completion_tokens"] == len(r["choices"][0]["message"]["content"].split())


# ------------------------------------------------------------------------------- request parameters
_BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("name, value", [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    ("tool_choice", "required"), ("functions", [{"name": "f", "parameters": {}}]),
    ("function_call", {"name": "f"}), ("response_format", {"type": "json_object"}), ("logprobs", True),
    ("top_logprobs", 5), ("presence_penalty", 2.0), ("frequency_penalty", -1),
    ("logit_bias", {"50256": -100}),
    ("modalities", ["audio"]), ("audio", {"voice": "alloy", "format": "wav"}),
    ("prediction", {"type": "content", "content": "x"}), ("reasoning_effort", "high"), ("made_up_option", 1),
])
def test_output_changing_parameters_are_refused_by_name(dummy_client, name, value):
    r = dummy_client.post("/v1/chat/completions", json={**_BASE, name: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "unsupported_parameter" and err["param"] == name and name in err["message"]


@pytest.mark.parametrize("extra", [
    {"tools": []}, {"tool_choice": "none"}, {"response_format": {"type": "text"}}, {"logprobs": False},
    {"presence_penalty": 0}, {"frequency_penalty": 0.0}, {"logit_bias": {}}, {"modalities": ["text"]},
    {"user": "u1"}, {"metadata": {"a": "b"}}, {"store": True}, {"service_tier": "auto"},
    {"parallel_tool_calls": False}, {"stream": True, "stream_options": {"include_usage": True}},
    {"temperature": None, "top_p": None, "n": None, "stream": None, "stop": None, "max_tokens": None,
     "seed": None, "stream_options": None, "presence_penalty": None, "task_type": None},
])
def test_neutral_harmless_and_null_parameters_are_accepted(dummy_client, extra):
    r = dummy_client.post("/v1/chat/completions", json={**_BASE, **extra})
    assert r.status_code == 200, r.text


def test_stream_options_without_stream_is_refused(dummy_client):
    r = dummy_client.post("/v1/chat/completions", json={**_BASE, "stream_options": {"include_usage": True}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


def test_unknown_task_type_is_refused_and_aliases_accepted(dummy_client):
    r = dummy_client.post("/v1/chat/completions", json={**_BASE, "task_type": "detecton"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "task_type" and "detection" in err["message"] and "VQA3d" in err["message"]
    ok = dummy_client.post("/v1/chat/completions", json={**_BASE, "task_type": "commomsenseqa"})
    assert ok.status_code == 200


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_limit_names_the_field_sent(dummy_client, name):
    r = dummy_client.post("/v1/chat/completions", json={**_BASE, name: 99_999})
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == name and err["message"].startswith(f"{name}=99999")


# ------------------------------------------------------------------------ context, engine errors, shapes
class _Short(DummyEngine):
    """A dummy whose context holds 20 tokens (a prompt token = a word)."""

    @property
    def context_length(self) -> int:
        return 20

    def prompt_tokens(self, request) -> int:
        return sum(len(m.content.split()) for m in request.conversation.messages)


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_plus_max_tokens_over_the_context_is_a_400(stream):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(_Short(), ServerConfig(model_name="m")), raise_server_exceptions=False)
    body = {"messages": [{"role": "user", "content": "word " * 15}], "stream": stream}
    r = client.post("/v1/chat/completions", json={**body, "max_tokens": 6})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    assert "20 tokens" in err["message"]
    assert client.post("/v1/chat/completions", json={**body, "max_tokens": 5}).status_code == 200


def test_lamm_engine_exposes_its_context_length(tiny_client):
    client, engine = tiny_client
    ctx = engine.context_length
    assert ctx == engine.model.llm.config.max_position_embeddings
    r = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "red " * ctx}],
                                                  "max_tokens": 4})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


class _Refuses(DummyEngine):
    def generate(self, requests, progress=None):
        raise ValueError("point clouds are not supported by this engine")


class _Breaks(DummyEngine):
    def generate(self, requests, progress=None):
        raise RuntimeError("CUDA out of memory")


class _BreaksLate(DummyEngine):
    def stream(self, request):
        yield "Hello"
        raise ValueError("the reply went wrong")


@pytest.mark.parametrize("stream", [False, True])
def test_engine_failures_are_openai_shaped_and_equal_plain_and_streamed(stream):
    from fastapi.testclient import TestClient

    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    client = TestClient(create_app(_Refuses(), ServerConfig(model_name="m")), raise_server_exceptions=False)
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
    assert r.json()["error"]["code"] == "unsupported_input" and "point clouds" in r.json()["error"]["message"]
    client = TestClient(create_app(_Breaks(), ServerConfig(model_name="m")), raise_server_exceptions=False)
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
    err = r.json()["error"]
    assert err["type"] == "server_error" and "CUDA out of memory" in err["message"]


def test_a_failure_after_the_first_piece_is_in_band_and_typed():
    from fastapi.testclient import TestClient

    app = create_app(_BreaksLate(), ServerConfig(model_name="m"))
    client = TestClient(app, raise_server_exceptions=False)
    r = client.post("/v1/chat/completions", json={**_BASE_HI, "stream": True})
    assert r.status_code == 200
    last = _sse_chunks(r.text)[-1]
    assert last["error"]["type"] == "invalid_request_error" and "went wrong" in last["error"]["message"]


def test_unknown_routes_and_methods_are_openai_shaped(dummy_client):
    for method, path, status in (("get", "/v1/chat/completions", 405), ("post", "/v1/completions", 404),
                                 ("get", "/v1/nothing", 404)):
        r = getattr(dummy_client, method)(path)
        assert r.status_code == status, r.text
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and path in err["message"]


def test_retrieve_model(dummy_client, served):
    r = dummy_client.get("/v1/models/m")
    assert r.status_code == 200 and r.json()["id"] == "m" and r.json()["object"] == "model"
    r = dummy_client.get("/v1/models/gpt-4o")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    client, _, _ = served
    assert client.models.retrieve("tiny").id == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("other")
