"""The engine: the ONE interface through which any part of lamm talks to a model.

The benchmark, the LLM judge, the C1–C3 data generator, chat, the HTTP server and the web demo all
hold an :class:`Engine` and call :meth:`Engine.generate` / :meth:`Engine.loglikelihood`. Backends
(``lamm.infer.backends``) implement it for our checkpoints (``lamm:DIR``), Hugging Face VLMs
(``hf:ID_OR_PATH``), OpenAI-compatible servers (``openai:MODEL@URL``), vLLM (``vllm:ID_OR_PATH``) and a
deterministic ``dummy`` for tests. :func:`load_engine` parses such a spec.

**The context.** A model attends to at most :attr:`Engine.context_length` tokens, prompt and reply
together; past that its positions were never trained (RoPE decodes garbage) or its tensors do not fit.
Backends that know their context and can count a prompt without generating (``lamm:``, ``hf:``, and
``dummy`` given a ``context_length``) apply :func:`fit_to_context` to every ``generate`` / ``stream``
call, once, for all callers (chat, web demo, benchmark, judge, data generator, server):

* a request's ``max_new_tokens`` is capped at context − prompt tokens, so generation never runs past
  the context; when the cap ends a reply, its :class:`GenerationInfo` says ``finish_reason="length"``
  (as for ``max_new_tokens``: the reply was cut, the model did not end it);
* a prompt that alone takes the whole context (≥ ``context_length`` tokens: no room for one reply
  token) refuses the **whole call, before anything is generated**, with a :class:`ContextLengthError`
  (a ``ValueError``) naming every such request (index in the call, conversation id, prompt tokens) and
  the context, and saying what to do. Why the whole call: ``generate`` returns one reply per request,
  and there is no reply to give that a caller could not mistake for an (empty) answer; refusing up front
  wastes no generation, and the error lists every culprit (``refused``) so a caller can drop them and
  call again (``lamm chat --questions`` does). ``loglikelihood`` refuses a prompt + continuation over
  the context the same way.

``openai:`` and ``vllm:`` leave this to their server (it knows its own limit; vLLM refuses an over-long
prompt and stops at ``max_model_len``). The API server keeps OpenAI's stricter rule (prompt +
``max_tokens`` over the context is a 400) with ``fit_to_context(..., cap=False)``.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from lamm.conversation import Conversation
from lamm.registry import Registry


@dataclass
class GenerationSettings:
    """How to generate. ``temperature == 0`` means greedy; ``seed`` makes sampling reproducible."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenerateRequest:
    """A conversation ending with a user message; media refs are resolved against the engine's root."""

    conversation: Conversation
    settings: GenerationSettings = field(default_factory=GenerationSettings)


@dataclass
class LoglikelihoodRequest:
    """Score ``continuation`` as the assistant's reply to ``conversation`` (which ends with a user turn).

    ``context``: reply text that comes before the continuation: the model is conditioned on it, but its
    tokens are not scored (the constant head of an answer template, e.g. ``"The answer is ("``, so an
    option is scored by its own tokens only). The reply is tokenized whole (``context + continuation``);
    the scored tokens are those after the longest run of leading tokens it shares with ``context``
    tokenized alone (a token that spans the seam is scored)."""

    conversation: Conversation
    continuation: str
    context: str = ""


@dataclass(frozen=True)
class LoglikelihoodResult:
    """Log-probability (natural log) of the continuation's tokens: their sum, mean and count."""

    sum_logprob: float
    mean_logprob: float
    n_tokens: int


FINISH_REASONS = ("stop", "length")


