"""``direct``: generate one answer per sample (ChEF's Direct inferencer); parsing happens at scoring.

A sample whose prompt does not fit the model's context gets an empty answer and the refusal in ``extra``
(``lamm.bench.inferencers``, "Prompts that do not fit"); the others are answered as usual."""

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
        texts, refused = self.generate_fitting([self.request(c) for c in convs], progress)
        # a prompt that does not fit the context: an empty answer that says why (inferencers.Refusal)
        return [InferenceResult(t, render_prompt(c)) if t is not None else refused[i].result(render_prompt(c))
                for i, (t, c) in enumerate(zip(texts, convs))]
