"""Inferencers: direct, ppl (argmax + probabilities), cot (two turns), multiturn (classes then boxes)."""

from __future__ import annotations

import math

import pytest

from lamm.bench.inferencers import make_inferencer
from lamm.bench.inferencers.ppl import softmax
from lamm.bench.instructions import COT_TRIGGER, resolve_instruction
from lamm.bench.scenarios import Sample
from lamm.conversation import MediaRef
from lamm.infer.engine import Engine, LoglikelihoodResult, load_engine


class ScriptedEngine(Engine):
    """Records every request; answers generation with "turn N"; scores options by a table."""

    def __init__(self, scores: dict[str, float] | None = None, loglik: bool = True) -> None:
        super().__init__()
        self.scores = scores or {}
        self.generated: list = []
        self.scored: list = []
        if not loglik:
            self.loglikelihood = None  # type: ignore[assignment]

    def fingerprint(self) -> str:
        return "scripted"

    def generate(self, requests, progress=None):
        self.generated.extend(requests)
        if progress:
            progress(len(requests))
        return [f"turn {len(r.conversation.messages) // 2 + 1}" for r in requests]

    def loglikelihood(self, requests, progress=None):
        self.scored.extend(requests)
        out = []
        for r in requests:  # the table is keyed by the whole reply; m is the mean of the scored tokens
            n = len(r.continuation.split())
            m = self.scores.get(r.context + r.continuation, -5.0)
            out.append(LoglikelihoodResult(m * n, m, n))
        return out


class WordEngine(Engine):
    """Log-probability per word of the scored part (``continuation``) from a table (default 0), as a
    backend scores tokens after the request's context."""

    def __init__(self, table: dict[str, float]) -> None:
        super().__init__()
        self.table = table

    def fingerprint(self) -> str:
        return "words"

    def generate(self, requests, progress=None):
        return ["" for _ in requests]

    def loglikelihood(self, requests, progress=None):
        out = []
        for r in requests:
            lp = [self.table.get(w, 0.0) for w in r.continuation.split()]
            out.append(LoglikelihoodResult(sum(lp), sum(lp) / len(lp), len(lp)))
        return out


class NoLoglik(Engine):
    def fingerprint(self) -> str:
        return "x"

    def generate(self, requests, progress=None):
        return ["" for _ in requests]


def _sample(options=None, family_task="VQA") -> Sample:
    return Sample(id="s1", media=[MediaRef("image", path="/x.png")], question="Which colour?",
                  references={}, options=options, task_type=family_task)


def test_direct_builds_one_request_per_sample():
    eng = ScriptedEngine()
    ins = resolve_instruction("counting", "number")
    inf = make_inferencer("direct", eng, ins, max_new_tokens=77)
    res = inf.infer([_sample(), _sample()])
    assert [r.answer for r in res] == ["turn 1", "turn 1"]
    req = eng.generated[0]
    assert req.settings.max_new_tokens == 77 and req.settings.greedy
    msg = req.conversation.messages[-1]
    assert msg.content == "Which colour? Answer with a number." and msg.media[0].path == "/x.png"
    assert "### Human: <Img><image></Img> Which colour? Answer with a number." in res[0].prompt
    assert "Answer the question about the image" in res[0].prompt  # the task's system message


def test_sampling_seeds_come_from_the_recipe_seed_the_sample_and_the_turn():
    """temperature > 0: each request carries a seed from (inferencer.seed, sample id, turn), so a run
    repeats itself whatever the batching; greedy requests carry none."""
    from dataclasses import replace

    ins = resolve_instruction("counting", "number")
    a, b = _sample(), replace(_sample(), id="s2")
    eng = ScriptedEngine()
    make_inferencer("cot", eng, ins, temperature=0.7, seed=5).infer([a, b])
    seeds = [r.settings.seed for r in eng.generated]  # turn 0 of s1, s2, then turn 1 of s1, s2
    assert None not in seeds and len(set(seeds)) == 4
    again = ScriptedEngine()
    make_inferencer("cot", again, ins, temperature=0.7, seed=5).infer([b])  # alone, another batch
    assert [r.settings.seed for r in again.generated] == [seeds[1], seeds[3]]
    other = ScriptedEngine()
    make_inferencer("cot", other, ins, temperature=0.7, seed=6).infer([a])
    assert other.generated[0].settings.seed != seeds[0]
    greedy = ScriptedEngine()
    make_inferencer("direct", greedy, ins).infer([a])
    assert greedy.generated[0].settings.seed is None


def test_ppl_picks_argmax_and_keeps_probabilities():
    ins = resolve_instruction("multiple_choice", answer_template="letter_option")
    table = {"The answer is (A) red": -2.0, "The answer is (B) blue": -0.5, "The answer is (C) green": -1.0}
    eng = ScriptedEngine(table)
    res = make_inferencer("ppl", eng, ins).infer([_sample(["red", "blue", "green"])])[0]
    assert res.answer == "The answer is (B) blue" and res.extra["choice"] == 1
    assert [r.context + r.continuation for r in eng.scored] == list(table)
    # the template's constant head is context (read, not scored): the option's own tokens are scored
    assert [(r.context, r.continuation) for r in eng.scored][0] == ("The answer is (", "A) red")
    assert all(r.conversation is eng.scored[0].conversation for r in eng.scored)  # one shared prompt
    probs = res.extra["option_probs"]
    assert math.isclose(sum(probs), 1.0) and probs == softmax([-2.0, -0.5, -1.0])
    assert probs[1] == max(probs)
    # sum of log-probs favours short options: (A) has 5 tokens, (B)/(C) 5 too; make B long
    eng = ScriptedEngine({"The answer is (A) red": -1.0, "The answer is (B) dark navy blue": -0.9})
    s = _sample(["red", "dark navy blue"])
    assert make_inferencer("ppl", eng, ins, ppl_score="mean").infer([s])[0].extra["choice"] == 1
    assert make_inferencer("ppl", eng, ins, ppl_score="sum").infer([s])[0].extra["choice"] == 0