@dataclass(frozen=True)
class GenerationInfo:
    """What one generate request cost and why its reply ended.

    ``completion_tokens``: tokens the model decoded for the reply, a stop string's tokens included and
    the EOS that ended it not (a backend that only knows its server's count reports that count).
    ``finish_reason``: ``"stop"`` (EOS or a stop string), ``"length"`` (``max_new_tokens`` reached, or
    the model's context full: :func:`fit_to_context` caps ``max_new_tokens`` at the room left), or None
    when the backend cannot tell.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if self.finish_reason is not None and self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason={self.finish_reason!r}: expected one of {FINISH_REASONS} "
                             "or None")


@dataclass(frozen=True)
class Overflow:
    """One request that does not fit the context: its index in the call, its conversation id (None when
    it has none), its prompt tokens (None when a remote server did not say), and the tokens it needs
    beyond them (``max_new_tokens`` under the strict rule, the continuation's tokens for a
    log-likelihood; 0 for a prompt that alone is too long)."""

    index: int
    request_id: str | None
    prompt_tokens: int | None
    extra_tokens: int = 0

    def describe(self, kind: str) -> str:
        who = f"request {self.index}" + (f" (id {self.request_id!r})" if self.request_id is not None else "")
        if self.prompt_tokens is None:  # a server's refusal that gave no count
            return f"{who}: the server refused the prompt + max_new_tokens ({self.extra_tokens}) as too long"
        if kind == "strict":
            return (f"{who}: the prompt takes {self.prompt_tokens} tokens and max_new_tokens asks for "
                    f"{self.extra_tokens} more")
        if kind == "loglikelihood":
            return (f"{who}: the prompt takes {self.prompt_tokens} tokens and the continuation "
                    f"{self.extra_tokens} more")
        return f"{who}: the prompt takes {self.prompt_tokens} tokens"


OverflowKind = Literal["generate", "strict", "loglikelihood"]


class ContextLengthError(ValueError):
    """Requests that do not fit the model's context, refused before anything ran (see the module
    docstring). ``refused``: one :class:`Overflow` per such request, in call order; ``context_length``:
    the model's context (None when a remote server refused without saying it); ``n_requests``: the requests of the refused call; ``kind``: ``"generate"`` (the
    prompt alone fills the context), ``"strict"`` (prompt + ``max_new_tokens`` exceed it) or
    ``"loglikelihood"`` (prompt + continuation exceed it)."""

    def __init__(self, context_length: int | None, refused: list[Overflow], n_requests: int,
                 kind: OverflowKind = "generate") -> None:
        self.context_length, self.refused = context_length, refused
        self.n_requests, self.kind = n_requests, kind
        shown = "; ".join(o.describe(kind) for o in refused[:3])
        more = f"; and {len(refused) - 3} more" if len(refused) > 3 else ""
        room = "no reply fits" if kind == "generate" else "they do not fit"
        scope = (f"the whole call of {n_requests} requests was refused before generating anything"
                 if n_requests > 1 else "nothing was generated")
        fix = ("shorten the prompt (or the conversation history), send fewer images, or use a model with "
               "a longer context")
        if kind == "strict":
            fix = "lower max_new_tokens, or " + fix
        ctx = (f"the model's context is {context_length} tokens" if context_length is not None
               else "the server did not say the model's context")
        super().__init__(f"{shown}{more}; {ctx} (prompt and reply together), so {room}; {scope}. To fix: {fix}")

    @property
    def indices(self) -> list[int]:
        """The refused requests' indices in the call."""
        return [o.index for o in self.refused]


def fit_to_context(requests: list[GenerateRequest], prompt_tokens: list[int | None],
                   context_length: int | None, *, cap: bool = True) -> list[GenerateRequest]:
    """The requests as they may run within ``context_length`` tokens (prompt + reply), given each
    prompt's token count (None: unknown, left as is; ``context_length`` None: every request as is).

    Every request is checked before any is changed, so a refusal comes before any generation. A prompt of
    ``context_length`` tokens or more raises :class:`ContextLengthError` naming all such requests. With
    ``cap`` (the engine's rule), a request whose ``max_new_tokens`` would run past the context gets a copy
    with ``max_new_tokens = context_length - prompt_tokens`` (the caller's request is not changed); with
    ``cap=False`` (OpenAI's rule, the API server's) such a request is refused instead.

    >>> from lamm.conversation import Conversation
    >>> r = GenerateRequest(Conversation.single_turn("hi"), GenerationSettings(max_new_tokens=8))
    >>> fit_to_context([r], [15], 20)[0].settings.max_new_tokens
    5
    """
    if len(prompt_tokens) != len(requests):
        raise ValueError(f"{len(prompt_tokens)} prompt token counts for {len(requests)} requests")
    if context_length is None:
        return list(requests)
    refused: list[Overflow] = []
    for i, (r, n) in enumerate(zip(requests, prompt_tokens)):
        if n is None:
            continue
        if not cap and n + r.settings.max_new_tokens > context_length:
            refused.append(Overflow(i, r.conversation.id, n, r.settings.max_new_tokens))
        elif n >= context_length:
            refused.append(Overflow(i, r.conversation.id, n))
    if refused:
        raise ContextLengthError(context_length, refused, len(requests), "generate" if cap else "strict")
    out = []
    for r, n in zip(requests, prompt_tokens):
        room = None if n is None else context_length - n
        if room is not None and r.settings.max_new_tokens > room:
            r = replace(r, settings=replace(r.settings, max_new_tokens=room))
        out.append(r)
    return out


def context_filled(engine: Engine) -> int | None:
    """The engine's context (tokens) when the reply of its last one-request call (``stream``, or
    ``generate`` of one request) ended because the context was full, else None. A chat shows this: its
    history leaves no room for another turn."""
    ctx, last = engine.context_length, engine.usage.last
    info = last[0] if len(last) == 1 else None
    if ctx is None or info is None or info.finish_reason != "length":
        return None
    return ctx if info.prompt_tokens + info.completion_tokens >= ctx else None


def check_loglikelihood_context(requests: list[LoglikelihoodRequest], tokens: list[tuple[int, int]],
                                context_length: int | None, indices: list[int] | None = None) -> None:
    """Raise :class:`ContextLengthError` (kind ``"loglikelihood"``) for every request whose prompt +
    continuation tokens (``tokens[i] = (prompt, continuation)``) exceed ``context_length``. ``indices``:
    the requests' indices in the call (default 0..n-1)."""
    if context_length is None:
        return
    idx = indices if indices is not None else list(range(len(requests)))
    refused = [Overflow(i, r.conversation.id, p, c) for i, r, (p, c) in zip(idx, requests, tokens)
               if p + c > context_length]
    if refused:
        raise ContextLengthError(context_length, refused, len(requests), "loglikelihood")


