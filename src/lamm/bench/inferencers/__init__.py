"""Inferencers: turn benchmark samples into engine requests and engine replies into answer texts.

* ``direct`` — generate, once per sample;
* ``ppl`` — score every option with :meth:`Engine.loglikelihood` through the answer template, pick the
  most likely, keep every option's probability (calibration needs them);
* ``cot`` — ask with "Let's think step by step." then ask for the answer in a second turn;
* ``multiturn`` — detection in two turns: first the classes, then their boxes.

Every inferencer builds its requests with :class:`lamm.conversation.Conversation` (the one prompt
builder) and shows in-context examples (``lamm.bench.icl``) as earlier user/assistant turns, each with
its own image or point cloud. The answer text it returns is what the parsers read; the runner caches it
before scoring.

**Prompts that do not fit the model's context.** The engine refuses a whole call with
:class:`~lamm.infer.engine.ContextLengthError` when some request's prompt fills the context (or a
log-likelihood's prompt + continuation exceed it), naming each such request. A benchmark goes on without
those samples and records each one: :meth:`Inferencer.generate_fitting` (used by ``direct``, ``cot`` and
``multiturn`` for every engine call, so a refusal in the second turn does not repeat the first) drops the
refused requests and calls again; :meth:`Inferencer.answer` (what the runner calls) does the same per
sample for an inferencer whose ``infer`` lets the error through (``ppl``: a sample is refused when any of
its options is, since scoring the others alone would choose among fewer options). A refused sample's
result has an empty answer (the parsers read it as unparsed: scored as wrong) and ``extra`` =
:meth:`Refusal.extra`: ``{"error": "context_length_exceeded", "prompt_tokens", "context_length"}`` (plus
``continuation_tokens`` for a log-likelihood, ``turn`` for the two-turn inferencers).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from lamm.bench.icl import Retriever
from lamm.bench.instructions import ResolvedInstruction
from lamm.bench.scenarios.base import Sample
from lamm.conversation import Conversation, MediaRef, Message, render_text
from lamm.infer.engine import (
    ContextLengthError,
    Engine,
    GenerateRequest,
    GenerationSettings,
    Overflow,
    ProgressFn,
)
from lamm.model.encoders.preprocess import sample_seed
from lamm.registry import Registry


@dataclass
class InferenceResult:
    """One sample's outcome: ``answer`` (scored), ``prompt`` (the rendered final request) and ``extra``."""

    answer: str
    prompt: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {"answer": self.answer, "prompt": self.prompt, "extra": self.extra}


#: ``extra["error"]`` of a sample the engine refused because its prompt does not fit the model's context
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


@dataclass(frozen=True)
class Refusal:
    """Why the engine refused a sample: its prompt tokens, the model's context (tokens), and for a
    log-likelihood the continuation tokens that did not fit after the prompt (``kind`` = the
    :class:`~lamm.infer.engine.ContextLengthError`'s kind)."""

    prompt_tokens: int | None  # None: a remote server refused without counting
    context_length: int | None
    continuation_tokens: int = 0
    kind: str = "generate"

    @classmethod
    def of(cls, overflows: Sequence[Overflow], error: ContextLengthError) -> Refusal:
        """One sample's refusal from its refused requests (several for ``ppl``: one per option); the
        largest counts are kept."""
        counts = [o.prompt_tokens for o in overflows if o.prompt_tokens is not None]
        return cls(max(counts) if counts else None, error.context_length,
                   max(o.extra_tokens for o in overflows) if error.kind == "loglikelihood" else 0, error.kind)

    def extra(self, turn: int | None = None) -> dict[str, Any]:
        """The ``extra`` of the refused sample's result (``turn``: which request of a two-turn inferencer)."""
        out: dict[str, Any] = {"error": CONTEXT_LENGTH_EXCEEDED, "prompt_tokens": self.prompt_tokens,
                               "context_length": self.context_length}
        if self.kind == "loglikelihood":
            out["continuation_tokens"] = self.continuation_tokens
        if turn is not None:
            out["turn"] = turn
        return out

    def result(self, prompt: str, turn: int | None = None, **extra: Any) -> InferenceResult:
        """The refused sample's result: an empty answer (unparsed, scored as wrong), the prompt it would have
        been asked, and :meth:`extra` (plus ``extra``, e.g. a CoT rationale of the turn that did fit)."""
        return InferenceResult("", prompt, {**self.extra(turn), **extra})


