"""The LLM judge: reply parsers (tables + seeded fuzz), both-order logic, statistics by hand, the cache, a
real OpenAI-compatible HTTP server with scripted replies and failures, and ``lamm bench judge|compare``."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import re
import string
import sys
import threading
from pathlib import Path

import pytest
from fastapi import Request  # module level: FastAPI resolves the handler's annotations in these globals
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_synth_layout

from lamm.bench.cache import ResponseCache
from lamm.bench.judge import (
    Judge,
    JudgeUnavailableError,
    OrderVerdict,
    PairItem,
    PairJudgement,
    SingleItem,
    SingleJudgement,
    combine_orders,
    compare_answers,
    grade_answers,
    summarize_pairs,
    summarize_scores,
)
from lamm.bench.judge_prompts import (
    JUDGE_PROMPTS,
    JudgeError,
    get_prompt,
    parse_pair_scores,
    parse_rating,
    reference_text,
)
from lamm.bench.judge_runs import compare_runs, judge_run, select_ids
from lamm.bench.runner import run_recipe
from lamm.infer.backends.dummy import DummyEngine
from lamm.infer.backends.openai import OpenAIError
from lamm.infer.engine import load_engine

HERE = Path(__file__).parent


def _infer_helpers():
    """``run_uvicorn`` from tests/infer/conftest.py (test folders are not packages: load it by path)."""
    spec = importlib.util.spec_from_file_location("_infer_conftest_for_judge", HERE.parent / "infer" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------- parsers

@pytest.mark.parametrize("text,score", [
    ("The answer is right and detailed.\nRating: [[8]]", 8.0),
    ("Rating: [[ 7.5 ]]", 7.5), ("Rating: [[7/10]]", 7.0), ("[[0]]", 0.0), ("[[10]]", 10.0),
    ("Rating: 7", 7.0), ("rating: 7/10", 7.0), ("Score: 7.5", 7.5), ("Overall score is **9**.", 9.0),
    ("Rating: [6]", 6.0), ("grade = 4", 4.0), ("7/10", 7.0), ("I'd give it 6 out of 10.", 6.0),
    ("7", 7.0), ("**7**.", 7.0), ("Rating: [[5]] ... so Rating: [[5]]", 5.0),
    ("Rating: [[6]]; a perfect score of 10 needs more detail", 6.0),  # the rubric's form wins
    ("Rating is: 8", 8.0), ("I rate it 7.", 7.0), ("I would rate this answer a 6.", 6.0), ("Rating of 9", 9.0),
])
def test_parse_rating_accepts(text, score):
    r = parse_rating(text)
    assert r.score == score and r.error is None


@pytest.mark.parametrize("text,why", [
    ("Rating: [[7]] then Rating: [[8]]", "conflicting"), ("Score: 6, or rather score: 8", "conflicting"),
    ("Rating: [[11]]", "outside"), ("Rating: -3", "outside"), ("12/10", "outside"), ("Rating: 10.5", "outside"),
    ("The answer is good.", "no rating"), ("", "empty"), ("   \n", "empty"), ("score: 85%", "no rating"),
    ("7/100", "no rating"), (None, "no reply"), (7, "no reply"),
    ("Rating: 1e1", "no rating"), ("Rating: 10e5", "no rating"),  # not read as 1 (the mantissa)
])
def test_parse_rating_rejects(text, why):
    r = parse_rating(text)
    assert r.score is None and why in r.error


@pytest.mark.parametrize("text,scores", [
    ("8 6\nAnswer 1 is more detailed.", (8.0, 6.0)), ("8, 6", (8.0, 6.0)), ("8-6", (8.0, 6.0)),
    ("7.5 vs 6", (7.5, 6.0)), ("**9** | **3**", (9.0, 3.0)), ("10 0", (10.0, 0.0)),
    ("Answer 1: 7/10, Answer 2: 9/10", (7.0, 9.0)), ("Scores:\n5 5\nboth fine", (5.0, 5.0)),
    ("Score for Assistant 1: 8; Score for Assistant 2: 2", (8.0, 2.0)),
    ("Answer 1: 8\nAnswer 2: 6", (8.0, 6.0)), ("Assistant 1: 7/10\nwhy...\nAssistant 2: 9/10", (7.0, 9.0)),
])
def test_parse_pair_scores_accepts(text, scores):
    p = parse_pair_scores(text)
    assert p.scores == scores and p.error is None


@pytest.mark.parametrize("text,why", [
    ("8 6 7", "3 numbers"), ("8\n6", "1 numbers"), ("11 3", "outside"), ("-3 5", "outside"),
    ("Answer 2: 6\nAnswer 1: 8", "1 numbers"),  # labels out of order: not guessed
    ("Answer 1 is better.", "no scores"), ("", "empty"), (None, "no reply"),
])
def test_parse_pair_scores_rejects(text, why):
    p = parse_pair_scores(text)
    assert p.scores is None and why in p.error


def _noise(rng: random.Random, n: int, digits: bool = True) -> str:
    alphabet = string.ascii_letters + string.punctuation + " \n\t[]*/" + (string.digits * 3 if digits else "")
    pieces = ["Rating", "Score", "[[", "]]", "/10", "out of 10", ":", "−", "-", ".", "Answer 1", "%"]
    return "".join(rng.choice(pieces) if rng.random() < 0.15 else rng.choice(alphabet) for _ in range(n))


def test_parsers_fuzz_never_raise_and_stay_in_range():
    rng = random.Random(1234)
    for _ in range(3000):
        text = _noise(rng, rng.randrange(0, 60))
        r, p = parse_rating(text), parse_pair_scores(text)
        assert (r.score is None) != (r.error is None)
        assert r.score is None or 0.0 <= r.score <= 10.0
        assert (p.scores is None) != (p.error is None)
        assert p.scores is None or all(0.0 <= s <= 10.0 for s in p.scores)


def test_parsers_fuzz_find_the_planted_answer():
    rng = random.Random(99)
    for _ in range(500):
        k, s1, s2 = rng.randint(0, 10), rng.randint(0, 10), rng.randint(0, 10)
        noise = _noise(rng, rng.randrange(0, 40), digits=False).replace("[[", "[").replace("]]", "]")
        assert parse_rating(f"{noise}\nRating: [[{k}]]\n{noise}").score == k
        assert parse_pair_scores(f"{s1} {s2}\n{noise}").scores == (s1, s2)


def test_prompts_are_versioned_and_hashed():
    assert {"single-v1", "pairwise-v1"} <= set(JUDGE_PROMPTS)
    for p in JUDGE_PROMPTS.values():
        assert re.fullmatch(r"[0-9a-f]{16}", p.sha256)
    assert len({p.sha256 for p in JUDGE_PROMPTS.values()}) == len(JUDGE_PROMPTS)
    assert "Rating: [[" in JUDGE_PROMPTS["single-v1"].template
    text = get_prompt("single-v1", "single").render(question="Q {x}?", reference="R", answer="A {y}")
    assert "Q {x}?" in text and "A {y}" in text  # braces inside judged texts are inserted verbatim
    with pytest.raises(JudgeError, match="pairwise prompt"):
        get_prompt("pairwise-v1", "single")
    with pytest.raises(JudgeError, match="unknown"):
        get_prompt("single-v9", "single")


@pytest.mark.parametrize("family,record,text", [
    ("multiple_choice", {"gt_choice": 2, "gt_choices": ["red", "blue", "green"]}, "(C) green"),
    ("instruction_following", {"gt_choice": 1, "gt_choices": ["a", "b"], "verbal_labels": ["I", "II"]}, "(II) b"),
    ("classification", {"label": "cat"}, "cat"), ("pope", {"gt_answer": "yes"}, "yes"),
    ("caption", {"sentences": ["A cat.", "A small cat."]}, "A cat.\nA small cat."),
    ("counting", {"num": 5}, "5"), ("ocr", {"word_list": ["PUFF", "STUFF"]}, "PUFF STUFF"),
    ("facial_smile", {"attr": "-1"}, "the person is not smiling"), ("facial_hair", {"attr": "Black_Hair"}, "black hair"),
    ("detection", {"object": [{"label": "dog", "bbox": [0.1, 0.2, 0.3, 0.4]}]}, "dog [0.1, 0.2, 0.3, 0.4]"),
    ("generic", {"gt_answer": "a red square"}, "a red square"), ("generic", {"gt": ["x", "y"]}, "x\ny"),
])
def test_reference_text(family, record, text):
    assert reference_text({"id": "r1", **record}, family) == text


@pytest.mark.parametrize("family,record,field", [
    ("classification", {"id": "r7"}, "'label'"), ("caption", {"id": "r7", "sentences": []}, "'sentences'"),
    ("multiple_choice", {"id": "r7", "gt_choice": 5, "gt_choices": ["a", "b"]}, "'gt_choice'"),
    ("generic", {"id": "r7", "question": "?"}, "gt_answer"), ("keypoints", {"id": "r7"}, "gt_answer"),
])
def test_reference_text_errors_name_record_and_field(family, record, field):
    with pytest.raises(JudgeError, match=re.escape(field)) as e:
        reference_text(record, family)
    assert "'r7'" in str(e.value)


# ------------------------------------------------------------------------------ both orders, statistics

@pytest.mark.parametrize("ab,ba,outcome", [
    ((8, 5), (4, 9), "A"),      # A better in both orders
    ((3, 7), (9, 2), "B"),      # B better in both orders
    ((6, 6), (5, 5), "tie"),    # equal in both
    ((8, 5), (8, 5), "tie"),    # position 1 wins both times: the orders disagree on the model
    ((8, 5), (6, 6), "tie"),    # a win in one order, a tie in the other
    ((8, 5), None, "failed"), (None, (4, 9), "failed"), (None, None, "failed"),
])
def test_combine_orders(ab, ba, outcome):
    assert combine_orders(ab, ba) == outcome


def _pj(sid, ab, ba) -> PairJudgement:
    v = [OrderVerdict(s, None if s else "unparsable: x", "r") for s in (ab, ba)]
    return PairJudgement(sid, combine_orders(ab, ba), v[0], v[1])


def test_summarize_pairs_by_hand():
    js = [_pj("1", (8, 5), (4, 9)), _pj("2", (9, 5), (3, 8)), _pj("3", (3, 7), (9, 2)),
          _pj("4", (8, 5), (8, 5)), _pj("5", (6, 6), (5, 5)), _pj("6", (8, 5), None)]
    s = summarize_pairs(js, n_boot=200)
    assert (s["wins"], s["losses"], s["ties"], s["failures"], s["n"]) == (2, 1, 2, 1, 6)
    assert s["failure_kinds"] == {"call": 0, "unparsable": 1}
    assert s["win_rate"] == pytest.approx(100 * (2 + 0.5 * 2) / 5)       # 60.0
    assert s["win_rate_no_ties"] == pytest.approx(100 * 2 / 3)
    lo, hi = s["ci"]["win_rate"]
    assert 0 <= lo <= s["win_rate"] <= hi <= 100
    pb = s["position_bias"]
    # readable order verdicts: 11; preferring position 1: #1 ab, #2 ab, #3 ba, #4 ab+ba, #6 ab = 6 of 9 with a preference
    assert pb["order_verdicts_with_preference"] == 9 and pb["order_verdicts_equal"] == 2
    assert pb["first_position_rate"] == pytest.approx(100 * 6 / 9)
    assert (pb["inconsistent"], pb["first_both"], pb["second_both"]) == (1, 1, 0)
    # each model's score averaged over both orders, over the 5 readable samples
    assert s["mean_score_a"] == pytest.approx((8.5 + 8.5 + 2.5 + 6.5 + 5.5) / 5)
    assert s["mean_score_b"] == pytest.approx((4.5 + 4.0 + 8.0 + 6.5 + 5.5) / 5)
    empty = summarize_pairs([_pj("x", None, None)])
    assert empty["win_rate"] is None and empty["ci"]["win_rate"] == [None, None] and empty["failures"] == 1


def test_summarize_scores_by_hand():
    js = [SingleJudgement("a", 8.0, None, "r"), SingleJudgement("b", 6.0, None, "r"),
          SingleJudgement("c", None, "unparsable: no rating found", "r"), SingleJudgement("d", None, "judge call failed: x", None)]
    s = summarize_scores(js, n_boot=200, seed=3)
    assert s["mean_score"] == 7.0 and (s["n"], s["n_scored"], s["failures"]) == (4, 2, 2)
    assert s["failure_kinds"] == {"call": 1, "unparsable": 1}
    assert 6.0 <= s["ci"][0] <= 7.0 <= s["ci"][1] <= 8.0
    assert summarize_scores(js, n_boot=200, seed=3) == s  # seeded: same numbers


def test_select_ids_is_seeded_and_nested():
    ids = [str(i) for i in range(30)]
    five, ten = select_ids(ids, 5, seed=1), select_ids(ids, 10, seed=1)
    assert len(five) == 5 and set(five) <= set(ten) and five == sorted(five, key=int)
    assert select_ids(ids, 5, seed=1) == five and select_ids(ids, None) == ids


# -------------------------------------------------------------------------------------------- caching

class ScriptedEngine(DummyEngine):
    """Replies by a function of the user message; records every request; raises OpenAIError on 'FAIL'."""

    def __init__(self, reply):
        super().__init__("echo")
        self.spec, self.reply, self.calls = "scripted", reply, []

    def fingerprint(self) -> str:
        return "scripted:v1"

    def generate(self, requests, progress=None):
        texts = [r.conversation.messages[-1].content for r in requests]
        self.calls.extend(texts)
        if any("FAIL" in t for t in texts):
            raise OpenAIError("scripted failure")
        return [self.reply(t) for t in texts]


def _rate(text: str) -> str:
    answer = text.split("[The assistant's answer]\n", 1)[1].split("\n\n[Instructions]", 1)[0]
    return {"good": "Rating: [[9]]", "bad": "Rating: [[2]]", "odd": "no idea"}.get(answer, "Rating: [[5]]")


def test_cache_second_run_asks_nothing_and_failures_are_not_cached(tmp_path):
    items = [SingleItem(str(i), "Q?", "ref", a) for i, a in enumerate(["good", "bad", "odd", "FAIL", "good"])]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        eng = ScriptedEngine(_rate)
        judge = Judge(eng, cache=cache, batch_size=8)
        first = grade_answers(judge, items)
        assert [j.score for j in first] == [9.0, 2.0, None, None, 9.0]
        assert first[2].error.startswith("unparsable") and first[3].error.startswith("judge call failed")
        # the batch failed as a whole, then each request was asked alone: only "FAIL" failed
        assert judge.n_call_failures == 1 and judge.n_asked == 4  # "good" twice is one request
        n_calls = len(eng.calls)
        again = grade_answers(Judge(eng, cache=cache), items)
        assert again == first
        assert eng.calls[n_calls:] == [eng.calls[3]]  # only the failed call is asked again
        # pairwise replies share the cache too; a new judge over the same cache asks nothing
        pairs = [PairItem("p", "Q?", "ref", "good", "bad")]
        eng2 = ScriptedEngine(lambda t: "7 3")
        assert compare_answers(Judge(eng2, cache=cache), pairs)[0].outcome == "tie"
        assert len(eng2.calls) == 2
        j3 = Judge(eng2, cache=cache)
        compare_answers(j3, pairs)
        assert len(eng2.calls) == 2 and j3.n_cached == 2 and j3.n_asked == 0


def test_judge_stops_after_failures_in_a_row_keeping_the_cache(tmp_path):
    items = [SingleItem(str(i), "Q?", "ref", a) for i, a in enumerate(["good", "FAIL 1", "bad", "FAIL 2", "FAIL 3"])]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        eng = ScriptedEngine(_rate)
        with pytest.raises(JudgeUnavailableError, match="2 calls failed in a row"):
            grade_answers(Judge(eng, cache=cache, max_consecutive_failures=2), items)
        assert cache.count("scripted:v1") == 2  # "good" and "bad" were answered and kept
        got = grade_answers(Judge(eng, cache=cache, max_consecutive_failures=0), items)
        assert [j.score for j in got] == [9.0, None, 2.0, None, None]


# ------------------------------------------------------------------------ a real OpenAI-compatible server

_SECTION = re.compile(r"\[Reference answer\]\n(.*?)\n\n\[Answer 1\]\n(.*?)\n\n\[Answer 2\]\n(.*?)\n\n\[Instructions\]", re.DOTALL)


def _pair_reply(text: str) -> str:
    """A fair scripted judge: 9 for an answer naming the reference's letter, else 2."""
    ref, a1, a2 = _SECTION.search(text).groups()
    letter = re.match(r"\(\w\)", ref).group(0)
    return f"{9 if letter in a1 else 2} {9 if letter in a2 else 2}\nscripted"


