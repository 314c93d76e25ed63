"""``lamm chat``: batch mode with resume, and the interactive terminal driven through a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamm.fileio import FileFormatError
from lamm.infer.chat import ChatSession, load_done, run_batch
from lamm.infer.engine import GenerationSettings, load_engine


def _questions(tmp_path: Path, image_file: Path, pcl_file: Path) -> Path:
    rows = [{"question_id": f"q{i}", "text": f"question number {i}?"} for i in range(5)]
    rows[1]["image"] = str(image_file)
    rows[3]["pcl"] = str(pcl_file)
    p = tmp_path / "questions.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


class Interrupted(RuntimeError):
    pass


class DiesAfter:
    """Wraps an engine; raises on the (n+1)-th generate call, like a run killed mid-way."""

    def __init__(self, engine, n: int) -> None:
        self.engine, self.n = engine, n
        self.spec, self.media_root = engine.spec, engine.media_root

    def generate(self, requests, progress=None):
        if self.n == 0:
            raise Interrupted("killed")
        self.n -= 1
        return self.engine.generate(requests, progress)


def _rows(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


def test_batch_answers_every_question(tmp_path, image_file, pcl_file):
    q = _questions(tmp_path, image_file, pcl_file)
    out = tmp_path / "answers.jsonl"
    s = run_batch(load_engine("dummy"), q, out, chunk=2)
    assert (s.questions, s.answered, s.skipped_done, s.dropped_truncated_line) == (5, 5, 0, False)
    rows = _rows(out)
    assert [r["question_id"] for r in rows] == [f"q{i}" for i in range(5)]
    assert rows[1]["image"] == str(image_file) and rows[3]["pcl"] == str(pcl_file) and "image" not in rows[0]
    assert rows[0]["model"] == "dummy" and rows[0]["prompt"] == "question number 0?"
    assert all(r["answer"].startswith("The answer is (") for r in rows)


def test_batch_resumes_after_interruption_and_truncated_line(tmp_path, image_file, pcl_file):
    q = _questions(tmp_path, image_file, pcl_file)
    clean = tmp_path / "clean.jsonl"
    run_batch(load_engine("dummy"), q, clean, chunk=1)
    out = tmp_path / "answers.jsonl"
    with pytest.raises(Interrupted):
        run_batch(DiesAfter(load_engine("dummy"), 2), q, out, chunk=1)
    assert len(_rows(out)) == 2  # flushed as made: nothing answered before the kill was lost
    with open(out, "a") as fh:  # the kill landed mid-write of the third line
        fh.write('{"question_id": "q2", "prompt": "quest')
    s = run_batch(load_engine("dummy"), q, out, chunk=1)
    assert s.dropped_truncated_line and s.skipped_done == 2 and s.answered == 3
    assert "truncated" in s.notes[0]
    assert _rows(out) == _rows(clean)
    again = run_batch(load_engine("dummy"), q, out)
    assert (again.answered, again.skipped_done) == (0, 5)


def test_broken_line_in_the_middle_is_an_error(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"question_id": "a"}\nnot json\n{"question_id": "b"}\n')
    with pytest.raises(FileFormatError, match=r"a.jsonl:2"):
        load_done(p)


def test_bad_questions_are_reported(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text('{"question_id": 1, "text": "a"}\n{"question_id": 1, "text": "b"}\n')
    with pytest.raises(FileFormatError, match="duplicate question_id"):
        run_batch(load_engine("dummy"), p, tmp_path / "a.jsonl")
    p.write_text('{"question_id": 1}\n')
    with pytest.raises(FileFormatError, match=r"q.jsonl:1: missing field 'text'"):
        run_batch(load_engine("dummy"), p, tmp_path / "a.jsonl")


def test_questions_with_unicode_separators_and_a_bom_are_read_whole(tmp_path):
    """A BOM (Windows editors) and U+2028 inside a question (JSON allows it raw) are not line breaks."""
    from lamm.infer.chat import read_questions

    p = tmp_path / "q.jsonl"
    p.write_text('\ufeff{"question_id": 1, "text": "one\u2028two"}\n{"question_id": 2, "text": "b"}\n',
                 encoding="utf-8")
    assert [r["text"] for r in read_questions(p)] == ["one\u2028two", "b"]


def test_cli_batch_mode(tmp_path, image_file, pcl_file):
    from lamm.cli.main import app

    q = _questions(tmp_path, image_file, pcl_file)
    out = tmp_path / "answers.jsonl"
    res = CliRunner().invoke(app, ["chat", "--model", "dummy", "--questions", str(q), "--answers", str(out),
                                   "--max-new-tokens", "16"])
    assert res.exit_code == 0, res.output
    assert "5 answered" in res.output and len(_rows(out)) == 5
    res = CliRunner().invoke(app, ["chat", "--model", "nope:x", "--questions", str(q), "--answers", str(out)])
    assert res.exit_code == 2 and "unknown backend" in res.output


def test_session_keeps_history_and_media_on_turn_one(image_file):
    s = ChatSession(load_engine("dummy"))
    s.attach("image", str(image_file))
    a1 = "".join(s.ask("what is it?"))
    a2 = "".join(s.ask("and its colour?"))
    conv = s.conversation("third")
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert conv.messages[1].content == a1 and conv.messages[3].content == a2
    assert conv.messages[0].media and not conv.messages[2].media
    s.reset()
    assert s.messages == [] and s.media is not None


class Terminal:
    """A child process on a pseudo-terminal: ``expect`` text, ``send`` lines."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        env = dict(os.environ, TERM="dumb", COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"did not see {text!r}; screen so far:\n{self.buffer}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.buffer += os.read(self.master, 4096).decode("utf-8", "replace").replace("\r\n", "\n")
                except OSError:  # the child closed the terminal
                    break
        assert text in self.buffer, self.buffer
        before, _, self.buffer = self.buffer.partition(text)
        return before

    def send(self, line: str) -> None:
        os.write(self.master, (line + "\n").encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


def test_interactive_chat_on_a_terminal(tmp_path, image_file, pcl_file):
    argv = [sys.executable, "-c", "from lamm.cli.main import app; app()", "chat", "--model", "dummy",
            "--image", str(image_file)]
    # the answers the session should stream, computed in-process with the same engine
    ref = ChatSession(load_engine("dummy"))
    ref.attach("image", str(image_file))
    want1, want2 = "".join(ref.ask("what is it?")), "".join(ref.ask("and then?"))
    ref.attach("pcl", str(pcl_file))
    want3 = "".join(ref.ask("what shape?"))

    term = Terminal(argv)
    try:
        term.expect("/quit")
        term.expect("you> ")
        term.send("what is it?")
        term.expect("lamm> ")
        assert term.expect("you> ").strip() == want1
        term.send("and then?")  # second turn: the history changes the answer
        term.expect("lamm> ")
        assert term.expect("you> ").strip() == want2
        term.send(f"/pcl {tmp_path / 'missing.npy'}")
        shown = term.expect("you> ")
        assert "error:" in shown and "not found" in shown
        term.send(f"/pcl {pcl_file}")
        assert "new conversation" in term.expect("you> ")
        term.send("what shape?")
        term.expect("lamm> ")
        assert term.expect("you> ").strip() == want3
        term.send("/reset")
        assert "history cleared" in term.expect("you> ")
        term.send("/quit")
    finally:
        code = term.close()
    assert code == 0


def test_resume_after_a_kill_inside_a_multibyte_character(tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question_id": i, "text": f"question {i}"}) + "\n" for i in range(5)))
    # written as UTF-8 (ensure_ascii=False): 3 bytes a character
    eng = load_engine("dummy:constant=答案是猫")
    clean, out = tmp_path / "clean.jsonl", tmp_path / "a.jsonl"
    run_batch(eng, q, clean)
    lines = clean.read_bytes().splitlines(keepends=True)
    cut = lines[3][: lines[3].index("猫".encode()) + 1]  # the kill landed after 1 byte of a 3-byte character
    out.write_bytes(b"".join(lines[:3]) + cut)
    s = run_batch(eng, q, out)
    assert s.dropped_truncated_line and (s.skipped_done, s.answered) == (3, 2)
    assert out.read_bytes() == clean.read_bytes()
    # the same bytes in the middle of the file are not ours to repair: an error naming the line
    out.write_bytes(b"".join(lines[:3]) + cut + b"\n" + lines[4])
    with pytest.raises(FileFormatError, match=r"a.jsonl:4: not a valid answer line"):
        load_done(out)


@pytest.mark.parametrize("kw, match", [
    ({"chunk": 0}, "chunk must be at least 1"),
    ({"chunk": -1}, "chunk must be at least 1"),
    ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
])
def test_batch_refuses_settings_that_would_lose_answers(tmp_path, kw, match):
    from lamm.infer.engine import GenerationSettings

    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question_id": i, "text": f"q{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "a.jsonl"
    settings = GenerationSettings(max_new_tokens=kw.get("max_new_tokens", 8))
    with pytest.raises(ValueError, match=match):
        run_batch(load_engine("dummy"), q, out, settings, chunk=kw.get("chunk", 16))
    assert not out.exists()
    # every chunk size answers every question, the last partial chunk included
    for chunk in (1, 2, 3, 5):
        s = run_batch(load_engine("dummy"), q, tmp_path / f"a{chunk}.jsonl", chunk=chunk)
        assert s.answered == 3 and len(_rows(tmp_path / f"a{chunk}.jsonl")) == 3


@pytest.mark.parametrize("args, match", [
    (["--chunk", "0"], "--chunk"),
    (["--chunk", "-1"], "--chunk"),
    (["--max-new-tokens", "0"], "--max-new-tokens"),
    (["--top-p", "0", "--temperature", "0.7"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"),
])
def test_cli_refuses_bad_batch_settings(tmp_path, args, match):
    from lamm.cli.main import app

    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question_id": 1, "text": "hi"}) + "\n")
    out = tmp_path / "a.jsonl"
    res = CliRunner().invoke(app, ["chat", "--model", "dummy", "--questions", str(q), "--answers", str(out),
                                   *args])
    assert res.exit_code == 2, res.output
    assert match in res.output and not out.exists()


def test_a_missing_image_names_its_question_and_keeps_earlier_answers(tmp_path, image_file, tiny_model_dir):
    from lamm.media import MediaError

    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question_id": 1, "text": "a", "image": str(image_file)}) + "\n"
                 + json.dumps({"question_id": 2, "text": "b", "image": str(tmp_path / "nope.png")}) + "\n")
    out = tmp_path / "a.jsonl"
    with pytest.raises(MediaError, match=r"q.jsonl: question_id 2: .*nope.png.*rerun to resume"):
        run_batch(load_engine(f"lamm:{tiny_model_dir}", device="cpu"), q, out, chunk=1,
                  settings=GenerationSettings(max_new_tokens=2))
    assert [r["question_id"] for r in _rows(out)] == [1]


def test_batch_sampling_is_reproducible_and_seeded_per_question(tmp_path, image_file, tiny_model_dir):
    """temperature > 0 without --seed: the same command gives the same answers (seed 0); two questions
    alike but for their id draw independently; --chunk does not change an answer."""
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"question_id": i, "text": "Describe it.", "image": str(image_file)}) + "\n"
                         for i in range(4)))
    engine = load_engine(f"lamm:{tiny_model_dir}", device="cpu")
    settings = GenerationSettings(max_new_tokens=12, temperature=1.5)
    runs = []
    for name, chunk in (("a", 4), ("b", 4), ("c", 1)):
        run_batch(engine, q, tmp_path / f"{name}.jsonl", settings=settings, chunk=chunk)
        runs.append([r["answer"] for r in _rows(tmp_path / f"{name}.jsonl")])
    assert runs[0] == runs[1] == runs[2]
    assert len(set(runs[0])) > 1, runs[0]  # not one draw repeated for every question


