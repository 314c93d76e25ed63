"""An OpenAI-compatible HTTP API over any engine (``lamm serve api``).

Endpoints: ``GET /v1/models``, ``GET /v1/models/{model}``, ``POST /v1/chat/completions`` (plain JSON,
or server-sent events with ``"stream": true``), ``GET /health``. Every error, unknown routes and
methods and internal failures included, uses OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``: a 4xx status for the client's faults, 500 ``server_error`` otherwise.

Request parameters: those that would change OpenAI's reply but that this server cannot honour
(:data:`REFUSED_PARAMS`: tools, logprobs, penalties, ``response_format`` other than text, ...) are a 400
``unsupported_parameter`` naming the parameter unless they hold their neutral value; harmless ones
(:data:`IGNORED_PARAMS`: ``user``, ``metadata``, ...) are accepted and ignored; any other unknown
parameter is a 400. ``null`` is accepted for every optional parameter and means its default.
``finish_reason`` and ``usage`` come from the engine (:class:`~lamm.infer.engine.GenerationInfo`): the
tokens it decoded and whether it stopped (EOS, a stop string) or ran out of ``max_tokens``. A prompt
whose tokens plus ``max_tokens`` exceed the engine's context length is a 400 ``context_length_exceeded``
(OpenAI's rule, stricter than the engine's own, which caps ``max_tokens`` at the room left: see
:func:`check_context`).

Message content is a string or a list of parts:

* ``{"type": "text", "text": ...}``;
* ``{"type": "image_url", "image_url": {"url": ...}}`` — a ``data:image/...;base64,`` URL; ``http(s)``
  URLs only with ``allow_remote_images``; server paths (``file:///...`` or a bare path) only under a
  configured media root;
* **lamm extension** ``{"type": "point_cloud_url", "point_cloud_url": {"url": ...}}`` — a point cloud
  as ``data:application/x-npy;base64,...`` (a float ``(N, 3|6)`` ``.npy``), ``data:application/x-npz;
  base64,...``, ``data:application/x-ply;base64,...``, or a server path under a media root (``.npy``,
  ``.npz``, ``.ply``).

Limits (:class:`ServerLimits`): request body bytes (413), ``max_tokens`` (400), image pixels (400,
checked from the header before decoding, so a decompression bomb is never expanded), media items per
request (400), points per cloud (400, checked from the file's declared shape or vertex count before
its data is read or decompressed, so a small ``.npz`` cannot expand to gigabytes). Malformed media of
any kind are a 400 naming the content part. One request runs on the model at a time (engines are not
thread-safe); others wait in the thread pool.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import queue
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lamm.conversation import TASK_TYPES, Conversation, MediaRef, Message, canonical_task_type
from lamm.infer.engine import (
    ContextLengthError,
    Engine,
    GenerateRequest,
    GenerationInfo,
    GenerationSettings,
    fit_to_context,
)


@dataclass
class ServerLimits:
    """Request limits; each breach is a 4xx naming the limit and the value sent."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_tokens: int = 2048
    max_image_pixels: int = 4096 * 4096
    max_media: int = 4
    max_points: int = 2_000_000
    remote_timeout_s: float = 10.0


@dataclass
class ServerConfig:
    """What the server exposes: the model's public name, media roots and remote-image policy."""

    model_name: str = "lamm"
    media_roots: list[str] = field(default_factory=list)
    allow_remote_images: bool = False
    limits: ServerLimits = field(default_factory=ServerLimits)


