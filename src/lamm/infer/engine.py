"""The engine: the ONE interface through which any part of lamm talks to a model.

The benchmark, the LLM judge, the C1–C3 data generator, chat, the HTTP server and the web demo all
hold an :class:`Engine` and call :meth:`Engine.generate` / :meth:`Engine.loglikelihood`. Backends
(``lamm.infer.backends``) implement it for our checkpoints (``lamm:DIR``), Hugging Face VLMs
(``hf:ID_OR_PATH``), OpenAI-compatible servers (``openai:MODEL@URL``), vLLM (``vllm:ID_OR_PATH``) and a
deterministic ``dummy`` for tests. :func:`load_engine` parses such a spec.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

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
    """Score ``continuation`` as the assistant's reply to ``conversation`` (which ends with a user turn)."""

    conversation: Conversation
    continuation: str


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
    ``finish_reason``: ``"stop"`` (EOS or a stop string), ``"length"`` (``max_new_tokens`` reached), or
    None when the backend cannot tell.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        if self.finish_reason is not None and self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason={self.finish_reason!r}: expected one of {FINISH_REASONS} "
                             "or None")


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
        """The most tokens (prompt + reply) the model attends to; None when the backend does not know."""
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
