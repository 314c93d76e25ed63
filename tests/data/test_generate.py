"""C1–C3 generation: prompt packs, reply validation, and the generator against a real local
OpenAI-compatible HTTP server that returns scripted replies — malformed JSON, error statuses, a timeout —
plus resume after the generating process is killed, without duplicated or lost records."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lamm.data.generate import (
    GenerateJob,
    GenerationError,
    Generator,
    InvalidOutput,
    PromptPackError,
    bundled_packs,
    extract_json,
    load_pack,
    parse_pack,
    parse_reply,
    plan_jobs,
    read_done,
    render_context,
)
from lamm.data.records import validate_records
from lamm.infer.engine import Engine, load_engine

N = 12


def source_records(n: int = N) -> list[dict]:
    return [
        {
            "src_dataset": "coco2017",
            "src_id": str(i),
            "image": f"coco_images/{i:012d}.jpg",
            "captions": [f"A dog plays with a ball in a park, photo number {i}."],
            "objects": [
                {"label": "dog", "bbox": [0.1, 0.2, 0.5, 0.9]},
                {"label": "ball", "bbox": [0.6, 0.7, 0.7, 0.8]},
            ],
        }
        for i in range(n)
    ]


def dialogue(i: str) -> str:
    turns = [
        ("human", f"What is the dog doing in picture {i}?"),
        ("gpt", "The dog is chasing a ball across the grass."),
        ("human", "Where is the ball?"),
        ("gpt", "The ball is on the right side, close to the ground."),
    ]
    return json.dumps({"conversation": [{"from": f, "value": v} for f, v in turns]})


# ------------------------------------------------------------------------------------------------ server


class Scripted:
    """A minimal OpenAI-compatible chat-completions server on a free loopback port (http.server in a
    thread). ``script(key, n)`` decides the n-th reply for the record whose context says "number {key}":
    ``("ok", text)``, ``("status", code)`` or ``("sleep", seconds, text)``."""

    def __init__(self, script: Callable[[str, int], tuple], delay: float = 0.0) -> None:
        self.script, self.delay = script, delay
        self.calls: Counter = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                user = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
                key = re.search(r"number (\d+)", user).group(1)
                with outer.lock:
                    outer.calls[key] += 1
                    n = outer.calls[key]
                action = outer.script(key, n)
                time.sleep(outer.delay)
                if action[0] == "sleep":
                    time.sleep(action[1])
                    action = ("ok", action[2])
                try:
                    if action[0] == "status":
                        self._send(action[1], {"error": {"message": f"scripted failure {action[1]}"}})
                    else:
                        self._send(
                            200,
                            {
                                "id": "x",
                                "object": "chat.completion",
                                "model": body["model"],
                                "choices": [
                                    {
                                        "index": 0,
                                        "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": action[1]},
                                    }
                                ],
                                "usage": {"prompt_tokens": 100, "completion_tokens": 40, "total_tokens": 140},
                            },
                        )
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @contextmanager
    def running(self) -> Iterator[Scripted]:
        t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def job(**kw) -> GenerateJob:
    base = {
        "name": "c1",
        "kind": "conversation",
        "source": "coco",
        "engine": "x",
        "retry_wait": 0.0,
        "concurrency": 3,
        "retries": 2,
        "price_prompt_per_million": 1.0,
        "price_completion_per_million": 2.0,
    }
    return GenerateJob(**{**base, **kw})


# ---------------------------------------------------------------------------------- packs & validation


def test_bundled_packs_are_valid_and_hashed():
    names = bundled_packs()
    assert {
        "c1_conversation",
        "c2_commonsenseqa",
        "c3_description",
        "c1_conversation_3d",
        "c2_commonsenseqa_3d",
        "c3_description_3d",
    } <= set(names)
    for n in names:
        p = load_pack(n)
        assert p.ref.startswith(f"{n}@{p.version}#") and len(p.sha256) == 64
        for _ctx, resp in p.few_shot:
            parse_reply(resp, p)  # the examples obey the pack's own rules
    assert load_pack("c3_description_3d").task_type == "description3d"
    with pytest.raises(PromptPackError, match="unknown key"):
        parse_pack(
            {
                "name": "x",
                "version": "1",
                "kind": "conversation",
                "modality": "image",
                "output": "dialogue",
                "system": "s",
                "temperature": 1,
            },
            "p.yaml",
        )
    with pytest.raises(PromptPackError, match=r"few_shot\[0\]\.response is not valid JSON"):
        parse_pack(
            {
                "name": "x",
                "version": "1",
                "kind": "conversation",
                "modality": "image",
                "output": "dialogue",
                "system": "s",
                "few_shot": [{"context": "c", "response": "{oops"}],
            },
            "p.yaml",
        )


def test_parse_reply_rules():
    pack = load_pack("c1_conversation")
    assert len(parse_reply("```json\n" + dialogue("1") + "\n```", pack)) == 4
    assert len(parse_reply("Sure! Here it is: " + dialogue("1") + " Hope it helps.", pack)) == 4
    alt = json.loads(dialogue("1"))
    alt["conversation"] = [
        {"role": "user" if t["from"] == "human" else "assistant", "content": t["value"]}
        for t in alt["conversation"]
    ]
    assert parse_reply(json.dumps(alt), pack)[1]["from"] == "gpt"
    bad = {
        "malformed JSON": '{"conversation": [',
        "expected a 'gpt' turn": dialogue("1").replace('"gpt"', '"human"', 1),
        "mentions 'the caption'": dialogue("1").replace(
            "chasing a ball", "chasing a ball, as the caption says"
        ),
        "refusal": dialogue("1").replace("The dog is", "I'm sorry, the dog is"),
        "coordinates": dialogue("1").replace("close to the ground", "at [0.6, 0.7, 0.7, 0.8]"),
        "turns, outside": json.dumps({"conversation": json.loads(dialogue("1"))["conversation"][:2]}),
        "must end with an answer": json.dumps(
            {
                "conversation": json.loads(dialogue("1"))["conversation"][:3]
                + json.loads(dialogue("1"))["conversation"][:2]
            }
        ),
    }
    for why, text in bad.items():
        with pytest.raises(InvalidOutput, match=why):
            parse_reply(text, pack)
    desc = load_pack("c3_description")
    with pytest.raises(InvalidOutput, match="words, outside"):
        parse_reply('{"description": "A dog."}', desc)
    assert extract_json('{"a": 1}') == {"a": 1}


def test_context_rendering_is_deterministic():
    rec = source_records(1)[0]
    ctx = render_context(rec)
    assert ctx == render_context(json.loads(json.dumps(rec)))
    assert "Captions:\n- A dog plays" in ctx and "- dog: [0.10, 0.20, 0.50, 0.90]" in ctx
    scene = {
        "src_dataset": "s",
        "src_id": "1",
        "pcl": "s.npy",
        "objects": [{"label": "chair", "color": "red", "bbox": [1, 0, 0.4, 0.5, 0.5, 0.8]}],
    }
    assert "chair (red): [1.00, 0.00, 0.40, 0.50, 0.50, 0.80]" in render_context(scene)
    assert render_context({"src_dataset": "s", "src_id": "2", "image": "x.png"}) == ""


# ----------------------------------------------------------------------------------- in-process engine


class ScriptEngine(Engine):
    """A scripted in-process engine: replies by record key and call number; no usage reported."""

    def __init__(self, script: Callable[[str, int], str]) -> None:
        super().__init__()
        self.script, self.calls, self.lock = script, Counter(), threading.Lock()

    def fingerprint(self) -> str:
        return "script"

    def generate(self, requests, progress=None):
        out = []
        for r in requests:
            key = re.search(r"number (\d+)", r.conversation.messages[-1].content).group(1)
            with self.lock:
                self.calls[key] += 1
                n = self.calls[key]
            reply = self.script(key, n)
            if isinstance(reply, Exception):
                raise reply
            out.append(reply)
        return out


def test_generator_in_process_retries_accounting_and_threshold(tmp_path):
    pack = load_pack("c3_description")
    good = json.dumps(
        {
            "description": "The picture shows a brown dog running across a green park towards a small "
            "ball that lies near the right edge, with trees far behind."
        }
    )
    eng = ScriptEngine(
        lambda k, n: (
            "not json" if (k == "1" and n == 1) else (RuntimeError("down") if k == "2" and n < 3 else good)
        )
    )
    jobs, na = plan_jobs(
        source_records(4) + [{"src_dataset": "coco2017", "src_id": "empty", "image": "e.jpg"}], pack, seed=5
    )
    assert na == 1 and len(jobs) == 4
    gen = Generator(eng, pack, job(kind="description", batch_size=2), seed=5)
    recs = gen.run(jobs, tmp_path / "c3.jsonl")
    assert [r["id"] for r in recs] == [f"coco2017_{i}_description" for i in range(4)]
    r = recs[0]
    assert r["task_type"] == "description" and r["conversations"][0]["from"] == "human"
    assert r["builder"] == "generate.description@1.0" and r["template_id"].startswith(pack.ref + ":c3.q")
    assert r["seed"] == 5 and r["generator"] == {
        "model": "script",
        "attempts": 1,
        "context_sha256": jobs[0].context_sha256,
    }
    assert len(jobs[0].context_sha256) == 64
    assert validate_records(recs, check_media=False).ok
    s = gen.summary
    # key 2 fails inside a batch of two, is retried alone (fails again: one counted error), then succeeds
    assert (s.generated, s.failed, s.invalid_outputs, s.engine_errors) == (4, 0, 1, 1)
    assert eng.calls["2"] == 3
    assert s.tokens_source == "estimate" and s.prompt_tokens > 0 and s.cost_usd > 0
    summary = json.loads((tmp_path / "c3.summary.json").read_text())
    assert summary["attempts"] == 6 and summary["prompt_pack"] == pack.ref

    always_bad = ScriptEngine(lambda k, n: good if k != "3" else '{"description": 1}')
    with pytest.raises(
        GenerationError, match=r"1 of 4 records failed after 3 attempt\(s\).*missing 'description'"
    ):
        Generator(always_bad, pack, job(kind="description"), seed=5).run(jobs, tmp_path / "c3b.jsonl")
    assert len(read_done(tmp_path / "c3b.jsonl")) == 3  # the good ones are kept for the rerun
    fixed = ScriptEngine(lambda k, n: good)
    assert len(Generator(fixed, pack, job(kind="description"), seed=5).run(jobs, tmp_path / "c3b.jsonl")) == 4
    assert sum(fixed.calls.values()) == 1  # only the failed record is asked again
    with pytest.raises(GenerationError, match="made with prompt pack .* but this run uses .* seed 6"):
        Generator(fixed, pack, job(kind="description"), seed=6).run(jobs, tmp_path / "c3b.jsonl")


class ShortEngine(ScriptEngine):
    """A broken backend: answers a batch with one reply too few."""

    def generate(self, requests, progress=None):
        return super().generate(requests, progress)[:-1]


def test_a_backend_returning_fewer_replies_than_requests_is_an_error(tmp_path):
    pack = load_pack("c1_conversation")
    jobs, _ = plan_jobs(source_records(4), pack, seed=0)
    eng = ShortEngine(lambda k, n: dialogue(k))
    with pytest.raises(
        GenerationError, match=r"backend 'script' \(ShortEngine\) returned 1 replies for 2 requests"
    ):
        Generator(eng, pack, job(batch_size=2, concurrency=1), seed=0).run(jobs, tmp_path / "c1.jsonl")


def test_resume_keeps_generated_turns_but_takes_media_and_provenance_from_the_current_record(tmp_path):
    pack = load_pack("c3_description")
    text = (
        "The picture shows a brown dog running across a green park towards a small ball that lies near "
        "the right edge, with trees far behind."
    )
    eng = ScriptEngine(lambda k, n: json.dumps({"description": text}))
    out = tmp_path / "c3.jsonl"
    jobs, _ = plan_jobs(source_records(3), pack, seed=0)
    first = Generator(eng, pack, job(kind="description"), seed=0).run(jobs, out)
    assert all(len(r["generator"]["context_sha256"]) == 64 for r in first)
    moved = [{**r, "image": "fixed/" + r["image"]} for r in source_records(3)]
    jobs, _ = plan_jobs(moved, pack, seed=0)
    gen = Generator(eng, pack, job(kind="description"), seed=0)
    again = gen.run(jobs, out)
    assert [r["image"] for r in again] == [f"fixed/coco_images/{i:012d}.jpg" for i in range(3)]
    assert [r["conversations"] for r in again] == [r["conversations"] for r in first]
    assert (gen.summary.already_done, gen.summary.regenerated, gen.summary.generated) == (3, 0, 0)
    assert sum(eng.calls.values()) == 3  # nothing was asked again
    # record 1's annotations changed: its context differs, so it is generated again (and counted)
    changed = [dict(r) for r in moved]
    changed[1]["objects"] = [{"label": "cat", "bbox": [0.1, 0.1, 0.3, 0.3]}]
    jobs, _ = plan_jobs(changed, pack, seed=0)
    gen = Generator(eng, pack, job(kind="description"), seed=0)
    third = gen.run(jobs, out)
    assert (gen.summary.already_done, gen.summary.regenerated, gen.summary.generated) == (2, 1, 1)
    assert eng.calls["1"] == 2 and third[1]["generator"]["context_sha256"] == jobs[1].context_sha256
    assert read_done(out)["coco2017_1_description"]["generator"]["context_sha256"] == jobs[1].context_sha256


# ------------------------------------------------------------------------------------------------ HTTP


def test_generator_over_http_with_malformed_json_error_status_and_timeout(tmp_path):
    def script(key: str, n: int) -> tuple:
        if key == "1" and n == 1:
            return ("ok", '{"conversation": [{"from": "human", "value": "unterminated')
        if key == "2" and n == 1:
            return ("status", 500)
        if key == "3" and n == 1:
            return ("sleep", 2.5, dialogue(key))
        if key == "4" and n <= 2:
            return ("status", 429)
        return ("ok", dialogue(key))

    server = Scripted(script)
    with server.running():
        eng = load_engine(f"openai:test-model@{server.url}", timeout=1.0, max_retries=0)
        pack = load_pack("c1_conversation")
        jobs, _ = plan_jobs(source_records(), pack, seed=0)
        gen = Generator(eng, pack, job(), seed=0)
        recs = gen.run(jobs, tmp_path / "c1.jsonl")
        eng.close()
    assert [r["id"] for r in recs] == [f"coco2017_{i}_conversation" for i in range(N)]
    assert all(
        r["conversations"][0]["value"] == f"What is the dog doing in picture {r['src_id']}?" for r in recs
    )
    assert validate_records(recs, check_media=False).ok
    s = gen.summary
    assert s.generated == N and s.failed == 0 and s.invalid_outputs == 1 and s.engine_errors == 4
    assert s.tokens_source == "backend"
    assert s.model == f"openai:test-model@{server.url}"
    assert s.prompt_tokens == 100 * (N + 1) and s.completion_tokens == 40 * (
        N + 1
    )  # 200 replies incl. the malformed one
    assert s.cost_usd == pytest.approx((100 * (N + 1) * 1.0 + 40 * (N + 1) * 2.0) / 1e6)
    attempts = {r["src_id"]: r["generator"]["attempts"] for r in recs}
    assert attempts["1"] == 2 and attempts["2"] == 2 and attempts["3"] == 2 and attempts["4"] == 3
    log = [json.loads(line) for line in (tmp_path / "c1.log.jsonl").read_text().splitlines()]
    reasons = " ".join(e.get("reason", "") for e in log)
    assert (
        "malformed JSON" in reasons
        and "HTTP 500" in reasons
        and "HTTP 429" in reasons
        and "Timeout" in reasons
    )
    assert sum(e["status"] == "ok" for e in log) == N


_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[3])
from test_generate import source_records, job
from lamm.data.generate import Generator, load_pack, plan_jobs
from lamm.infer.engine import load_engine
eng = load_engine("openai:m@" + sys.argv[1], timeout=10, max_retries=0)
pack = load_pack("c1_conversation")
jobs, _ = plan_jobs(source_records(40), pack, seed=0)
Generator(eng, pack, job(concurrency=2), seed=0).run(jobs, sys.argv[2])
"""