def is_refused(extra: Any) -> bool:
    """Whether one sample's ``extra`` says the engine refused it for the context (:class:`Refusal`).

    >>> is_refused({"error": "context_length_exceeded", "prompt_tokens": 9, "context_length": 8})
    True
    """
    return isinstance(extra, Mapping) and extra.get("error") == CONTEXT_LENGTH_EXCEEDED


T = TypeVar("T")
R = TypeVar("R")


def call_fitting(call: Callable[[list[T]], list[R]], requests: Sequence[T]
                 ) -> tuple[list[R | None], dict[int, Refusal]]:
    """``call(requests)``, asked again without the requests a :class:`ContextLengthError` names until it
    answers. Returns one reply per request (``None`` for a refused one) and ``{index: Refusal}``.

    Every retry is smaller, so this ends; an error naming no request (or one outside the call) is not
    this function's to handle and propagates. Requests that fit are answered exactly as in one call
    (the engine refused the whole call before generating anything).
    """
    pending = list(range(len(requests)))
    refused: dict[int, Refusal] = {}
    replies: list[R | None] = [None] * len(requests)
    while pending:
        try:
            got = call([requests[i] for i in pending])
        except ContextLengthError as e:
            bad: dict[int, list[Overflow]] = {}
            for o in e.refused:
                bad.setdefault(o.index, []).append(o)
            if not bad or not all(0 <= k < len(pending) for k in bad):
                raise
            for k, overflows in bad.items():
                refused[pending[k]] = Refusal.of(overflows, e)
            pending = [p for k, p in enumerate(pending) if k not in bad]
            continue
        if len(got) != len(pending):
            raise RuntimeError(f"the engine returned {len(got)} replies for {len(pending)} requests")
        for p, r in zip(pending, got):
            replies[p] = r
        break
    return replies, refused


def render_prompt(conv: Conversation) -> str:
    """The request as LAMM-template text, for people reading ``answers.jsonl`` (media as placeholders)."""
    return render_text(conv, None, "lamm", add_generation_prompt=conv.messages[-1].role == "user")


def _media(sample: Sample) -> list[MediaRef]:
    # fresh refs: a backend that caches loaded data on a ref must not pin every image of the run;
    # replace() keeps a derived ref's transform and variant (a corrupted copy stays corrupted)
    return [replace(m, data=None if m.path else m.data) for m in sample.media]


