"""``dummy``: a deterministic fake model for tests and dry runs.

Its answers are a pure function of the prompt text (a SHA-256 of the rendered conversation), so every
run gives the same output. Modes (``dummy:MODE``):

* ``echo`` (default) — answers ``"The answer is (X). [x1, y1, x2, y2] N"`` with a letter, a box and a
  number drawn from the hash: parsable by every benchmark parser, right by chance only;
* ``constant=TEXT`` — always answers TEXT.

A "token" is a whitespace-separated word: a reply is cut to ``max_new_tokens`` words (finish reason
``"length"``), and ``usage`` counts the words of the prompt (system message and turns) and the reply.
The option ``context_length`` (words; default None = unlimited) gives the dummy a context, kept as every
backend keeps its own (:func:`~lamm.infer.engine.fit_to_context`), so callers' handling of over-long
prompts can be tested without a model.

Log-likelihoods are deterministic pseudo-random negatives, scaled by the continuation's length.
"""

from __future__ import annotations

import hashlib
from typing import Any

from lamm.infer.engine import (
    BACKENDS,
    Engine,
    GenerateRequest,
    GenerationInfo,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ProgressFn,
    check_loglikelihood_context,
    fit_to_context,
)


def _conversation_key(conv: Any) -> str:
    parts = [conv.system_text, conv.task_type]
    for m in conv.messages:
        parts.append(f"{m.role}:{m.content}")
        # a derived item (MediaRef.variant, e.g. a corrupted copy) is another input than its clean file
        parts.extend(f"{r.modality}:{r.path}" + (f"|{r.variant}" if r.variant else "") for r in m.media)
    return "\x1f".join(parts)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@BACKENDS.register("dummy")
class DummyEngine(Engine):
    """Deterministic answers; see the module docstring."""

    def __init__(self, target: str = "", media_root: str | None = None, context_length: int | None = None,
                 **_: Any) -> None:
        super().__init__(media_root)
        self.mode = target or "echo"
        if not (self.mode == "echo" or self.mode.startswith("constant=")):
            raise ValueError(f"dummy mode {self.mode!r}: expected 'echo' or 'constant=TEXT'")
        if context_length is not None and (isinstance(context_length, bool)
                                           or not isinstance(context_length, int) or context_length < 1):
            raise ValueError(f"dummy context_length={context_length!r}: expected a positive integer (words)")
        self._context = context_length

    @property
    def context_length(self) -> int | None:
        """The ``context_length`` option (words), None when not given."""
        return self._context

    def prompt_tokens(self, request: GenerateRequest) -> int:
        """Words of the system message and of every turn."""
        conv = request.conversation
        return len(conv.system_text.split()) + sum(len(m.content.split()) for m in conv.messages)

    def fingerprint(self) -> str:
        return f"dummy:{self.mode}"

    def _answer(self, req: GenerateRequest) -> str:
        if self.mode.startswith("constant="):
            return self.mode[len("constant="):]
        d = _digest(_conversation_key(req.conversation))
        letter = "ABCD"[d[0] % 4]
        x1, y1 = d[1] / 512, d[2] / 512
        x2, y2 = x1 + d[3] / 512, y1 + d[4] / 512
        return f"The answer is ({letter}). [{x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f}] {d[5] % 10}"

    def generate(self, requests: list[GenerateRequest], progress: ProgressFn | None = None) -> list[str]:
        requests = fit_to_context(requests, [self.prompt_tokens(r) for r in requests], self.context_length)
        out = []
        self.usage.begin(len(requests))
        for i, req in enumerate(requests):
            text, why = self._answer(req), "stop"
            for stop in req.settings.stop:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            words = text.split()
            if len(words) > req.settings.max_new_tokens:
                words, why = words[: req.settings.max_new_tokens], "length"
                text = " ".join(words)
            out.append(text)
            self.usage.record(i, GenerationInfo(self.prompt_tokens(req), len(words), why))
            if progress:
                progress(1)
        return out

    def loglikelihood(self, requests: list[LoglikelihoodRequest],
                      progress: ProgressFn | None = None) -> list[LoglikelihoodResult]:
        """Pseudo-random scores; with ``context_length``, prompt + context + continuation words over it
        refuse the call (:func:`~lamm.infer.engine.check_loglikelihood_context`), as the real backends do."""
        counts = [(self.prompt_tokens(GenerateRequest(r.conversation)) + len(r.context.split()),
                   max(1, len(r.continuation.split()))) for r in requests]
        check_loglikelihood_context(requests, counts, self.context_length)
        out = []
        for req in requests:
            seam = req.context + "\x1f" if req.context else ""  # no context: the digests of before
            d = _digest(_conversation_key(req.conversation) + "\x1e" + seam + req.continuation)
            n = max(1, len(req.continuation.split()))
            mean = -(0.1 + d[0] / 64)
            out.append(LoglikelihoodResult(mean * n, mean, n))
            if progress:
                progress(1)
        return out
