"""Chat: a multi-turn session over one image or point cloud, the terminal loop, and batch JSONL mode.

A LAMM model sees one image or point cloud at the start of the first turn (``reference/LAMM.md`` §1),
so attaching new media starts a new conversation about it; text turns accumulate as history.

Batch mode reads questions (JSONL lines ``{"question_id", "text", "image" | "pcl"}``) and appends one
answer line per question (``{"question_id", "prompt", "answer", "model", "image" | "pcl"}``), flushed
to disk as each answer is made. Re-running with the same answers file resumes: answered ids are
skipped, and a truncated last line (a run killed mid-write) is cut off the file
(:func:`lamm.fileio.read_appended_jsonl`), which the summary reports.

Prompts that do not fit the model's context (the engine refuses them: ``ContextLengthError``): batch
mode answers every other question, writes nothing for the refused ones (so they are not "done", and a
rerun asks only them again), and then raises :class:`QuestionsRefused` naming each one's question_id
and token counts. The terminal chat prints the error and goes on (``/reset`` frees the history); a
reply that the context cut short is followed by a note saying so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from lamm.conversation import Conversation, MediaRef, Message
from lamm.fileio import FileFormatError, jsonl_lines, read_appended_jsonl, read_text_utf8
from lamm.infer.engine import ContextLengthError, Engine, GenerateRequest, GenerationSettings, context_filled
from lamm.media import MediaError

HELP = ("commands: /image PATH (new chat about an image), /pcl PATH (new chat about a point cloud), "
        "/reset (forget the history, keep the media), /quit")


class ChatSession:
    """History of one chat. :meth:`ask` streams the reply and records the turn."""

    def __init__(self, engine: Engine, settings: GenerationSettings | None = None,
                 task_type: str = "normal", system: str | None = None) -> None:
        self.engine = engine
        self.settings = settings or GenerationSettings()
        self.task_type, self.system = task_type, system
        self.media: MediaRef | None = None
        self.messages: list[Message] = []

    def attach(self, modality: str, path: str) -> None:
        """Load the media now (so a bad path fails here, not mid-answer) and start a new conversation."""
        ref = MediaRef(modality, path=path)  # type: ignore[arg-type]
        ref.load(self.engine.media_root)
        self.media = ref
        self.messages = []

    def reset(self) -> None:
        self.messages = []

    def conversation(self, question: str) -> Conversation:
        first = not self.messages
        msg = Message("user", question, [self.media] if first and self.media else [])
        return Conversation(self.messages + [msg], task_type=self.task_type, system=self.system)

    def ask(self, question: str) -> Iterator[str]:
        """Yield the reply in pieces; the turn enters the history once the reply is complete."""
        conv = self.conversation(question)
        pieces: list[str] = []
        for piece in self.engine.stream(GenerateRequest(conv, self.settings)):
            pieces.append(piece)
            yield piece
        reply = "".join(pieces).strip()
        self.messages = conv.messages + [Message("assistant", reply)]


def run_interactive(session: ChatSession, read: Callable[[str], str], write: Callable[[str], None]) -> None:
    """The terminal loop. ``read(prompt)`` returns a line (EOFError ends); ``write(text)`` prints
    without adding a newline. Errors of one turn (a bad path) are printed and the loop goes on."""
    from lamm.media import MediaError

    write(f"lamm chat — {session.engine.spec or type(session.engine).__name__}. {HELP}\n")
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("\n")
            return
        if not line:
            continue
        cmd, _, arg = line.partition(" ")
        try:
            if cmd in ("/quit", "/exit"):
                return
            if cmd == "/help":
                write(HELP + "\n")
            elif cmd in ("/image", "/pcl"):
                if not arg.strip():
                    write(f"usage: {cmd} PATH\n")
                    continue
                session.attach(cmd[1:], arg.strip())
                write(f"[new conversation about {cmd[1:]} {arg.strip()}]\n")
            elif cmd == "/reset":
                session.reset()
                write("[history cleared]\n")
            elif cmd.startswith("/"):
                write(f"unknown command {cmd}; {HELP}\n")
            else:
                write("lamm> ")
                for piece in session.ask(line):
                    write(piece)
                write("\n")
                ctx = context_filled(session.engine)
                if ctx is not None:
                    write(f"[the reply stopped at the end of the model's context ({ctx} tokens); "
                          "/reset clears the history]\n")
        except ContextLengthError as e:  # the question (with the history) does not fit: the session goes on
            write(f"\nerror: {e}; /reset clears the history\n")
        except (MediaError, ValueError, OSError) as e:
            write(f"error: {e}\n")


# -------------------------------------------------------------------------------------- batch mode
@dataclass
class BatchSummary:
    """What a batch run did: counts of questions, answers written now, ids skipped as already done."""

    questions: int = 0
    answered: int = 0
    skipped_done: int = 0
    dropped_truncated_line: bool = False
    answers_path: str = ""
    notes: list[str] = field(default_factory=list)
    #: question_ids whose prompt does not fit the model's context (nothing written for them)
    refused: list[str] = field(default_factory=list)


class QuestionsRefused(ValueError):
    """Batch questions whose prompt does not fit the model's context, raised once every other question
    was answered. Nothing was written for them, so a rerun asks only them again. ``summary``: the run's
    :class:`BatchSummary`; ``details``: ``(question_id, prompt tokens, context)`` per refused question."""

    def __init__(self, questions: str | os.PathLike, summary: BatchSummary,
                 details: list[tuple[str, int | None, int | None]]) -> None:
        self.summary, self.details = summary, details
        # counts are None where a remote server refused without giving them
        shown = ", ".join(f"question_id {q!r}" + (f" ({n} tokens)" if n is not None else "")
                          for q, n, _ in details[:10])
        more = f" and {len(details) - 10} more" if len(details) > 10 else ""
        ctx = details[0][2]
        context = f"context of {ctx} tokens" if ctx is not None else "context"
        super().__init__(
            f"{questions}: {len(details)} question{'s' if len(details) != 1 else ''} did not fit the model's "
            f"{context} and {'were' if len(details) != 1 else 'was'} not answered: "
            f"{shown}{more} (prompt tokens, image/point-cloud tokens included). The other {summary.answered} "
            f"were answered into {summary.answers_path} ({summary.skipped_done} were done before). Shorten "
            "those questions, give fewer images, or use a model with a longer context, then rerun: only they "
            "are asked again")


def read_questions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Questions JSONL; each line needs ``question_id`` and ``text`` and at most one of image / pcl."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: questions file not found")
    rows, seen = [], set()
    for lineno, line in jsonl_lines(read_text_utf8(p)):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise FileFormatError(f"{p}:{lineno}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise FileFormatError(f"{p}:{lineno}: expected a JSON object")
        for key in ("question_id", "text"):
            if key not in row:
                raise FileFormatError(f"{p}:{lineno}: missing field {key!r}")
        if not isinstance(row["text"], str) or not row["text"].strip():
            raise FileFormatError(f"{p}:{lineno}: field 'text' must be a non-empty string")
        if row.get("image") and row.get("pcl"):
            raise FileFormatError(f"{p}:{lineno}: give 'image' or 'pcl', not both")
        qid = str(row["question_id"])
        if qid in seen:
            raise FileFormatError(f"{p}:{lineno}: duplicate question_id {qid!r}")
        seen.add(qid)
        rows.append(row)
    return rows


def load_done(path: str | os.PathLike) -> tuple[set[str], bool]:
    """Ids already answered in ``path``, and whether a truncated last line was dropped.

    Read by :func:`lamm.fileio.read_appended_jsonl`: only a last line without its newline may be broken
    (a writer killed mid-line, even inside a multi-byte character); it is cut off the file so its
    question is answered again. A broken line elsewhere, or an answer line without ``question_id``,
    means the file is not ours to repair: an error naming the line.
    """
    fix = "fix or remove it, then run again"
    log = read_appended_jsonl(path, repair=True, what="answer line", fix=fix)
    done = set()
    for n, row in zip(log.line_numbers, log.rows):
        if "question_id" not in row:
            raise FileFormatError(f"{path}:{n}: not a valid answer line (no 'question_id'); {fix}")
        done.add(str(row["question_id"]))
    return done, log.torn_line is not None


def question_request(row: dict[str, Any], settings: GenerationSettings, task_type: str) -> GenerateRequest:
    """The request of one batch question. With sampling, its seed comes from ``settings.seed`` (0 when
    none is given: batch runs are reproducible) and the question id, so questions draw independently and
    a question's answer is the same whatever the chunking or a resume."""
    from lamm.model.encoders.preprocess import sample_seed

    media = [MediaRef(k, path=str(row[k])) for k in ("image", "pcl") if row.get(k)]  # type: ignore[arg-type]
    conv = Conversation.single_turn(row["text"], media, task_type=row.get("task_type", task_type),
                                    id=str(row["question_id"]))
    if not settings.greedy:
        settings = replace(settings, seed=sample_seed(str(row["question_id"]), settings.seed or 0))
    return GenerateRequest(conv, settings)