class APIError(Exception):
    """A request the server refuses; rendered in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# ------------------------------------------------------------------------------------ request schema
class _Loose(BaseModel):
    # OpenAI clients send fields we do not use (user, metadata, ...): ignore them rather than fail
    model_config = ConfigDict(extra="ignore")


class URLRef(_Loose):
    url: str
    detail: str | None = None


class ContentPart(_Loose):
    type: Literal["text", "image_url", "point_cloud_url"]
    text: str | None = None
    image_url: URLRef | None = None
    point_cloud_url: URLRef | None = None


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(_Loose):
    include_usage: bool = False


def _off(*neutral: Any) -> Any:
    """A predicate: the value is None or one of ``neutral`` (same type: ``False`` is not ``0``)."""
    return lambda v: v is None or any(v == n and type(v) is type(n) for n in neutral)


def _empty(v: Any) -> bool:
    return v is None or v == [] or v == {}


def _zero(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0)


#: OpenAI parameters that change the reply and that this server cannot honour: refused (400
#: unsupported_parameter) unless the value sent is the neutral one (the predicate says which are)
REFUSED_PARAMS: dict[str, Any] = {
    "tools": _empty, "functions": _empty,
    "tool_choice": _off("none", "auto"), "function_call": _off("none", "auto"),
    "response_format": lambda v: v is None or (isinstance(v, dict) and v.get("type") == "text"),
    "logprobs": _off(False), "top_logprobs": _off(0),
    "presence_penalty": _zero, "frequency_penalty": _zero, "logit_bias": _empty,
    "modalities": lambda v: v is None or v == ["text"], "audio": _empty, "prediction": _empty,
    "reasoning_effort": lambda v: v is None, "web_search_options": _empty,
}
#: OpenAI parameters that do not change the reply: accepted and ignored
IGNORED_PARAMS = frozenset({"user", "metadata", "store", "service_tier", "parallel_tool_calls",
                            "safety_identifier", "prompt_cache_key"})


class ChatCompletionRequest(_Loose):
    # unknown top-level fields are kept (not dropped) so that they can be refused by name
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)  # None: 1.0, as OpenAI
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)  # None: 1.0
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = None  # None: 1
    stream: bool | None = None  # None: false
    stream_options: StreamOptions | None = None
    task_type: str | None = None  # lamm extension: selects the system message when none is sent


# ------------------------------------------------------------------------------------ media decoding
class MediaDecoder:
    """Turns content-part URLs into loaded media, enforcing the server's policy and limits."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg, self.limits = cfg, cfg.limits
        self.roots = [Path(r).resolve() for r in cfg.media_roots]

    def image(self, url: str, param: str) -> MediaRef:
        from PIL import Image

        from lamm.media import to_rgb

        raw = self._bytes(url, param, "image")
        try:
            img = Image.open(io.BytesIO(raw))  # reads the header only
        except Exception as e:  # noqa: BLE001 - PIL raises many types for bad input
            raise APIError(400, f"{param}: not an image PIL can read ({type(e).__name__})", param, "invalid_image")
        w, h = img.size
        if w * h > self.limits.max_image_pixels:
            raise APIError(400, f"{param}: image is {w}x{h} = {w * h} pixels; the limit is "
                           f"{self.limits.max_image_pixels}", param, "image_too_large")
        try:
            img.load()
        except Exception as e:  # noqa: BLE001 - PIL's decoders raise many types for bad input, as open() does
            raise APIError(400, f"{param}: truncated or corrupt image ({e})", param, "invalid_image") from None
        return MediaRef("image", data=to_rgb(img))

    def point_cloud(self, url: str, param: str) -> MediaRef:
        from lamm.media import MediaError, load_point_cloud

        limit = self.limits.max_points
        if url.startswith("data:"):
            mime = url[5:url.find(";")] if ";" in url else ""
            suffix = {"application/x-ply": ".ply", "application/ply": ".ply", "model/ply": ".ply",
                      "application/x-npz": ".npz"}.get(mime, ".npy")
            raw = self._bytes(url, param, "point cloud")
            # the loaders read files; a private temporary file keeps one validation path for all inputs
            with tempfile.TemporaryDirectory(prefix="lamm-serve-") as d:
                path = Path(d) / f"upload{suffix}"
                path.write_bytes(raw)
                try:
                    # max_points is checked from the declared shape / count, before the data is read or
                    # decompressed: a small compressed upload cannot expand to gigabytes here
                    pts = load_point_cloud(path, max_points=limit)
                except MediaError as e:
                    message = str(e).replace(str(path), "uploaded point cloud")
                    raise self._cloud_error(e, param, message) from None
        else:
            path = self._local_path(url, param)
            try:
                pts = load_point_cloud(path, max_points=limit)
            except MediaError as e:
                raise self._cloud_error(e, param, str(e)) from None
        if len(pts) > limit:
            raise APIError(400, f"{param}: {len(pts)} points; the limit is {limit}", param,
                           "point_cloud_too_large")
        return MediaRef("pcl", data=pts)

    @staticmethod
    def _cloud_error(e: Exception, param: str, message: str) -> APIError:
        from lamm.media import MediaTooLarge

        code = "point_cloud_too_large" if isinstance(e, MediaTooLarge) else "invalid_point_cloud"
        return APIError(400, f"{param}: {message}", param, code)

    def _bytes(self, url: str, param: str, what: str) -> bytes:
        if url.startswith("data:"):
            head, sep, payload = url.partition(",")
            if not sep or not head.endswith(";base64"):
                raise APIError(400, f"{param}: a data URL must be base64 ('data:<mime>;base64,...')", param)
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise APIError(400, f"{param}: invalid base64 in the data URL", param) from None
        if url.startswith(("http://", "https://")):
            if what != "image" or not self.cfg.allow_remote_images:
                raise APIError(400, f"{param}: remote URLs are refused by this server; send the {what} "
                               "as a base64 data URL (or start the server with --allow-remote-images)",
                               param, "remote_media_refused")
            return self._fetch(url, param)
        path = self._local_path(url, param)
        try:
            return path.read_bytes()
        except OSError as e:
            raise APIError(400, f"{param}: cannot read {url[:80]!r} ({e.strerror or e})", param,
                           "media_unreadable") from None

    def _fetch(self, url: str, param: str) -> bytes:
        import httpx

        try:
            with httpx.stream("GET", url, timeout=self.limits.remote_timeout_s, follow_redirects=True) as r:
                r.raise_for_status()
                data = b""
                for chunk in r.iter_bytes():
                    data += chunk
                    if len(data) > self.limits.max_body_bytes:
                        raise APIError(400, f"{param}: remote image exceeds {self.limits.max_body_bytes} bytes",
                                       param, "image_too_large")
                return data
        except httpx.HTTPError as e:
            raise APIError(400, f"{param}: could not fetch {url}: {e}", param, "remote_media_failed") from None

    def _local_path(self, url: str, param: str) -> Path:
        raw = url.removeprefix("file://")
        if "://" in raw:
            raise APIError(400, f"{param}: unsupported URL scheme in {url[:40]!r}", param)
        if not self.roots:
            raise APIError(400, f"{param}: server paths are refused (no --media-root configured); "
                           "send a base64 data URL", param, "server_path_refused")
        if "\x00" in raw:
            raise APIError(400, f"{param}: the path holds a NUL character", param, "invalid_path")
        for root in self.roots:
            # resolve() follows symlinks and '..', so a path can only name files truly under a root
            try:
                p = (root / raw).resolve()
                if p.is_relative_to(root) and p.is_file():
                    return p
            except (OSError, ValueError, RuntimeError) as e:  # too long, a symlink loop, ...
                raise APIError(400, f"{param}: unusable path {raw[:80]!r} ({e})", param,
                               "invalid_path") from None
        raise APIError(400, f"{param}: no such file under the server's media roots", param, "media_not_found")


