"""An OpenAI-compatible HTTP API over any engine (``lamm serve api``).

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions`` (plain JSON, or server-sent events with
``"stream": true``), ``GET /health``. Errors use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` with a 4xx status for the client's faults.

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

from lamm.conversation import Conversation, MediaRef, Message
from lamm.infer.engine import Engine, GenerateRequest, GenerationSettings


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


class ChatCompletionRequest(_Loose):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    task_type: str = "normal"  # lamm extension: selects the system message when none is sent


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
def build_request(req: ChatCompletionRequest, cfg: ServerConfig, decoder: MediaDecoder) -> GenerateRequest:
    """Validate a chat-completions request and turn it into an engine request."""
    lim = cfg.limits
    if req.n != 1:
        raise APIError(400, "only n=1 is supported", "n", "unsupported_value")
    max_tokens = req.max_completion_tokens or req.max_tokens or min(256, lim.max_tokens)
    if max_tokens > lim.max_tokens:
        raise APIError(400, f"max_tokens={max_tokens} exceeds this server's limit of {lim.max_tokens}",
                       "max_tokens", "max_tokens_too_large")
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
    conv = Conversation(turns, task_type=req.task_type, system=system)
    settings = GenerationSettings(max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                                  stop=stop, seed=req.seed)
    return GenerateRequest(conv, settings)


# -------------------------------------------------------------------------------------------- app
def create_app(engine: Engine, cfg: ServerConfig | None = None) -> Any:
    """The FastAPI application serving ``engine``."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

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

    app.add_middleware(BodyLimit, limit=cfg.limits.max_body_bytes)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": cfg.model_name, "fingerprint": engine.fingerprint()}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": cfg.model_name, "object": "model", "created": created,
                                            "owned_by": "lamm"}]}

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatCompletionRequest) -> Any:
        if req.model and req.model not in (cfg.model_name, engine.spec):
            raise APIError(404, f"model {req.model!r} is not served here; this server serves "
                           f"{cfg.model_name!r}", "model", "model_not_found")
        greq = build_request(req, cfg, decoder)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_sse(engine, lock, greq, cid, cfg.model_name, include_usage),
                                     media_type="text/event-stream")
        with lock:
            before = (engine.usage.prompt_tokens, engine.usage.completion_tokens)
            try:
                text = engine.generate([greq])[0]
            except ValueError as e:  # the engine refuses this input (e.g. a point cloud for an hf: model)
                raise APIError(400, str(e), "messages", "unsupported_input") from None
            usage = _usage_since(engine, before)
        return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": cfg.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": _finish(usage, greq), "logprobs": None}],
                "usage": usage}

    return app


def _usage_since(engine: Engine, before: tuple[int, int]) -> dict[str, int]:
    # the engine counts tokens over its lifetime; under the lock the difference is this request's
    p = engine.usage.prompt_tokens - before[0]
    c = engine.usage.completion_tokens - before[1]
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _finish(usage: dict[str, int], greq: GenerateRequest) -> str:
    return "length" if usage["completion_tokens"] >= greq.settings.max_new_tokens else "stop"


def _sse(engine: Engine, lock: threading.Lock, greq: GenerateRequest, cid: str, model: str,
         include_usage: bool) -> Iterator[str]:
    """Server-sent events. The engine runs in a worker thread that holds the model lock for the whole
    reply and stops at the next piece once the client has gone (this generator is then closed)."""
    pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
    gone = threading.Event()

    def work() -> None:
        with lock:
            before = (engine.usage.prompt_tokens, engine.usage.completion_tokens)
            try:
                stream = engine.stream(greq)
                for piece in stream:
                    if gone.is_set():
                        getattr(stream, "close", lambda: None)()
                        break
                    pieces.put(("piece", piece))
            except Exception as e:  # noqa: BLE001 - headers are sent; reported in-band, as OpenAI does
                pieces.put(("error", f"{type(e).__name__}: {e}"))
                return
            pieces.put(("done", _usage_since(engine, before)))

    def event(delta: dict[str, Any] | None, finish: str | None = None, usage: dict | None = None) -> str:
        chunk: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()),
                                 "model": model, "choices": []}
        if delta is not None:
            chunk["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
        if usage is not None:
            chunk["usage"] = usage
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    threading.Thread(target=work, daemon=True, name=f"lamm-stream-{cid}").start()
    try:
        yield event({"role": "assistant", "content": ""})
        while True:
            kind, value = pieces.get()
            if kind == "piece":
                if value:
                    yield event({"content": value})
            elif kind == "error":
                err = APIError(500, f"generation failed: {value}", type="server_error")
                yield f"data: {json.dumps(err.body())}\n\n"
                return
            else:
                yield event({}, _finish(value, greq))
                if include_usage:
                    yield event(None, usage=value)
                yield "data: [DONE]\n\n"
                return
    finally:
        gone.set()


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
