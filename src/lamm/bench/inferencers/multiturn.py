"""``multiturn``: detection in two turns (ChEF's multi-turn inferencer).

Turn 1 asks which categories are present; turn 2, with that answer in the history, asks for the box of
every object of those categories. The second answer is scored (each box with its own label); the first
is kept in ``extra["classes"]``. Only families with multi-turn texts (``lamm.bench.instructions.MULTITURN``:
detection, detection3d) accept it.
"""

from __future__ import annotations

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult, render_prompt
from lamm.bench.scenarios.base import Sample
from lamm.conversation import Message
from lamm.infer.engine import ProgressFn


@INFERENCERS.register("multiturn")
class MultiTurnInferencer(Inferencer):
    """Classes first, then boxes (two generations per sample)."""

    name = "multiturn"

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        turns = self.instruction.multiturn
        if turns is None:
            raise ValueError(f"the multiturn inferencer has no turns for task {self.instruction.family!r}; "
                             "it supports detection and detection3d")
        ask_classes, ask_boxes = turns
        first = [self.conversation(s, ask_classes) for s in samples]
        classes = self.engine.generate([self.request(c, turn=0) for c in first])
        second = [c.with_messages([*c.messages, Message("assistant", k), Message("user", ask_boxes)])
                  for c, k in zip(first, classes)]
        answers = self.engine.generate([self.request(c, turn=1) for c in second], progress)
        return [InferenceResult(a, render_prompt(c), {"classes": k})
                for a, c, k in zip(answers, second, classes)]