# ------------------------------------------------------------------------------- request → engine
def check_parameters(req: ChatCompletionRequest) -> None:
    """Refuse parameters this server would otherwise ignore although they change the reply."""
    for name, value in (req.model_extra or {}).items():
        if name in IGNORED_PARAMS:
            continue
        if name not in REFUSED_PARAMS:
            raise APIError(400, f"unrecognized request argument {name!r}; remove it (this server accepts "
                           "OpenAI's chat-completions parameters and task_type)", name,
                           "unsupported_parameter")
        if not REFUSED_PARAMS[name](value):
            raise APIError(400, f"{name}={json.dumps(value)[:80]} is not supported by this server (it would "
                           f"change the reply, and the model cannot honour it); remove {name!r}", name,
                           "unsupported_parameter")
    if req.stream_options is not None and not req.stream:
        raise APIError(400, "stream_options is only allowed with stream=true; remove it or set stream",
                       "stream_options", "unsupported_parameter")


def build_request(req: ChatCompletionRequest, cfg: ServerConfig, decoder: MediaDecoder) -> GenerateRequest:
    """Validate a chat-completions request and turn it into an engine request."""
    lim = cfg.limits
    check_parameters(req)
    if req.n not in (None, 1):
        raise APIError(400, f"n={req.n}: only n=1 is supported", "n", "unsupported_value")
    task_type = canonical_task_type(req.task_type)
    if task_type not in TASK_TYPES:
        raise APIError(400, f"task_type={req.task_type!r} is not a task type; expected one of "
                       f"{', '.join(TASK_TYPES)}", "task_type", "invalid_value")
    # the limit names the field the client sent (max_completion_tokens wins when both are sent)
    field_name = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    max_tokens = req.max_completion_tokens or req.max_tokens or min(256, lim.max_tokens)
    if max_tokens > lim.max_tokens:
        raise APIError(400, f"{field_name}={max_tokens} exceeds this server's limit of {lim.max_tokens}",
                       field_name, "max_tokens_too_large")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > 4:
        raise APIError(400, "at most 4 stop sequences", "stop")
    system: str | None = None
    turns: list[Message] = []
    n_media = 0
    for i, m in enumerate(req.messages):
        text_parts: list[str] = []
        media: list[MediaRef] = []
        parts = [ContentPart(type="text", text=m.content)] if isinstance(m.content, str) else (m.content or [])
        for j, part in enumerate(parts):
            param = f"messages[{i}].content[{j}]"
            if part.type == "text":
                text_parts.append(part.text or "")
                continue
            if m.role != "user":
                raise APIError(400, f"{param}: media are accepted in user messages only", param)
            n_media += 1
            if n_media > lim.max_media:
                raise APIError(400, f"more than {lim.max_media} media items in one request", param, "too_many_media")
            ref = part.image_url if part.type == "image_url" else part.point_cloud_url
            if ref is None:
                raise APIError(400, f"{param}: a {part.type!r} part needs '{part.type}': {{'url': ...}}", param)
            media.append(decoder.image(ref.url, param) if part.type == "image_url"
                         else decoder.point_cloud(ref.url, param))
        text = "\n".join(t for t in text_parts if t)
        if m.role in ("system", "developer"):
            system = text if system is None else system + "\n" + text
            continue
        role = "user" if m.role == "user" else "assistant"
        if turns and turns[-1].role == role:
            # clients often send consecutive user turns; one model turn holds them all
            turns[-1] = Message(role, turns[-1].content + "\n" + text, turns[-1].media + media)
        else:
            turns.append(Message(role, text, media))
    if not turns or turns[0].role != "user":
        raise APIError(400, "the conversation must start with a user message (after any system message)", "messages")
    if turns[-1].role != "user":
        raise APIError(400, "the last message must be a user message", "messages")
    conv = Conversation(turns, task_type=task_type, system=system)
    temperature = 1.0 if req.temperature is None else req.temperature
    top_p = 1.0 if req.top_p is None else req.top_p
    settings = GenerationSettings(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                  stop=stop, seed=req.seed)
    return GenerateRequest(conv, settings)