def run_batch(engine: Engine, questions: str | os.PathLike, answers: str | os.PathLike,
              settings: GenerationSettings | None = None, task_type: str = "normal", chunk: int = 16,
              progress: Callable[[int, int], None] | None = None) -> BatchSummary:
    """Answer every question not yet in ``answers``, ``chunk`` at a time (one engine call per chunk,
    which the engine batches); each answer line is appended and flushed as soon as it exists.

    ``progress(done, total)`` is called after each chunk. Raises ``ValueError`` for ``chunk < 1`` or
    ``settings.max_new_tokens < 1`` before anything is read or written. A question whose prompt does not
    fit the model's context is not answered (no line: it stays to do) and the run goes on with the
    others; at the end :class:`QuestionsRefused` names every such question. A reply the context cut
    short is written (the engine capped ``max_new_tokens`` at the room left).
    """
    settings = settings or GenerationSettings()
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 (questions per engine call), got {chunk}")
    if settings.max_new_tokens < 1:
        # an empty answer would be written and then count as done on every resume
        raise ValueError(f"max_new_tokens must be at least 1, got {settings.max_new_tokens}")
    rows = read_questions(questions)
    done, dropped = load_done(answers)
    todo = [r for r in rows if str(r["question_id"]) not in done]
    summary = BatchSummary(questions=len(rows), skipped_done=len(rows) - len(todo),
                           dropped_truncated_line=dropped, answers_path=str(answers))
    if dropped:
        summary.notes.append(f"{answers}: dropped a truncated last line (an interrupted write); "
                             "its question is answered again")
    refused: list[tuple[str, int | None, int | None]] = []  # (question_id, prompt tokens, context) of unfitting prompts
    Path(answers).parent.mkdir(parents=True, exist_ok=True)
    with open(answers, "a", encoding="utf-8") as fh:
        for start in range(0, len(todo), chunk):
            part = todo[start:start + chunk]
            try:
                reqs = [question_request(r, settings, task_type) for r in part]
                answered = _answer_fitting(engine, part, reqs, refused)
            except MediaError as e:
                raise MediaError(f"{questions}: {_culprits(part, str(e))}: {e}; the answers written so far "
                                 "are kept — fix the media path (or --root) and rerun to resume") from None
            for row, text in answered:
                _append(fh, row, text, engine.spec)
                summary.answered += 1
            if progress:
                progress(summary.skipped_done + summary.answered, len(rows))
    if refused:
        summary.refused = [q for q, _, _ in refused]
        raise QuestionsRefused(questions, summary, refused)
    return summary


