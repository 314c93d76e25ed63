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
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from typing import Any

from lamm.bench.icl import Retriever
from lamm.bench.instructions import ResolvedInstruction
from lamm.bench.scenarios.base import Sample
from lamm.conversation import Conversation, MediaRef, Message, render_text
from lamm.infer.engine import Engine, GenerateRequest, GenerationSettings, ProgressFn
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

    @abc.abstractmethod
    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        """One result per sample, in order; ``progress(n)`` as n samples finish."""


INFERENCERS: Registry[type[Inferencer]] = Registry("inferencer")


def make_inferencer(kind: str, engine: Engine, instruction: ResolvedInstruction, **kwargs: Any) -> Inferencer:
    """An inferencer by name (``direct``, ``ppl``, ``cot``, ``multiturn``)."""
    from lamm.bench.inferencers import cot, direct, multiturn, ppl  # noqa: F401  (they register themselves)

    return INFERENCERS.get(kind)(engine, instruction, **kwargs)


__all__ = ["INFERENCERS", "InferenceResult", "Inferencer", "make_inferencer", "render_prompt"]