def test_resume_after_kill_neither_duplicates_nor_loses(tmp_path):
    out = tmp_path / "c1.jsonl"
    server = Scripted(lambda key, n: ("ok", dialogue(key)), delay=0.05)
    with server.running():
        env = {**os.environ, "PYTHONHASHSEED": "random"}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, server.url, str(out), str(Path(__file__).parent)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 6:
                break
            if child.poll() is not None:
                pytest.fail(f"generator exited early: {child.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        child.stdout.close()
        child.stderr.close()
        before = read_done(out)
        assert 6 <= len(before) < 40, "the kill should land mid-run"
        with open(out, "a") as fh:  # as if the kill had torn the last line
            fh.write('{"id": "coco2017_39_conversation", "image": "coco_im')
        calls_before = dict(server.calls)
        server.delay = 0.0
        eng = load_engine(f"openai:m@{server.url}", max_retries=0)
        pack = load_pack("c1_conversation")
        jobs, _ = plan_jobs(source_records(40), pack, seed=0)
        recs = Generator(eng, pack, job(concurrency=2), seed=0).run(jobs, out)
        eng.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in lines]
    assert len(ids) == len(set(ids)) == 40  # no duplicate, none lost, the torn line gone
    assert [r["id"] for r in recs] == [j.id for j in jobs]
    for rid, rec in before.items():  # finished records were kept as they were and not asked again
        assert next(r for r in lines if r["id"] == rid) == rec
        assert server.calls[rec["src_id"]] == calls_before[rec["src_id"]]


