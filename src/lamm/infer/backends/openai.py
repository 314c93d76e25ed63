"""``openai:MODEL@URL``: any OpenAI-compatible chat-completions server, over httpx.

* ``URL`` is the API base (``https://api.openai.com/v1``, ``http://127.0.0.1:8000/v1``); without
  ``@URL`` the base is ``$OPENAI_BASE_URL`` or OpenAI's. The key is the ``api_key`` option, else
  ``$OPENAI_API_KEY`` (a local server needs none).
* Images go as base64 ``data:`` URLs (the file's own bytes when it has a path, else PNG). Point clouds
  go as ``lamm``'s extension part ``{"type": "point_cloud_url", ...}`` (see ``lamm.infer.server``);
  only a lamm server understands it, so ``point_clouds="error"`` refuses them up front instead.
* Requests run on ``concurrency`` threads; a connection error, a timeout, 408/409/429 or a 5xx is
  retried ``max_retries`` times with exponential backoff (``Retry-After`` honoured); any other 4xx
  fails at once. A request that still fails raises :class:`OpenAIError` naming the server, the status
  and the server's message. A stream is retried only before its first piece reaches the consumer;
  a stream that then breaks, reports an in-band error, or ends without ``[DONE]`` raises (a partial
  reply is never returned as a whole one). Token counts come from the responses' ``usage``.
* The server keeps its own context limit. A request it refuses as too long (HTTP 400, code
  ``context_length_exceeded``, or a message about the context length, as OpenAI, vLLM and ``lamm serve``
  word it) follows the engine's rule (:func:`~lamm.infer.engine.fit_to_context`) as far as the server's
  message allows: when it gives the context and the prompt's tokens and the prompt alone fits, the
  request is sent again with ``max_tokens`` cut to the room left (its reply then ends with
  ``finish_reason="length"``); otherwise ``generate`` raises
  :class:`~lamm.infer.engine.ContextLengthError` naming every such request, once all the others are
  answered, and keeps those replies for the caller's next call (which asks again without the refused
  requests), so nothing is generated twice.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import mimetypes
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from lamm.conversation import Conversation, MediaRef
from lamm.infer.engine import (
    BACKENDS,
    ContextLengthError,
    Engine,
    GenerateRequest,
    GenerationInfo,
    GenerationSettings,
    Overflow,
    ProgressFn,
)
from lamm.media import resolve_media_path

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


#: how servers word a request longer than the model's context (OpenAI and lamm also give the error code
#: ``context_length_exceeded``; vLLM says "This model's maximum context length is N tokens")
_CONTEXT_WORDS = re.compile(r"context[_ ]length|maximum context|model's context", re.IGNORECASE)
_CONTEXT_SIZE = re.compile(r"(?:maximum context length|context(?: window)?) is (\d+)", re.IGNORECASE)
_PROMPT_SIZE = re.compile(r"(\d+) (?:tokens )?in the messages|messages (?:take|resulted in) (\d+)",
                          re.IGNORECASE)


def parse_context_refusal(message: str) -> tuple[int | None, int | None]:
    """``(context, prompt tokens)`` from a server's "too long" message, ``None`` where it gives none.

    >>> parse_context_refusal("This model's maximum context length is 4096 tokens. However, you requested "
    ...                       "4200 tokens (4100 in the messages, 100 in the completion).")
    (4096, 4100)
    >>> parse_context_refusal("this model's context is 46 tokens; the messages take 40 tokens and ...")
    (46, 40)
    """
    ctx, prompt = _CONTEXT_SIZE.search(message), _PROMPT_SIZE.search(message)
    return (int(ctx.group(1)) if ctx else None,
            int(next(g for g in prompt.groups() if g)) if prompt else None)


class OpenAIError(RuntimeError):
    """A request to an OpenAI-compatible server failed (after retries where retrying made sense)."""


def parse_target(target: str) -> tuple[str, str]:
    """``"MODEL@URL"`` → ``(MODEL, URL)``; without ``@`` the URL is ``$OPENAI_BASE_URL`` or OpenAI's.

    >>> parse_target("gpt-4o@http://127.0.0.1:8000/v1")
    ('gpt-4o', 'http://127.0.0.1:8000/v1')
    """
    m = re.match(r"^(.*?)@(\w+://.*)$", target)
    model, url = (m.group(1), m.group(2)) if m else (target, os.environ.get("OPENAI_BASE_URL", DEFAULT_BASE_URL))
    if not model:
        raise ValueError(f"openai spec {target!r}: give a model name, e.g. openai:gpt-4o@http://host:8000/v1")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"openai spec {target!r}: the URL after '@' must start with http:// or https://")
    return model, url.rstrip("/")


def media_data_url(ref: MediaRef, root: str | None) -> str:
    """A ``data:`` URL of an image (mime type from the file) or a point cloud (``.npy``)."""
    if ref.modality == "pcl":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, np.asarray(ref.load(root), dtype=np.float32), allow_pickle=False)
        return "data:application/x-npy;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    if ref.data is None and ref.path is not None and ref.transform is None:
        # the file's own bytes: no re-encoding, so the server sees exactly the file (a transformed ref,
        # e.g. a corrupted copy, is sent as the PNG of its transformed pixels below)
        p = resolve_media_path(ref.path, root)
        mime = mimetypes.guess_type(p.name)[0]
        if mime and mime.startswith("image/"):
            ref.load(root)  # validates the image (a clear MediaError naming the file) before sending it
            return f"data:{mime};base64," + base64.b64encode(Path(p).read_bytes()).decode("ascii")
    buf = io.BytesIO()
    ref.load(root).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def conversation_messages(conv: Conversation, root: str | None, point_clouds: str = "extension") -> list[dict]:
    """OpenAI chat ``messages`` for a conversation: system, then turns with media parts first."""
    out: list[dict[str, Any]] = [{"role": "system", "content": conv.system_text}] if conv.system_text else []
    for m in conv.messages:
        if not m.media:
            out.append({"role": m.role, "content": m.content})
            continue
        parts: list[dict[str, Any]] = []
        for ref in m.media:
            if ref.modality == "pcl":
                if point_clouds == "error":
                    raise ValueError("this OpenAI-compatible backend was set to refuse point clouds "
                                     "(point_clouds='error'); only a lamm server accepts them")
                parts.append({"type": "point_cloud_url", "point_cloud_url": {"url": media_data_url(ref, root)}})
            else:
                parts.append({"type": "image_url", "image_url": {"url": media_data_url(ref, root)}})
        parts.append({"type": "text", "text": m.content})
        out.append({"role": m.role, "content": parts})
    return out


@BACKENDS.register("openai")
class OpenAIEngine(Engine):
    """Chat completions from an OpenAI-compatible server. Options: ``api_key``, ``concurrency`` (8),
    ``timeout`` (seconds, 120), ``max_retries`` (5), ``backoff`` (first wait, seconds, 1.0),
    ``point_clouds`` ("extension" | "error"), ``transport`` (an httpx transport, for tests)."""

    def __init__(self, target: str, media_root: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0,
                 point_clouds: str = "extension", transport: httpx.BaseTransport | None = None,
                 **unknown: Any) -> None:
        super().__init__(media_root)
        if unknown:
            raise ValueError(f"openai backend: unknown option(s) {sorted(unknown)}; known: api_key, "
                             "concurrency, timeout, max_retries, backoff, point_clouds")
        if point_clouds not in ("extension", "error"):
            raise ValueError(f"point_clouds must be 'extension' or 'error', got {point_clouds!r}")
        self.model, self.base_url = parse_target(target)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.concurrency = max(1, int(concurrency))
        self.max_retries, self.backoff, self.point_clouds = int(max_retries), float(backoff), point_clouds
        self._client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                    timeout=httpx.Timeout(float(timeout), connect=min(10.0, float(timeout))),
                                    limits=httpx.Limits(max_connections=self.concurrency))
        self._lock = threading.Lock()  # guards usage counters updated from worker threads
        #: replies of the last ``generate`` call that a context refusal interrupted, by request (``_key``)
        self._kept: dict[str, tuple[str, GenerationInfo | None]] = {}

    def fingerprint(self) -> str:
        # a remote model's weights are not ours to hash; its name and server are its identity
        return f"openai:{self.model}@{self.base_url}"

    def _payload(self, req: GenerateRequest, stream: bool = False) -> dict[str, Any]:
        s: GenerationSettings = req.settings
        body: dict[str, Any] = {
            "model": self.model,
            "messages": conversation_messages(req.conversation, self.media_root, self.point_clouds),
            "max_tokens": s.max_new_tokens,
            "temperature": max(0.0, s.temperature),
        }
        if s.top_p < 1.0:
            body["top_p"] = s.top_p
        if s.stop:
            body["stop"] = s.stop[:4]  # OpenAI accepts at most four; the rest are cut client-side
        if s.seed is not None:
            body["seed"] = s.seed
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        after = response.headers.get("retry-after") if response is not None else None
        if after:
            try:
                return min(60.0, float(after))
            except ValueError:
                pass
        # exponential backoff with jitter, so parallel workers do not retry in lockstep
        return min(60.0, self.backoff * (2 ** attempt)) * (0.5 + random.random() / 2)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        last = ""
        for attempt in range(self.max_retries + 1):
            resp = None
            try:
                resp = self._client.post("/chat/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if resp.status_code == 200:
                    return resp.json()
                refusal = _context_refusal(resp)
                if refusal is not None:  # not a failure of the server: the request does not fit
                    raise refusal
                last = f"HTTP {resp.status_code}: {_error_message(resp)}"
                if resp.status_code not in RETRY_STATUS:
                    break
            if attempt < self.max_retries:
                time.sleep(self._wait(attempt, resp))
        with self._lock:
            self.usage.failures += 1
        raise OpenAIError(f"{self.base_url}/chat/completions (model {self.model!r}) failed after "
                          f"{attempt + 1} attempt(s): {last}")

    def _one(self, index: int, req: GenerateRequest) -> str:
        try:
            data = self._post(self._payload(req))
        except _ContextRefused as e:
            ctx, n = e.context_length, e.prompt_tokens
            if ctx is None or n is None or n >= ctx or req.settings.max_new_tokens <= ctx - n:
                raise
            # the prompt fits: the engine's rule caps the reply at the room left (finish_reason "length")
            capped = dataclasses.replace(req, settings=dataclasses.replace(req.settings, max_new_tokens=ctx - n))
            data = self._post(self._payload(capped))
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise OpenAIError(f"{self.base_url}: response has no choices[0].message.content: "
                              f"{json.dumps(data)[:300]}") from None
        cut = _cut_at_stop(text, req.settings.stop)
        self._account(index, data.get("usage"), choice.get("finish_reason"), len(cut) < len(text))
        return cut

    def _account(self, index: int, usage: dict | None, finish_reason: Any, cut: bool) -> None:
        """Record the server's token counts and finish reason ("stop" when a stop string was cut here,
        beyond the four the server applies; a reason outside stop/length, e.g. tool_calls, is unknown)."""
        usage = usage if isinstance(usage, dict) else {}
        why = "stop" if cut else finish_reason if finish_reason in ("stop", "length") else None
        info = GenerationInfo(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                              why)
        with self._lock:
            self.usage.record(index, info)

    def _key(self, req: GenerateRequest) -> str:
        """What identifies a request's reply for :attr:`_kept` (the whole payload, media included)."""
        return hashlib.sha256(json.dumps(self._payload(req), sort_keys=True).encode("utf-8")).hexdigest()

    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        self.usage.begin(len(requests))
        # replies of the last call that a context refusal interrupted: its caller asks them again
        kept, self._kept = self._kept, {}
        if not requests:
            return []
        out: list[str] = [""] * len(requests)
        todo: dict[int, Any] = {}
        refused: dict[int, _ContextRefused] = {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            keys = [self._key(r) for r in requests] if kept else [None] * len(requests)
            for i, (r, k) in enumerate(zip(requests, keys)):
                if k in kept:
                    out[i], info = kept[k]
                    self.usage.record(i, info)
                else:
                    todo[i] = pool.submit(self._one, i, r)
            try:
                for i in range(len(requests)):  # in request order; the first failure propagates
                    if i in todo:
                        try:
                            out[i] = todo[i].result()
                        except _ContextRefused as e:  # the others are still answered (see the docstring)
                            refused[i] = e
                            continue
                    if progress:
                        progress(1)
            except BaseException:
                for fut in todo.values():  # queued requests would each retry against a failing server
                    fut.cancel()
                raise
        if refused:
            self._kept = {self._key(r): (out[i], self.usage.last[i]) for i, r in enumerate(requests)
                          if i not in refused}
            ctx = next((e.context_length for e in refused.values() if e.context_length is not None), None)
            known = all(e.prompt_tokens is not None for e in refused.values())
            raise ContextLengthError(
                ctx, [Overflow(i, requests[i].conversation.id, e.prompt_tokens, requests[i].settings.max_new_tokens)
                      for i, e in sorted(refused.items())], len(requests), "generate" if known else "strict")
        return out

    def stream(self, request: GenerateRequest) -> Iterator[str]:
        """Server-sent events from ``stream=true``.

        A connection error, a timeout or a retryable status is retried only while nothing has been
        yielded: once the consumer holds part of the reply, a retry would send its start again, so a
        later failure raises :class:`OpenAIError` instead. An in-band ``{"error": ...}`` event, a
        malformed event, or a stream that ends without ``data: [DONE]`` also raises (the reply is
        incomplete); each such failure is counted in ``usage.failures``."""
        body = self._payload(request, stream=True)
        self.usage.begin(1)
        stops = request.settings.stop
        where = f"{self.base_url}/chat/completions (model {self.model!r}) streaming"
        yielded = False
        # one more round than the retries: a context refusal may send the request once more, capped
        for attempt in range(self.max_retries + 2):
            try:
                with self._client.stream("POST", "/chat/completions", json=body) as resp:
                    if resp.status_code != 200:
                        resp.read()
                        refusal = _context_refusal(resp)
                        if refusal is not None:
                            ctx, n = refusal.context_length, refusal.prompt_tokens
                            if ctx is not None and n is not None and n < ctx < n + body["max_tokens"]:
                                body["max_tokens"] = ctx - n  # the engine's rule: cap at the room left
                                continue
                            raise ContextLengthError(ctx, [Overflow(0, request.conversation.id, n,
                                                                    request.settings.max_new_tokens)], 1,
                                                     "generate" if n is not None else "strict")
                        if resp.status_code in RETRY_STATUS and attempt < self.max_retries:
                            time.sleep(self._wait(attempt, resp))
                            continue
                        self._failed()
                        raise OpenAIError(f"{where} failed: HTTP {resp.status_code}: {_error_message(resp)}")
                    for piece in self._read_sse(resp, stops, where):
                        yielded = True
                        yield piece
                    return
            except (httpx.TransportError, httpx.TimeoutException) as e:
                if yielded:
                    self._failed()
                    raise OpenAIError(f"{where}: the connection failed after part of the reply was received "
                                      f"({type(e).__name__}: {e}); not retried, as the consumer already "
                                      "holds its start") from e
                if attempt >= self.max_retries:
                    self._failed()
                    raise OpenAIError(f"{where} failed after {attempt + 1} attempt(s): "
                                      f"{type(e).__name__}: {e}") from e
                time.sleep(self._wait(attempt, None))
        raise OpenAIError(f"{where}: no reply after {self.max_retries + 2} attempts")  # (not reached)

    def _failed(self) -> None:
        with self._lock:
            self.usage.failures += 1

    def _read_sse(self, resp: httpx.Response, stops: list[str], where: str) -> Iterator[str]:
        text, sent, usage, complete, finish, was_cut = "", 0, None, False, None, False
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                complete = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                self._failed()
                raise OpenAIError(f"{where}: malformed server-sent event {data[:200]!r}") from None
            if not isinstance(chunk, dict):
                self._failed()
                raise OpenAIError(f"{where}: server-sent event is not a JSON object: {data[:200]!r}")
            if chunk.get("error") is not None:
                # the server failed mid-reply and said so in-band (OpenAI, and lamm's own server, do this)
                err = chunk["error"]
                msg = (err.get("message") or err) if isinstance(err, dict) else err
                self._failed()
                raise OpenAIError(f"{where}: the server reported an error after {len(text)} characters of "
                                  f"the reply: {msg}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
                finish = choice.get("finish_reason") or finish
            # hold back text that may be the start of a stop string, so a stop is never half-printed
            cut = _cut_at_stop(text, stops)
            if len(cut) < len(text):
                text, was_cut = cut, True
                complete = True  # we stop reading here: the rest of the reply is not wanted
                break
            safe = len(text) - max((len(s) - 1 for s in stops if s), default=0)
            if safe > sent:
                yield text[sent:safe]
                sent = safe
        if not complete:
            self._failed()
            raise OpenAIError(f"{where}: the stream ended without 'data: [DONE]' after {len(text)} "
                              "characters; the reply is incomplete")
        self._account(0, usage, finish, was_cut)
        if len(text) > sent:
            yield text[sent:]

    def close(self) -> None:
        self._client.close()


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cut = min((text.index(s) for s in stops if s and s in text), default=len(text))
    return text[:cut]


class _ContextRefused(Exception):
    """The server refused one request as longer than its context (internal: ``generate`` turns these into
    one :class:`ContextLengthError`); the counts parsed from its message, None where it gave none."""

    def __init__(self, message: str, context_length: int | None, prompt_tokens: int | None) -> None:
        super().__init__(message)
        self.context_length, self.prompt_tokens = context_length, prompt_tokens


def _context_refusal(resp: httpx.Response) -> _ContextRefused | None:
    """A 400 that says the request does not fit the server's context, else None."""
    if resp.status_code != 400:
        return None
    message = _error_message(resp)
    try:
        err = resp.json().get("error")
        code = err.get("code") if isinstance(err, dict) else None
    except (ValueError, AttributeError):
        code = None
    if code != "context_length_exceeded" and not _CONTEXT_WORDS.search(message):
        return None
    return _ContextRefused(message, *parse_context_refusal(message))


def _error_message(resp: httpx.Response) -> str:
    try:
        err = resp.json().get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or resp.text[:300])
    except (ValueError, AttributeError):
        return resp.text[:300]