def scripted_server_app(log: list[str]):
    """``/v1/chat/completions`` replying by markers in the user message: ERR500 → HTTP 500, SLOW → sleeps
    past the client's timeout, a pairwise prompt → :func:`_pair_reply`, else :func:`_rate`."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app, lock = FastAPI(), threading.Lock()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        user = body["messages"][-1]["content"]
        with lock:
            log.append(user)
        if "ERR500" in user:
            return JSONResponse({"error": {"message": "scripted server error"}}, status_code=500)
        if "SLOW" in user:
            await asyncio.sleep(1.0)
        reply = _pair_reply(user) if "[Answer 2]" in user else _rate(user)
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": reply}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 3}}

    return app


@pytest.fixture(scope="module")
def judge_server():
    log: list[str] = []
    with _infer_helpers().run_uvicorn(scripted_server_app(log)) as url:
        yield url, log


def test_openai_judge_over_http_counts_failures(judge_server, tmp_path):
    url, log = judge_server
    engine = load_engine(f"openai:judge@{url}/v1", max_retries=1, backoff=0.01, timeout=0.3, concurrency=4)
    items = [SingleItem(str(i), "Q?", "ref", a) for i, a in enumerate(["good", "odd", "ERR500", "SLOW", "bad"])]
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        judge = Judge(engine, cache=cache)
        got = grade_answers(judge, items)
        assert [j.score for j in got] == [9.0, None, None, None, 2.0]
        assert "unparsable" in got[1].error
        assert "HTTP 500" in got[2].error and "scripted server error" in got[2].error
        assert "Timeout" in got[3].error
        s = summarize_scores(got, n_boot=100)
        assert s["mean_score"] == 5.5 and s["failures"] == 3 and s["failure_kinds"] == {"call": 2, "unparsable": 1}
        assert engine.usage.failures >= 2
        before = list(log)
        again = grade_answers(Judge(engine, cache=cache), items)
        assert [j.score for j in again] == [j.score for j in got]
        new = log[len(before):]
        assert new and all("ERR500" in t or "SLOW" in t for t in new)  # cached replies are not asked again
        pairs = [PairItem("x", "Q?", "(A) red", "The answer is (A)", "The answer is (B)"),
                 PairItem("y", "Q?", "(B) blue", "The answer is (A)", "(B)"),
                 PairItem("z", "Q?", "(A) red", "(A) ERR500", "(B)")]
        out = compare_answers(judge, pairs)
        assert [p.outcome for p in out] == ["A", "B", "failed"]
        assert out[2].ab.error.startswith("judge call failed") and out[2].ab.scores is None
    engine.close()


# ------------------------------------------------------------------------------------- runs and the CLI

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("judge_runs")
    root = make_synth_layout(base / "synth", n_train=1, n_test=8)
    run_recipe("synth_vqa", "dummy", out_dir=base / "a", root=root, show_progress=False)
    run_recipe("synth_vqa", "dummy:constant=The answer is (A)", out_dir=base / "b", root=root, limit=6,
               show_progress=False)
    run_recipe("synth_classification", "dummy", out_dir=base / "cls", root=root, show_progress=False)
    return root, base


def _rows(path: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_judge_run_and_errors(two_runs, tmp_path):
    root, base = two_runs
    eng = ScriptedEngine(lambda t: "Rating: [[6]]")
    r = judge_run(base / "a", Judge(eng), root=root, limit=5, out_dir=tmp_path)
    assert r["mean_score"] == 6.0 and r["n"] == 5 and r["n_answers"] == 8 and r["prompt_id"] == "single-v1"
    assert r["prompt_sha256"] == JUDGE_PROMPTS["single-v1"].sha256 and r["judge_fingerprint"] == "scripted:v1"
    assert json.loads((tmp_path / "judge.json").read_text()) == r and "6.00" in (tmp_path / "judge.md").read_text()
    # the judge sees the question and the ground truth ("(X) option") of each record
    assert all("[Reference answer]\n(" in t and "Options:" in t for t in eng.calls)
    with pytest.raises(JudgeError, match="no answers.jsonl"):
        judge_run(tmp_path, Judge(eng), root=root)
    with pytest.raises(Exception, match="--root"):
        judge_run(base / "a", Judge(eng), root=None)
    with pytest.raises(JudgeError, match="different scenarios .*Synth-VQA"):
        compare_runs(base / "a", base / "cls", Judge(eng), root=root)


def test_context_refused_answers_are_not_judged(two_runs, tmp_path):
    """An answer the model's context refused (empty, extra.error context_length_exceeded) is not sent to the
    judge: listed and counted instead; in a comparison, a sample refused in either run is left out."""
    import shutil

    root, base = two_runs
    run = tmp_path / "refused"
    shutil.copytree(base / "a", run)
    rows = [json.loads(x) for x in (run / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    refused = [rows[1]["id"], rows[4]["id"]]
    for r in rows:
        if r["id"] in refused:
            r["answer"], r["extra"] = "", {"error": "context_length_exceeded", "prompt_tokens": 50,
                                           "context_length": 46}
    (run / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    eng = ScriptedEngine(lambda t: "Rating: [[6]]")
    r = judge_run(run, Judge(eng), root=root, out_dir=tmp_path / "j")
    assert r["context_refused"] == refused and r["n"] == len(rows) - 2 and len(eng.calls) == len(rows) - 2
    assert "Not judged: 2 answer(s)" in (tmp_path / "j" / "judge.md").read_text(encoding="utf-8")
    eng = ScriptedEngine(lambda t: "8 6")
    c = compare_runs(base / "a", run, Judge(eng), root=root, out_dir=tmp_path / "c")
    assert c["context_refused_b"] == refused and c["context_refused_a"] == [] and c["n"] == len(rows) - 2
    assert "Not compared: 2 sample(s)" in (tmp_path / "c" / "compare.md").read_text(encoding="utf-8")


def test_compare_cli_end_to_end(two_runs, judge_server, tmp_path):
    from lamm.cli.main import app

    root, base = two_runs
    url, log = judge_server
    out = tmp_path / "cmp"
    args = ["bench", "compare", str(base / "a"), str(base / "b"), "--judge", f"openai:judge@{url}/v1",
            "--judge-option", "max_retries=0", "--root", str(root), "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "win rate of A" in res.output
    r = json.loads((out / "compare.json").read_text())
    a, b = _rows(base / "a" / "answers.jsonl"), _rows(base / "b" / "answers.jsonl")
    assert r["n_common"] == r["n"] == 6 and sorted(r["only_in_a"]) == sorted(set(a) - set(b)) and r["only_in_b"] == []
    # the scripted judge is fair and consistent: outcomes follow each run's own accuracy on the sample
    exp = {"A": 0, "B": 0, "tie": 0}
    for sid in b:
        ca, cb = a[sid]["scores"]["accuracy"], b[sid]["scores"]["accuracy"]
        exp["A" if ca > cb else "B" if cb > ca else "tie"] += 1
    assert (r["wins"], r["losses"], r["ties"], r["failures"]) == (exp["A"], exp["B"], exp["tie"], 0)
    assert r["position_bias"]["inconsistent"] == 0
    if exp["A"] + exp["B"]:
        assert r["position_bias"]["first_position_rate"] == 50.0
    assert r["win_rate"] == pytest.approx(100 * (exp["A"] + exp["tie"] / 2) / 6)
    assert r["prompt_id"] == "pairwise-v1" and (out / "compare.md").is_file()
    n_log = len(log)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "asked 0, from cache 12" in " ".join(again.output.split())
    assert len(log) == n_log and json.loads((out / "compare.json").read_text()) == r
    bad = CliRunner().invoke(app, ["bench", "compare", str(base / "a"), str(base / "cls"), "--judge", "dummy",
                                   "--root", str(root), "--out", str(tmp_path / "x"), "--no-progress"])
    assert bad.exit_code == 2 and "different scenarios" in " ".join(bad.output.split())


def test_judge_cli_exit_codes(two_runs, tmp_path):
    from lamm.cli.main import app

    root, base = two_runs
    ok = CliRunner().invoke(app, ["bench", "judge", str(base / "a"), "--judge", "dummy:constant=Rating: [[7]]",
                                  "--root", str(root), "--out", str(tmp_path / "ok"), "--limit", "3", "--no-progress"])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "ok" / "judge.json").read_text())["mean_score"] == 7.0
    # the echo dummy never gives a rating: every judgement fails, the report is written, the exit code says so
    failed = CliRunner().invoke(app, ["bench", "judge", str(base / "a"), "--judge", "dummy", "--root", str(root),
                                      "--out", str(tmp_path / "f"), "--no-progress"])
    assert failed.exit_code == 1 and "8 of 8 judgements failed" in " ".join(failed.output.split())
    assert json.loads((tmp_path / "f" / "judge.json").read_text())["failures"] == 8
    missing = CliRunner().invoke(app, ["bench", "judge", str(tmp_path / "nope"), "--judge", "dummy"])
    assert missing.exit_code == 2 and "not a directory" in " ".join(missing.output.split())


@pytest.mark.parametrize("name", ["lamm.bench.judge", "lamm.bench.judge_prompts"])
def test_doctests(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0