def test_done_records_with_unicode_line_separators_read_back(tmp_path):
    """An LLM reply may hold U+2028 / U+2029, written raw (ensure_ascii=False): resume must not split there."""
    out = tmp_path / "c1.jsonl"
    rec = {"id": "r1", "conversations": [{"from": "gpt", "value": "one\u2028two\u2029three\x85four"}]}
    out.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_done(out) == {"r1": rec}


def test_resume_cuts_a_torn_output_line_and_log_event_and_says_so(tmp_path):
    """A kill inside a multi-byte character of the output's last record and inside the log's last event:
    the record is generated again (counted as ``torn_line_dropped``), the log's next event starts its
    own line, and a damaged line that is not the last stops the run naming it."""
    pack = load_pack("c3_description")
    text = ("The picture shows a brown dog running across a green park towards a small ball that lies près "
            "the right edge, with trees far behind.")
    eng = ScriptEngine(lambda k, n: json.dumps({"description": text}, ensure_ascii=False))
    out, log = tmp_path / "c3.jsonl", tmp_path / "c3.log.jsonl"
    jobs, _ = plan_jobs(source_records(3), pack, seed=0)
    Generator(eng, pack, job(kind="description"), seed=0).run(jobs, out)
    whole = out.read_bytes()
    last = whole.splitlines(keepends=True)[-1]
    out.write_bytes(whole[: len(whole) - len(last)] + last[: last.index("è".encode()) + 1])
    log.write_bytes(log.read_bytes() + b'{"id": "coco2017_2_description", "att')
    gen = Generator(eng, pack, job(kind="description"), seed=0)
    gen.run(jobs, out)
    assert gen.summary.torn_line_dropped and (gen.summary.already_done, gen.summary.generated) == (2, 1)
    assert out.read_bytes() == whole and sum(eng.calls.values()) == 4
    assert [json.loads(x)["status"] for x in log.read_text(encoding="utf-8").splitlines()] == ["ok"] * 4
    again = Generator(eng, pack, job(kind="description"), seed=0)
    again.run(jobs, out)
    assert not again.summary.torn_line_dropped and again.summary.already_done == 3
    out.write_bytes(b'{"id": "x"}\n{"no_id": 1}\n' + whole)
    with pytest.raises(ValueError, match=r"c3.jsonl:2: not a valid record line \(no 'id'\); fix or delete"):
        read_done(out)
    out.write_bytes(b'\xef\xbb\xbf{"id": "x"}\n{"id": "x", "v": 2}\n')  # a BOM; a later line supersedes
    assert read_done(out) == {"x": {"id": "x", "v": 2}}
