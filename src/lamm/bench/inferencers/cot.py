"""``cot``: chain of thought in two turns (ChEF's CoT inferencer).

Turn 1 asks the question followed by "Let's think step by step." and lets the model reason; turn 2,
with that reasoning in the history, asks for the final answer, which is what gets parsed. The reasoning
is kept in ``extra["rationale"]``. (ChEF prefilled the trigger into the assistant turn; an engine request
ends with a user turn, so the trigger goes at the end of the question instead.) A sample whose first or
second request does not fit the model's context is recorded as refused (``Inferencer.two_turns``).
"""

from __future__ import annotations

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult
from lamm.bench.scenarios.base import Sample
from lamm.infer.engine import ProgressFn


@INFERENCERS.register("cot")
class CoTInferencer(Inferencer):
    """Reason, then answer (two generations per sample)."""

    name = "cot"

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        ins = self.instruction
        first = [self.conversation(s, f"{self.question_text(s)}\n{ins.cot_trigger}") for s in samples]
        return self.two_turns(first, ins.cot_answer, "rationale", progress)
