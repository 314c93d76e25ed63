"""``ppl``: likelihood scoring of every option (ChEF's PPL inferencer).

Each option is filled into the answer template (``"The answer is ({letter}) {option}"`` ...) and scored
as the assistant's reply by :meth:`Engine.loglikelihood`; the option with the highest mean (default, as
ChEF) or summed token log-probability wins. ``extra`` keeps every option's score and its probability —
the softmax over the option scores — which the calibration desideratum needs. The answer text is the
winning option's filled template, so the ordinary parsers read it. A verbalised sample (``Sample.labels``,
instruction following) fills ``{letter}`` with its own labels ("The answer is (2) repel").

All options of all samples of a batch go to the engine in one call: a backend that shares the prompt
across requests with the same conversation computes it once per sample (``benchmarks/ppl_shared_prompt.py``).
"""

from __future__ import annotations

import math

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult, render_prompt
from lamm.bench.scenarios.base import Sample
from lamm.infer.engine import LoglikelihoodRequest, ProgressFn


def softmax(scores: list[float]) -> list[float]:
    """Probabilities from log-scores, computed stably.

    >>> [round(p, 3) for p in softmax([0.0, math.log(3.0)])]
    [0.25, 0.75]
    """
    m = max(scores)
    exps = [math.exp(s - m) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@INFERENCERS.register("ppl")
class PPLInferencer(Inferencer):
    """Argmax of option log-likelihoods; ``ppl_score`` (option) is ``"mean"`` or ``"sum"``."""

    name = "ppl"
    needs_loglikelihood = True

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        score_kind = self.options.get("ppl_score", "mean")
        requests, convs = [], []
        for s in samples:
            if not s.options:
                raise ValueError(f"sample {s.id!r}: the ppl inferencer needs answer options, and this scenario's "
                                 "samples have none; use the direct inferencer")
            if s.labels is not None and "{letter}" not in self.instruction.answer_template:
                # scoring option texts alone would never show the model the labels it is asked to use
                raise ValueError(f"sample {s.id!r} has relabelled options (scenario.verbalizer) but the answer "
                                 f"template {self.instruction.answer_template!r} has no {{letter}}; use "
                                 "instruction.answer_template: letter_option or answer_is_letter")
            conv = self.conversation(s)
            convs.append(conv)
            requests.extend(LoglikelihoodRequest(conv, self.instruction.format_answer(o, j, s.labels))
                            for j, o in enumerate(s.options))
        results = self.engine.loglikelihood(requests)
        out, pos = [], 0
        for s, conv in zip(samples, convs):
            assert s.options is not None
            res = results[pos:pos + len(s.options)]
            pos += len(s.options)
            scores = [r.mean_logprob if score_kind == "mean" else r.sum_logprob for r in res]
            best = max(range(len(scores)), key=lambda j: (scores[j], -j))
            out.append(InferenceResult(
                self.instruction.format_answer(s.options[best], best, s.labels), render_prompt(conv),
                {"choice": best, "option_scores": scores, "option_probs": softmax(scores),
                 "score": score_kind, "options": list(s.options)},
            ))
            if progress:
                progress(1)
        return out