def test_ppl_errors():
    ins = resolve_instruction("multiple_choice")
    with pytest.raises(ValueError, match="needs answer options"):
        make_inferencer("ppl", ScriptedEngine(), ins).infer([_sample(None)])
    with pytest.raises(ValueError, match="cannot give; use 'direct'"):
        make_inferencer("ppl", NoLoglik(), ins)


def test_ppl_exact_ties_go_to_the_lowest_index_and_are_recorded():
    ins = resolve_instruction("multiple_choice", answer_template="letter_option")
    eng = ScriptedEngine({"The answer is (A) red": -2.0, "The answer is (B) blue": -0.5,
                          "The answer is (C) green": -0.5})
    res = make_inferencer("ppl", eng, ins).infer([_sample(["red", "blue", "green"])])[0]
    assert res.extra["choice"] == 1 and res.extra["tied"] == [1, 2] and res.answer == "The answer is (B) blue"
    eng = ScriptedEngine({"The answer is (A) red": -2.0, "The answer is (B) blue": -0.5})
    res = make_inferencer("ppl", eng, ins).infer([_sample(["red", "blue", "green"])])[0]
    assert res.extra["choice"] == 1 and "tied" not in res.extra  # no tie: nothing recorded


def test_ppl_refuses_a_sample_with_fewer_than_two_options():
    ins = resolve_instruction("classification", answer_template="answer_is")
    eng = ScriptedEngine()
    with pytest.raises(ValueError, match=r"sample 's1' offers 1 answer option \(\['cat'\]\).*at least 2"):
        make_inferencer("ppl", eng, ins).infer([_sample(["cat"], "classification")])
    assert not eng.scored  # refused before anything was scored


def test_ppl_with_the_dummy_engine_is_deterministic():
    ins = resolve_instruction("classification", answer_template="answer_is")
    s = _sample(["cat", "dog", "ship"], "classification")
    a = make_inferencer("ppl", load_engine("dummy"), ins).infer([s])[0]
    b = make_inferencer("ppl", load_engine("dummy"), ins).infer([s])[0]
    assert a.extra == b.extra and a.answer == f"The answer is {['cat', 'dog', 'ship'][a.extra['choice']]}"


def test_cot_two_turns():
    eng = ScriptedEngine()
    res = make_inferencer("cot", eng, resolve_instruction("multiple_choice")).infer([_sample(["a", "b"])])[0]
    first, second = eng.generated
    assert first.conversation.messages[-1].content.endswith(COT_TRIGGER)
    assert [m.role for m in second.conversation.messages] == ["user", "assistant", "user"]
    assert second.conversation.messages[1].content == "turn 1"
    assert res.answer == "turn 2" and res.extra["rationale"] == "turn 1"
    assert len(second.conversation.media) == 1  # the image only once


def test_multiturn_classes_then_boxes():
    eng = ScriptedEngine()
    ins = resolve_instruction("detection")
    res = make_inferencer("multiturn", eng, ins).infer([_sample(None, "detection")])[0]
    first, second = eng.generated
    assert first.conversation.messages[-1].content == ins.multiturn[0]
    assert second.conversation.messages[-1].content == ins.multiturn[1]
    assert res.extra["classes"] == "turn 1" and res.answer == "turn 2"
    with pytest.raises(ValueError, match="supports detection"):
        make_inferencer("multiturn", eng, resolve_instruction("counting")).infer([_sample()])
    with pytest.raises(KeyError, match="did you mean 'direct'"):
        make_inferencer("dirct", eng, ins)


def test_ppl_mean_scores_the_option_tokens_not_the_template_head():
    """LAMM.md: PPL ranks options by the mean log-probability of *their* tokens. Averaging over the whole
    filled template (``mean_reply``) lets the head's confident tokens dilute a long option's mean less
    than a short one's, and can flip the choice."""
    ins = resolve_instruction("multiple_choice", answer_template="letter_option")
    eng = WordEngine({"red": -1.0, "dark": -0.5, "navy": -0.5, "blue": -0.5})
    s = _sample(["red", "dark navy blue"])
    # option tokens: A) red → (0 - 1) / 2 = -0.5; B) dark navy blue → -1.5 / 4 = -0.375: B
    res = make_inferencer("ppl", eng, ins).infer([s])[0]
    assert res.extra["choice"] == 1 and res.extra["option_scores"] == [-0.5, -0.375]
    # whole template: "The answer is (A) red" → -1 / 5 = -0.2; "... (B) dark navy blue" → -1.5 / 7: A
    res = make_inferencer("ppl", eng, ins, ppl_score="mean_reply").infer([s])[0]
    assert res.extra["choice"] == 0 and res.extra["option_scores"] == pytest.approx([-0.2, -1.5 / 7])
    with pytest.raises(ValueError, match="ppl_score 'median'"):
        make_inferencer("ppl", eng, ins, ppl_score="median").infer([s])