@dataclass
class Usage:
    """Token accounting, accumulated by a backend over its lifetime, and per request of the last call.

    Backends report each finished request with :meth:`record`, which adds it to the totals and keeps
    its :class:`GenerationInfo` in ``last`` (index = the request's index in the latest ``generate``
    call, 0 for ``stream``); :meth:`begin` starts a call. ``last[i]`` stays None for a request the
    backend did not report (a stream closed early, a backend that does not record).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    failures: int = 0
    last: list[GenerationInfo | None] = field(default_factory=list, repr=False)

    def begin(self, n: int) -> None:
        """Start a call of ``n`` requests: ``last`` becomes ``n`` empty slots."""
        self.last = [None] * n

    def record(self, index: int, info: GenerationInfo) -> None:
        """Request ``index`` of the current call finished: count it and keep its info."""
        self.requests += 1
        self.prompt_tokens += info.prompt_tokens
        self.completion_tokens += info.completion_tokens
        if 0 <= index < len(self.last):
            self.last[index] = info


ProgressFn = Callable[[int], None]


class Engine(abc.ABC):
    """A model behind the engine interface. Batching is the backend's job and is on by default."""

    #: the spec this engine was made from, e.g. ``"lamm:runs/tiny"``
    spec: str = ""

    def __init__(self, media_root: str | None = None) -> None:
        self.media_root = media_root
        self.usage = Usage()

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A stable identity of the model and its weights (cache keys depend on it)."""

    @abc.abstractmethod
    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        """Generate one reply per request, in request order. ``progress(n)`` is called as n finish.

        Backends call ``usage.begin(len(requests))`` and ``usage.record(i, GenerationInfo(...))`` for
        each request, so ``usage.last[i]`` tells its token counts and why its reply ended."""

    def loglikelihood(self, requests: list[LoglikelihoodRequest],
                      progress: ProgressFn | None = None) -> list[LoglikelihoodResult]:
        """Score each continuation. Backends that cannot (most HTTP APIs) raise NotImplementedError."""
        raise NotImplementedError(f"backend {type(self).__name__} cannot score log-likelihoods; "
                                  "use a generation-based inferencer (direct) instead of ppl")

    def stream(self, request: GenerateRequest) -> Iterator[str]:
        """Yield the reply of one request in pieces; the default yields the whole reply at once.

        Once the iterator is exhausted, ``usage.last[0]`` holds the request's :class:`GenerationInfo`."""
        yield self.generate([request])[0]

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + reply) the model attends to; None when the backend does not know.
        Backends that know it (and can count prompts) keep every call within it: see the module docstring."""
        return None

    def prompt_tokens(self, request: GenerateRequest) -> int | None:
        """How many tokens ``request``'s prompt takes (media placeholders included), counted without
        generating; None when the backend cannot tell before generating."""
        return None

    @property
    def supports_loglikelihood(self) -> bool:
        return type(self).loglikelihood is not Engine.loglikelihood

    def close(self) -> None:
        """Release resources (HTTP sessions, GPU memory)."""


BACKENDS: Registry[Callable[..., Engine]] = Registry("backend")

# backend name -> module that registers it (imported lazily, so `dummy` does not import torch)
_BACKEND_MODULES = {
    "dummy": "lamm.infer.backends.dummy",
    "lamm": "lamm.infer.backends.lamm",
    "hf": "lamm.infer.backends.hf",
    "openai": "lamm.infer.backends.openai",
    "vllm": "lamm.infer.backends.vllm",
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``"lamm:DIR"`` into ``("lamm", "DIR")``; ``"dummy"`` and ``"dummy:opts"`` are allowed.

    >>> parse_spec("openai:gpt-4o@http://127.0.0.1:8000/v1")
    ('openai', 'gpt-4o@http://127.0.0.1:8000/v1')
    >>> parse_spec("dummy")
    ('dummy', '')
    """
    kind, _, target = spec.partition(":")
    if kind not in _BACKEND_MODULES:
        known = ", ".join(f"{k}:..." if k != "dummy" else k for k in _BACKEND_MODULES)
        raise ValueError(f"model spec {spec!r}: unknown backend {kind!r}; expected one of {known}")
    if kind != "dummy" and not target:
        raise ValueError(f"model spec {spec!r}: give a target after '{kind}:'")
    return kind, target


def load_engine(spec: str, media_root: str | None = None, **options: Any) -> Engine:
    """Build the engine for a model spec (``lamm:DIR``, ``hf:ID``, ``openai:MODEL@URL``, ``vllm:ID``, ``dummy``)."""
    kind, target = parse_spec(spec)
    module = _BACKEND_MODULES[kind]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise ValueError(f"backend {kind!r} is not available in this installation") from None
        raise ValueError(f"backend {kind!r} needs the package {e.name!r}: pip install 'lamm[{kind}]' "
                         f"or pip install {e.name}") from None
    engine = BACKENDS.get(kind)(target, media_root=media_root, **options)
    engine.spec = spec
    return engine