# -------------------------------------------------------------------------------------------- app
def create_app(engine: Engine, cfg: ServerConfig | None = None) -> Any:
    """The FastAPI application serving ``engine``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    cfg = cfg or ServerConfig()
    decoder = MediaDecoder(cfg)
    lock = threading.Lock()
    created = int(time.time())
    app = FastAPI(title="lamm OpenAI-compatible API", version="1")

    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        if first.get("type") == "json_invalid":
            return JSONResponse(APIError(400, "the request body is not valid JSON", None, "invalid_json").body(),
                                status_code=400)
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse(APIError(400, f"{loc or 'body'}: {first.get('msg', 'invalid request')}",
                                     loc or None, "invalid_request").body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException) -> JSONResponse:
        # unknown routes and methods: OpenAI's shape, not Starlette's {"detail": ...}
        where = f"{request.method} {request.url.path}"
        if e.status_code == 404:
            err = APIError(404, f"{where}: no such endpoint; this server serves GET /v1/models, "
                           "GET /v1/models/{model} and POST /v1/chat/completions", None, "not_found")
        elif e.status_code == 405:
            err = APIError(405, f"{where}: method not allowed on this endpoint", None, "method_not_allowed")
        else:
            err = APIError(e.status_code, f"{where}: {e.detail}", None, None)
        return JSONResponse(err.body(), status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:
        err = APIError(500, f"the server failed: {type(e).__name__}: {e}", None, None, type="server_error")
        return JSONResponse(err.body(), status_code=500)

    app.add_middleware(BodyLimit, limit=cfg.limits.max_body_bytes)

    def model_card() -> dict[str, Any]:
        return {"id": cfg.model_name, "object": "model", "created": created, "owned_by": "lamm"}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": cfg.model_name, "fingerprint": engine.fingerprint()}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model:path}")
    def retrieve_model(model: str) -> dict[str, Any]:
        if model != cfg.model_name:
            raise APIError(404, f"model {model!r} is not served here; this server serves {cfg.model_name!r}",
                           "model", "model_not_found")
        return model_card()

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatCompletionRequest) -> Any:
        if req.model and req.model not in (cfg.model_name, engine.spec):
            raise APIError(404, f"model {req.model!r} is not served here; this server serves "
                           f"{cfg.model_name!r}", "model", "model_not_found")
        greq = build_request(req, cfg, decoder)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            run = _StreamRun(engine, lock, greq, cid)
            # the first piece (or the failure) comes before the headers: a request the engine refuses
            # is then a 400 like the plain one, not a 200 with an in-band error
            first = run.first()
            return StreamingResponse(_sse(run, first, greq, cid, cfg.model_name, include_usage),
                                     media_type="text/event-stream")
        with lock:
            check_context(engine, greq)
            before = (engine.usage.prompt_tokens, engine.usage.completion_tokens)
            try:
                text = engine.generate([greq])[0]
            except ValueError as e:  # the engine refuses this input (e.g. a point cloud for an hf: model)
                raise _engine_error(e) from None
            usage, finish = _outcome(engine, before, greq)
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": cfg.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": finish, "logprobs": None}],
                "usage": usage}

    return app


def check_context(engine: Engine, greq: GenerateRequest) -> None:
    """400 ``context_length_exceeded`` when prompt tokens + ``max_tokens`` exceed the engine's context
    (skipped when the engine knows neither). Call under the model lock: it may tokenize.

    OpenAI's rule (refuse rather than cap), applied with the engine's own
    :func:`~lamm.infer.engine.fit_to_context` (``cap=False``) on the engine's own count
    (:meth:`~lamm.infer.engine.Engine.prompt_tokens`); an ``hf:`` engine keeps that count for the
    ``generate`` that follows, so the processor runs once for it."""
    ctx = engine.context_length
    if ctx is None:
        return
    try:
        n = engine.prompt_tokens(greq)
    except ValueError as e:
        raise APIError(400, str(e), "messages", "unsupported_input") from None
    try:
        fit_to_context([greq], [n], ctx, cap=False)
    except ContextLengthError:
        raise APIError(400, f"this model's context is {ctx} tokens; the messages take {n} tokens and "
                       f"max_tokens asks for {greq.settings.max_new_tokens} more; shorten the messages or "
                       "lower max_tokens", "messages", "context_length_exceeded") from None


def _outcome(engine: Engine, before: tuple[int, int], greq: GenerateRequest) -> tuple[dict[str, int], str]:
    """This request's usage and finish reason, from the engine's record of it (``usage.last[0]``).

    A backend that does not record falls back to the difference of its lifetime counters (under the
    lock, the request's own) and "length" when that count reaches ``max_tokens``."""
    last = engine.usage.last
    info = last[0] if len(last) == 1 else None
    if info is None:
        p = engine.usage.prompt_tokens - before[0]
        c = engine.usage.completion_tokens - before[1]
        info = GenerationInfo(p, c, None)
    finish = info.finish_reason
    if finish is None:
        finish = "length" if info.completion_tokens >= greq.settings.max_new_tokens else "stop"
    p, c = info.prompt_tokens, info.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}, finish


