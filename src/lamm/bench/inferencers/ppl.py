"""``ppl``: likelihood scoring of every option (ChEF's PPL inferencer).

Each option is filled into the answer template (``"The answer is ({letter}) {option}"`` ...) and scored
as the assistant's reply by :meth:`Engine.loglikelihood`. The template's constant head (``"The answer is
("``, :meth:`ResolvedInstruction.answer_head`) is the request's ``context``: the model reads it, but only
the option's own tokens (``"A) cat"``) are scored, as LAMM.md defines PPL ("the mean log-probability of
its tokens given the prompt"). The option with the highest mean (default) or summed log-probability of
those tokens wins; ``ppl_score: mean_reply`` averages over the whole filled template instead (the head's
tokens dilute the mean differently for options of different lengths; this project's rule before
2026-11-26, kept to compare with older runs). ``extra`` keeps every option's score and its probability —
the softmax over the option scores — which the calibration desideratum needs. The answer text is the
winning option's filled template, so the ordinary parsers read it. A verbalised sample (``Sample.labels``,
instruction following) fills ``{letter}`` with its own labels ("The answer is (2) repel").

Ties: when several options share the best score exactly, the one with the lowest index (the first
offered) wins, and ``extra["tied"]`` lists the indices of all of them, so a run can count how often the
choice was decided by order rather than by the model (``ppl_ties`` in ``results.json``). A sample with
fewer than two options is an error: there is nothing to choose between, and its accuracy and
calibration would be 100% and 0 by construction.

All options of all samples of a batch go to the engine in one call: a backend that shares the prompt
across requests with the same conversation computes it once per sample (``benchmarks/ppl_shared_prompt.py``).
"""

from __future__ import annotations

import math

from lamm.bench.inferencers import INFERENCERS, Inferencer, InferenceResult, render_prompt
from lamm.bench.instructions import template_fields
from lamm.bench.scenarios.base import Sample
from lamm.infer.engine import LoglikelihoodRequest, ProgressFn


def tied_options(scores: list[float]) -> list[int]:
    """Indices of the options sharing the best score, when there are several (else ``[]``).

    >>> tied_options([-1.0, -0.5, -0.5]), tied_options([-1.0, -0.5])
    ([1, 2], [])
    """
    best = max(scores)
    tied = [j for j, v in enumerate(scores) if v == best]
    return tied if len(tied) > 1 else []


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
    """Argmax of option log-likelihoods; ``ppl_score`` (option) is ``"mean"``, ``"sum"`` (over the
    option's tokens, after the template's head) or ``"mean_reply"`` (over the whole filled template).

    Exact ties go to the lowest option index and are recorded in ``extra["tied"]`` (module docstring)."""

    name = "ppl"
    needs_loglikelihood = True

    def infer(self, samples: list[Sample], progress: ProgressFn | None = None) -> list[InferenceResult]:
        score_kind = self.options.get("ppl_score", "mean")
        if score_kind not in ("mean", "sum", "mean_reply"):
            raise ValueError(f"inferencer.ppl_score {score_kind!r}: expected mean, sum or mean_reply")
        head = "" if score_kind == "mean_reply" else self.instruction.answer_head()
        requests, convs = [], []
        for s in samples:
            if not s.options:
                raise ValueError(f"sample {s.id!r}: the ppl inferencer needs answer options, and this scenario's "
                                 "samples have none; use the direct inferencer")
            if len(s.options) < 2:
                raise ValueError(f"sample {s.id!r} offers {len(s.options)} answer option ({s.options!r}); "
                                 "the ppl inferencer needs at least 2 to choose between (a closed vocabulary "
                                 "taken from a file with one distinct label has one). Use the direct "
                                 "inferencer, or a file whose labels cover at least two classes")
            if s.labels is not None and "letter" not in template_fields(self.instruction.answer_template):
                # scoring option texts alone would never show the model the labels it is asked to use
                raise ValueError(f"sample {s.id!r} has relabelled options (scenario.verbalizer) but the answer "
                                 f"template {self.instruction.answer_template!r} has no {{letter}}; use "
                                 "instruction.answer_template: letter_option or answer_is_letter")
            conv = self.conversation(s)
            convs.append(conv)
            for j, o in enumerate(s.options):
                reply = self.instruction.format_answer(o, j, s.labels)
                # the head is a literal prefix of every filled template (its fields come after it)
                requests.append(LoglikelihoodRequest(conv, reply[len(head):], context=head))
        results = self.engine.loglikelihood(requests)
        out, pos = [], 0
        for s, conv in zip(samples, convs):
            assert s.options is not None
            res = results[pos:pos + len(s.options)]
            pos += len(s.options)
            scores = [r.sum_logprob if score_kind == "sum" else r.mean_logprob for r in res]
            best = max(range(len(scores)), key=lambda j: (scores[j], -j))  # ties: the lowest index
            extra = {"choice": best, "option_scores": scores, "option_probs": softmax(scores),
                     "score": score_kind, "options": list(s.options)}
            tied = tied_options(scores)
            if tied:
                extra["tied"] = tied
            out.append(InferenceResult(
                self.instruction.format_answer(s.options[best], best, s.labels), render_prompt(conv), extra))
            if progress:
                progress(1)
        return out
