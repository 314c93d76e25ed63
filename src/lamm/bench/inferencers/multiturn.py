"""``multiturn``: detection in two turns (ChEF's multi-turn inferencer).

Turn 1 asks which categories are present; turn 2, with that answer in the history, asks for the box of
every object of those categories. The second answer is scored (each box with its own label); the first
is kept in ``extra["classes"]``. Only families with multi-turn texts (``lamm.bench.instructions.MULTITURN``:
detection, detection3d) accept it. A sample whose first or second request does not fit the model's context
is recorded as refused (``Inferencer.two_turns``).
"""

from __future__ import annotations

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult
from lamm.bench.scenarios.base import Sample
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
        return self.two_turns(first, ask_boxes, "classes", progress)