class Inferencer(abc.ABC):
    """Base: holds the engine, the resolved instruction, the settings and an optional ICL retriever."""

    name = "base"
    #: whether the engine must implement ``loglikelihood``
    needs_loglikelihood = False

    def __init__(self, engine: Engine, instruction: ResolvedInstruction, *, max_new_tokens: int = 512,
                 temperature: float = 0.0, seed: int = 0, retriever: Retriever | None = None,
                 **options: Any) -> None:
        if self.needs_loglikelihood and not engine.supports_loglikelihood:
            raise ValueError(f"inferencer {self.name!r} needs log-likelihoods, which backend "
                             f"{type(engine).__name__} ({engine.spec or '?'}) cannot give; use 'direct'")
        self.engine = engine
        self.instruction = instruction
        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)
        self.seed = seed
        self.retriever = retriever
        self.options = options

    def request(self, conv: Conversation, turn: int = 0) -> GenerateRequest:
        """The generation request of ``conv`` (a sample's conversation, ``conv.id`` = the sample id). With
        sampling (temperature > 0) its seed comes from the recipe's ``inferencer.seed``, the sample id and
        the ``turn`` (CoT / multi-turn ask twice): the same answers on every run, whatever the batching."""
        settings = self.settings
        if not settings.greedy:
            settings = replace(settings, seed=sample_seed(f"{conv.id}\x1fturn{turn}", self.seed))
        return GenerateRequest(conv, settings)

    def question_text(self, sample: Sample) -> str:
        # a verbalised sample (instruction following) shows its options under its own labels
        return self.instruction.format_question(sample.question, sample.options, sample.labels)

    def conversation(self, sample: Sample, question: str | None = None) -> Conversation:
        """In-context examples as earlier turns, then the sample's question with its media."""
        msgs: list[Message] = []
        if self.retriever is not None:
            for ex in self.retriever.retrieve(sample):
                msgs.append(Message("user", self.question_text(ex), _media(ex)))
                msgs.append(Message("assistant", ex.answer or ""))
        text = question if question is not None else self.question_text(sample)
        msgs.append(Message("user", text, _media(sample)))
        return Conversation(msgs, task_type=sample.task_type, system=self.instruction.system, id=sample.id)

    def generate_fitting(self, requests: list[GenerateRequest], progress: ProgressFn | None = None
                         ) -> tuple[list[str | None], dict[int, Refusal]]:
        """:meth:`Engine.generate` of ``requests``, without those whose prompt does not fit the model's
        context (:func:`call_fitting`): a reply per request, ``None`` where refused, and the refusals."""
        return call_fitting(lambda rs: self.engine.generate(rs, progress), requests)

    def two_turns(self, first: list[Conversation], follow_up: str, keep: str,
                  progress: ProgressFn | None = None) -> list[InferenceResult]:
        """Ask each conversation of ``first`` (turn 0); then, with that reply in the history, ask
        ``follow_up`` (turn 1): its reply is the answer, the first one kept in ``extra[keep]`` (``cot``,
        ``multiturn``). A conversation refused in turn 0 is not asked turn 1; one refused in turn 1 (the
        first reply filled the context) keeps its first reply; both say which ``turn`` was refused."""
        replies, refused0 = self.generate_fitting([self.request(c, turn=0) for c in first])
        asked = [i for i, r in enumerate(replies) if r is not None]
        second = [first[i].with_messages([*first[i].messages, Message("assistant", replies[i] or ""),
                                          Message("user", follow_up)]) for i in asked]
        answers, refused1 = self.generate_fitting([self.request(c, turn=1) for c in second], progress)
        out: list[InferenceResult | None] = [None] * len(first)
        for i, refusal in refused0.items():
            out[i] = refusal.result(render_prompt(first[i]), turn=0)
        for k, (i, conv) in enumerate(zip(asked, second)):
            kept = {keep: replies[i]}
            refusal = refused1.get(k)
            out[i] = (refusal.result(render_prompt(conv), turn=1, **kept) if refusal is not None else
                      InferenceResult(answers[k] or "", render_prompt(conv), kept))
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]

    @abc.abstractmethod
    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        """One result per sample, in order; ``progress(n)`` as n samples finish."""

    def answer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        """:meth:`infer`, per sample where the engine refuses the call for the context: when ``infer`` lets a
        :class:`ContextLengthError` through, the samples whose requests it names (by conversation id, the
        sample id) get a :class:`Refusal` result and the rest are asked again. What the runner calls."""
        done: dict[str, InferenceResult] = {}
        rest = list(samples)
        while rest:
            try:
                got = self.infer(rest, progress)
            except ContextLengthError as e:
                by_id = {s.id: s for s in rest}
                named: dict[str, list[Overflow]] = {}
                for o in e.refused:
                    named.setdefault(o.request_id or "", []).append(o)
                # an error that names no sample of this call cannot be attributed: let it stop the run
                if not named or not all(sid in by_id for sid in named):
                    raise
                for sid, overflows in named.items():
                    done[sid] = Refusal.of(overflows, e).result(render_prompt(self.conversation(by_id[sid])))
                rest = [s for s in rest if s.id not in named]
                continue
            if len(got) != len(rest):
                raise RuntimeError(f"inferencer {self.name!r} returned {len(got)} results for "
                                   f"{len(rest)} samples")
            done.update({s.id: r for s, r in zip(rest, got)})
            break
        return [done[s.id] for s in samples]


INFERENCERS: Registry[type[Inferencer]] = Registry("inferencer")


def make_inferencer(kind: str, engine: Engine, instruction: ResolvedInstruction, **kwargs: Any) -> Inferencer:
    """An inferencer by name (``direct``, ``ppl``, ``cot``, ``multiturn``)."""
    from lamm.bench.inferencers import cot, direct, multiturn, ppl  # noqa: F401  (they register themselves)

    return INFERENCERS.get(kind)(engine, instruction, **kwargs)


__all__ = ["CONTEXT_LENGTH_EXCEEDED", "INFERENCERS", "InferenceResult", "Inferencer", "Refusal",
           "call_fitting", "is_refused", "make_inferencer", "render_prompt"]
