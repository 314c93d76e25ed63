"""``cot``: chain of thought in two turns (ChEF's CoT inferencer).

Turn 1 asks the question followed by "Let's think step by step." and lets the model reason; turn 2,
with that reasoning in the history, asks for the final answer, which is what gets parsed. The reasoning
is kept in ``extra["rationale"]``. (ChEF prefilled the trigger into the assistant turn; an engine request
ends with a user turn, so the trigger goes at the end of the question instead.)
"""

from __future__ import annotations

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult, render_prompt
from lamm.bench.scenarios.base import Sample
from lamm.conversation import Message
from lamm.infer.engine import ProgressFn


@INFERENCERS.register("cot")
class CoTInferencer(Inferencer):
    """Reason, then answer (two generations per sample)."""

    name = "cot"

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        ins = self.instruction
        first = [self.conversation(s, f"{self.question_text(s)}\n{ins.cot_trigger}") for s in samples]
        rationales = self.engine.generate([self.request(c, turn=0) for c in first])
        second = [c.with_messages([*c.messages, Message("assistant", r), Message("user", ins.cot_answer)])
                  for c, r in zip(first, rationales)]
        answers = self.engine.generate([self.request(c, turn=1) for c in second], progress)
        return [InferenceResult(a, render_prompt(c), {"rationale": r})
                for a, c, r in zip(answers, second, rationales)]