def test_a_whole_answer_line_is_kept_or_refused_never_dropped(tmp_path):
    """Only a last line without its newline can be a cut write. A whole last answer that merely lacks its
    newline (a hand edit) counts as done and gets one; a whole line without ``question_id`` is not a
    cut write either: an error naming it, not silently dropped (the old reader dropped it)."""
    p = tmp_path / "a.jsonl"
    p.write_text('{"question_id": "a"}\n{"question_id": "b", "answer": "猫"}', encoding="utf-8")
    assert load_done(p) == ({"a", "b"}, False)
    assert p.read_text(encoding="utf-8").endswith('"猫"}\n')
    p.write_text('{"question_id": "a"}\n{"answer": "no id"}\n', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"a.jsonl:2: not a valid answer line \(no 'question_id'\)"):
        load_done(p)
    assert p.read_text(encoding="utf-8") == '{"question_id": "a"}\n{"answer": "no id"}\n'


# --------------------------------------------------------------------- prompts that do not fit the context
# the dummy counts words: its system message is 18, "question number N?" 3 more; a context of 26 words
# leaves 5 for a reply
_FITS_CTX = 26


def _context_questions(tmp_path: Path) -> Path:
    rows = [{"question_id": f"q{i}", "text": f"question number {i}?"} for i in range(5)]
    rows[2]["text"] = "far too long " * 20
    p = tmp_path / "questions.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_batch_reports_a_question_that_does_not_fit_and_answers_the_rest(tmp_path):
    """The over-long question is named with its numbers, nothing is written for it (so it is not done),
    every other question is answered (capped ones included), and a rerun asks only it."""
    from lamm.infer.chat import QuestionsRefused

    q, out = _context_questions(tmp_path), tmp_path / "answers.jsonl"
    engine = load_engine("dummy:constant=one two three four five six seven", context_length=_FITS_CTX)
    with pytest.raises(QuestionsRefused) as err:
        run_batch(engine, q, out, chunk=2)
    msg = str(err.value)
    assert "question_id 'q2' (78 tokens)" in msg and "context of 26 tokens" in msg and "rerun" in msg
    assert err.value.summary.answered == 4 and err.value.summary.refused == ["q2"]
    rows = _rows(out)
    assert [r["question_id"] for r in rows] == ["q0", "q1", "q3", "q4"]
    assert {r["answer"] for r in rows} == {"one two three four five"}  # capped at the room left
    bigger = load_engine("dummy:constant=one two three four five six seven", context_length=100)
    s = run_batch(bigger, q, out, chunk=2)
    assert (s.answered, s.skipped_done, s.refused) == (1, 4, [])
    assert [r["question_id"] for r in _rows(out)] == ["q0", "q1", "q3", "q4", "q2"]