def _answer_fitting(engine: Engine, part: list[dict[str, Any]], reqs: list[GenerateRequest],
                    refused: list[tuple[str, int | None, int | None]]) -> list[tuple[dict[str, Any], str]]:
    """``(question, answer)`` for the questions of one chunk whose prompt fits the context. The engine
    refuses a whole call that holds an over-long prompt (before generating) and names them all: those
    go to ``refused`` and the others are asked again without them."""
    try:
        texts = engine.generate(reqs)
    except ContextLengthError as e:
        bad = set(e.indices)
        refused.extend((str(part[o.index]["question_id"]), o.prompt_tokens, e.context_length)
                       for o in e.refused)
        keep = [i for i in range(len(part)) if i not in bad]
        if not keep:
            return []
        return _answer_fitting(engine, [part[i] for i in keep], [reqs[i] for i in keep], refused)
    return list(zip(part, texts))


def _culprits(part: list[dict[str, Any]], message: str) -> str:
    """The questions of a chunk whose media path the error names (every question of the chunk if none)."""
    named = [r for r in part if any(r.get(k) and str(r[k]) in message for k in ("image", "pcl"))]
    ids = [repr(r["question_id"]) for r in (named or part)]
    return ("question_id " if len(ids) == 1 else "one of question_id ") + ", ".join(ids)


def _append(fh: TextIO, row: dict[str, Any], answer: str, model: str) -> None:
    out = {"question_id": row["question_id"], "prompt": row["text"], "answer": answer, "model": model}
    for k in ("image", "pcl"):
        if row.get(k):
            out[k] = row[k]
    fh.write(json.dumps(out, ensure_ascii=False) + "\n")
    fh.flush()
    os.fsync(fh.fileno())