class _StreamRun:
    """One streamed reply: the engine runs in a worker thread that holds the model lock for the whole
    reply and stops at the next piece once the client has gone (``gone`` is set)."""

    def __init__(self, engine: Engine, lock: threading.Lock, greq: GenerateRequest, cid: str) -> None:
        self.pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.gone = threading.Event()
        self.engine, self.lock, self.greq = engine, lock, greq
        threading.Thread(target=self._work, daemon=True, name=f"lamm-stream-{cid}").start()

    def _work(self) -> None:
        engine = self.engine
        with self.lock:
            try:
                check_context(engine, self.greq)
            except APIError as e:
                self.pieces.put(("refused", e))
                return
            before = (engine.usage.prompt_tokens, engine.usage.completion_tokens)
            try:
                stream = engine.stream(self.greq)
                for piece in stream:
                    if self.gone.is_set():
                        getattr(stream, "close", lambda: None)()
                        break
                    self.pieces.put(("piece", piece))
            except Exception as e:  # noqa: BLE001 - handed to the response: a 4xx/5xx, or in-band once sent
                self.pieces.put(("error", e))
                return
            self.pieces.put(("done", _outcome(engine, before, self.greq)))

    def first(self) -> tuple[str, Any]:
        """The first item (a piece, the end, or the failure raised as an :class:`APIError`)."""
        kind, value = self.pieces.get()
        if kind == "refused":
            raise value
        if kind == "error":
            raise _engine_error(value)
        return kind, value

    def next(self) -> tuple[str, Any]:
        return self.pieces.get()