def test_cli_batch_mode_names_the_question_that_does_not_fit(tmp_path):
    from lamm.cli.main import app

    q, out = _context_questions(tmp_path), tmp_path / "answers.jsonl"
    res = CliRunner().invoke(app, ["chat", "--model", "dummy", "-o", f"context_length={_FITS_CTX}",
                                   "--questions", str(q), "--answers", str(out)])
    assert res.exit_code == 2, res.output
    assert "question_id 'q2'" in res.output and len(_rows(out)) == 4


def test_terminal_chat_shows_a_context_refusal_and_goes_on():
    from lamm.infer.chat import run_interactive

    engine = load_engine("dummy:constant=one two three four five six seven", context_length=_FITS_CTX)
    session = ChatSession(engine)
    lines = iter(["far too long " * 20, "question number 1?", "and now?"])
    out: list[str] = []

    def read(_prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    run_interactive(session, read, out.append)
    text = "".join(out)
    assert "error: request 0: the prompt takes 78 tokens; the model's context is 26 tokens" in text
    assert "/reset clears the history" in text
    # the next question is answered, cut at the context, and the note says why
    note = "[the reply stopped at the end of the model's context (26 tokens)"
    assert f"lamm> one two three four five\n{note}" in text
    # with that reply in the history the third question no longer fits: refused, the session still alive
    assert text.count("error: request 0") == 2
    assert [m.role for m in session.messages] == ["user", "assistant"]
