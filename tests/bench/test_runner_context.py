"""Prompts that do not fit the model's context: the engine refuses them, the bench records each refused
sample (empty answer, ``extra.error``), scores it as wrong, counts it and goes on with the rest — for the
direct, CoT, multi-turn and ppl inferencers, end to end through ``run_recipe`` with the dummy backend's
``context_length`` (words)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_lamm_benchmark

from lamm.bench.inferencers import CONTEXT_LENGTH_EXCEEDED, Refusal, call_fitting, is_refused
from lamm.bench.recipe import load_recipe
from lamm.bench.runner import run_recipe
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.engine import ContextLengthError, Overflow, check_loglikelihood_context

LONG = "word " * 200  # makes one question's prompt ~246 words, the others' ~46


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """ScienceQA (4 records; mc_1's question is 200 words longer) and VOC2012 (3 records)."""
    r = make_lamm_benchmark(tmp_path_factory.mktemp("ctx"), n=4, scenarios=["ScienceQA", "VOC2012"])
    f = r / "VQA_ScienceQA.json"
    recs = json.loads(f.read_text())
    recs[1]["query"] = LONG + recs[1]["query"]
    f.write_text(json.dumps(recs))
    return r


class RecordingEngine(DummyEngine):
    """The dummy, remembering each request it answered: (conversation id, messages in the request)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.answered: list[tuple[str, int]] = []

    def generate(self, requests, progress=None):
        out = super().generate(requests, progress)  # refuses the whole call before answering anything
        self.answered += [(r.conversation.id, len(r.conversation.messages)) for r in requests]
        return out


class LLEngine(DummyEngine):
    """The dummy with its context kept for log-likelihoods too (prompt + continuation words)."""

    def loglikelihood(self, requests, progress=None):
        lengths = [(self.prompt_tokens(r), len((r.context + r.continuation).split())) for r in requests]
        check_loglikelihood_context(requests, lengths, self.context_length)
        return super().loglikelihood(requests, progress)


def test_direct_refusal_is_recorded_scored_wrong_counted_and_cached(root, tmp_path):
    plain = run_recipe("scienceqa", "dummy", out_dir=tmp_path / "plain", root=root, show_progress=False)
    out = tmp_path / "run"
    res = run_recipe("scienceqa", DummyEngine("echo", context_length=100), out_dir=out, root=root,
                     show_progress=False)
    r = res.results
    assert r["context_refused"] == 1 and r["context_length"] == 100 and r["n"] == 4
    assert plain.results["context_refused"] == 0 and "context_length" not in plain.results
    rows, plain_rows = _rows(out / "answers.jsonl"), _rows(tmp_path / "plain" / "answers.jsonl")
    refused = rows[1]
    assert refused["id"] == "mc_1" and refused["answer"] == ""
    assert set(refused["extra"]) == {"error", "prompt_tokens", "context_length"}
    assert refused["extra"]["error"] == CONTEXT_LENGTH_EXCEEDED and refused["extra"]["context_length"] == 100
    assert refused["extra"]["prompt_tokens"] > 100 and "word word" in refused["prompt"]
    # scored as wrong and counted as unparsed; the others answered exactly as without a context limit
    assert refused["unparsed"] is True and refused["scores"]["accuracy"] == 0
    assert r["unparsed"] == plain.results["unparsed"] - plain_rows[1]["unparsed"] + 1
    others = [i for i in range(4) if i != 1]
    assert [rows[i]["answer"] for i in others] == [plain_rows[i]["answer"] for i in others]
    report = (out / "report.md").read_text()
    assert "context: 1 of 4 questions did not fit the model's context** (100 tokens" in report
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e for e in events if e["event"] == "context_refused"] == [
        {"event": "context_refused", "rank": 0, "n": 1, "ids": ["mc_1"], "context_length": 100}]
    # the refusal is cached like an answer: the same model and context refuse it again without asking
    again = run_recipe("scienceqa", DummyEngine("echo", context_length=100), out_dir=out, root=root,
                       show_progress=False)
    assert again.n_generated == 0 and again.results == r
    # a longer context (a backend option the dummy's fingerprint does not cover): only the refused one is
    # asked again, and now answered as the unlimited model answers it
    longer = run_recipe("scienceqa", DummyEngine("echo", context_length=1000), out_dir=out, root=root,
                        show_progress=False)
    assert (longer.n_generated, longer.n_cached) == (1, 3) and longer.results["context_refused"] == 0
    assert _rows(out / "answers.jsonl")[1]["answer"] == plain_rows[1]["answer"]
    assert "did not fit" not in (out / "report.md").read_text()


def test_cot_refusal_in_either_turn_keeps_the_first_turn_and_asks_nothing_twice(root, tmp_path):
    engine = RecordingEngine("echo", context_length=60)  # turn 0 fits (except mc_1), turn 1 does not
    res = run_recipe(load_recipe("scienceqa", ["inferencer.type=cot"]), engine, out_dir=tmp_path / "cot",
                     root=root, show_progress=False)
    rows = _rows(tmp_path / "cot" / "answers.jsonl")
    assert res.results["context_refused"] == 4 and res.results["unparsed"] == 4
    assert rows[1]["extra"]["turn"] == 0 and "rationale" not in rows[1]["extra"]
    for row in (rows[0], rows[2], rows[3]):
        assert row["answer"] == "" and row["extra"]["turn"] == 1
        assert row["extra"]["error"] == CONTEXT_LENGTH_EXCEEDED
        assert row["extra"]["rationale"] and row["extra"]["prompt_tokens"] > 60
        assert row["extra"]["rationale"] in row["prompt"]  # the prompt shown is the refused second request
    # the first turn of mc_0, mc_2, mc_3 was generated once: a turn-1 refusal did not repeat turn 0
    assert sorted(engine.answered) == [("mc_0", 1), ("mc_2", 1), ("mc_3", 1)]


def test_multiturn_refusal_in_the_second_turn_keeps_the_classes(root, tmp_path):
    engine = RecordingEngine("echo", context_length=95)  # classes asked (86 words), boxes not (126)
    res = run_recipe(load_recipe("voc2012", ["inferencer.type=multiturn"]), engine, out_dir=tmp_path / "mt",
                     root=root, show_progress=False)
    rows = _rows(tmp_path / "mt" / "answers.jsonl")
    assert res.results["context_refused"] == 4 == len(rows)
    assert all(r["extra"]["turn"] == 1 and r["extra"]["classes"] and r["answer"] == "" for r in rows)
    assert sorted(engine.answered) == [(f"det_{i}", 1) for i in range(4)]
    fit = run_recipe(load_recipe("voc2012", ["inferencer.type=multiturn"]),
                     DummyEngine("echo", context_length=200), out_dir=tmp_path / "fit", root=root,
                     show_progress=False)
    assert fit.results["context_refused"] == 0


def test_ppl_refuses_the_whole_sample_and_calibration_says_what_it_left_out(root, tmp_path):
    res = run_recipe(load_recipe("scienceqa", ["inferencer.type=ppl"]), LLEngine("echo", context_length=100),
                     out_dir=tmp_path / "ppl", root=root, show_progress=False)
    r = res.results
    rows = _rows(tmp_path / "ppl" / "answers.jsonl")
    assert r["context_refused"] == 1 and rows[1]["answer"] == "" and rows[1]["unparsed"]
    assert rows[1]["extra"]["continuation_tokens"] > 0 and rows[1]["extra"]["prompt_tokens"] > 100
    assert all("option_probs" in row["extra"] for i, row in enumerate(rows) if i != 1)
    assert r["calibration"]["n"] == 3 and r["calibration"]["context_refused_excluded"] == 1
    assert "1 question(s) refused for the context left out" in (tmp_path / "ppl" / "report.md").read_text()
    # the answered samples score as in an unlimited run (the refused call generated nothing)
    plain = _rows(Path(run_recipe(load_recipe("scienceqa", ["inferencer.type=ppl"]), LLEngine("echo"),
                                  out_dir=tmp_path / "plain", root=root, show_progress=False).out_dir)
                  / "answers.jsonl")
    assert [x["extra"]["option_scores"] for i, x in enumerate(rows) if i != 1] == [
        x["extra"]["option_scores"] for i, x in enumerate(plain) if i != 1]


class StrayEngine(DummyEngine):
    """Refuses every log-likelihood call naming a request id that is no sample of the call."""

    def loglikelihood(self, requests, progress=None):
        raise ContextLengthError(10, [Overflow(0, "no-such-sample", 20, 1)], len(requests), "loglikelihood")


def test_a_refusal_that_names_no_sample_stops_the_run(root, tmp_path):
    with pytest.raises(ContextLengthError, match="no-such-sample"):
        run_recipe(load_recipe("scienceqa", ["inferencer.type=ppl"]), StrayEngine("echo"),
                   out_dir=tmp_path / "x", root=root, show_progress=False)


def test_call_fitting_drops_refused_requests_until_the_call_answers():
    calls = []

    def call(xs: list[int]) -> list[int]:
        calls.append(list(xs))
        big = [Overflow(i, None, x) for i, x in enumerate(xs) if x >= 10]
        if big:
            raise ContextLengthError(10, big[:1], len(xs))  # one at a time: the loop must go on
        return [x * 2 for x in xs]

    replies, refused = call_fitting(call, [1, 12, 3, 15])
    assert replies == [2, None, 6, None] and sorted(refused) == [1, 3]
    assert refused[1].extra() == {"error": CONTEXT_LENGTH_EXCEEDED, "prompt_tokens": 12, "context_length": 10}
    assert calls == [[1, 12, 3, 15], [1, 3, 15], [1, 3]]
    assert call_fitting(call, [11]) == ([None], {0: Refusal(11, 10)})
    assert is_refused(refused[3].extra(turn=1))
    assert not is_refused({"rationale": "x"}) and not is_refused(None)


def test_cli_summary_line_shows_the_refused_count(root, tmp_path, monkeypatch):
    from lamm.bench import runner
    from lamm.cli import common
    from lamm.cli.bench_runs import register

    monkeypatch.setattr(common.console, "width", 250)
    monkeypatch.setattr(runner, "load_engine", lambda spec, **kw: DummyEngine("echo", context_length=100))
    app = typer.Typer()

    @app.callback()
    def _group() -> None:
        """bench"""

    register(app)
    res = CliRunner().invoke(app, ["run", "--model", "dummy", "--recipe", "scienceqa", "--root", str(root),
                                   "--out", str(tmp_path / "cli"), "--no-progress"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "context_refused=1," in text
    assert "1 of 4 question(s) did not fit the model's context (100 tokens)" in text
