"""``direct``: generate one answer per sample (ChEF's Direct inferencer); parsing happens at scoring."""

from __future__ import annotations

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult, render_prompt
from lamm.bench.scenarios.base import Sample
from lamm.infer.engine import ProgressFn


@INFERENCERS.register("direct")
class DirectInferencer(Inferencer):
    """Generate, in one engine call for the whole batch (the backend batches it further)."""

    name = "direct"

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        convs = [self.conversation(s) for s in samples]
        texts = self.engine.generate([self.request(c) for c in convs], progress)
        return [InferenceResult(t, render_prompt(c)) for t, c in zip(texts, convs)]