def _engine_error(e: Exception) -> APIError:
    """The engine refusing an input (ValueError) is the client's fault; anything else is the server's."""
    if isinstance(e, ContextLengthError):  # a backend's own check (check_context runs first, and is stricter)
        return APIError(400, str(e), "messages", "context_length_exceeded")
    if isinstance(e, ValueError):
        return APIError(400, str(e), "messages", "unsupported_input")
    return APIError(500, f"generation failed: {type(e).__name__}: {e}", type="server_error")


def _sse(run: _StreamRun, first: tuple[str, Any], greq: GenerateRequest, cid: str, model: str,
         include_usage: bool) -> Iterator[str]:
    """Server-sent events of a started :class:`_StreamRun` whose first item is ``first``."""
    created = int(time.time())  # one value for every chunk of the reply, as OpenAI sends

    def event(delta: dict[str, Any] | None, finish: str | None = None, usage: dict | None = None) -> str:
        chunk: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                                 "model": model, "choices": []}
        if delta is not None:
            chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        if usage is not None:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    try:
        yield event({"role": "assistant", "content": ""})
        kind, value = first
        while True:
            if kind == "piece":
                if value:
                    yield event({"content": value})
            elif kind == "error":
                # headers are sent: reported in-band, as OpenAI does
                yield f"data: {json.dumps(_engine_error(value).body())}\n\n"
                return
            else:
                usage, finish = value
                yield event({}, finish)
                if include_usage:
                    yield event(None, usage=usage)
                yield "data: [DONE]\n\n"
                return
            kind, value = run.next()
    finally:
        run.gone.set()


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413, before anything parses it.

    The body is read here (counting, whether or not a Content-Length was sent) and replayed to the app;
    the app would read it whole anyway."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        chunks, total, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            body = msg.get("body", b"")
            total += len(body)
            if total > self.limit:
                return await self._refuse(send)
            chunks.append(body)
            more = msg.get("more_body", False)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        body = json.dumps(APIError(413, f"request body exceeds {self.limit} bytes", None,
                                   "request_too_large").body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def serve(engine: Engine, cfg: ServerConfig, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(create_app(engine, cfg), host=host, port=port, log_level="info")
