"""Run C1–C3 generation: concurrent engine calls, validation with retries, token and cost accounting,
and resume from an append-only JSONL output.

Resume contract: every accepted record is appended (and fsync'ed) to ``OUT.jsonl`` the moment it is
validated; a restarted run reads the ids already there and only asks for the rest, so a killed build
continues without duplicating or losing records. A line cut off by a kill mid-write is truncated away
(its record is simply generated again; the summary's ``torn_line_dropped`` says so) by the shared
reader :func:`lamm.fileio.read_appended_jsonl`; any other damaged line is an error naming it. Every
attempt is logged to ``OUT.log.jsonl`` (a cut last event is cut off before the run appends to it); the
totals go to ``OUT.summary.json``.

A resumed record keeps only its generated turns: its media path and provenance are taken from the
current source record (a fixed ``image_prefix`` reaches every record). Each record stores the SHA-256
of the annotation context it was written from (``generator.context_sha256``); when the current context
differs (the annotations changed), the record is generated again, appended, and counted as
``regenerated``. A later line of an id supersedes an earlier one.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lamm.config import Config
from lamm.conversation import Conversation, Message
from lamm.data.builders.base import pick, record_id, rng_for, stable_int
from lamm.fileio import (
    AppendedJsonl,
    FileFormatError,
    append_jsonl,
    cut_torn_tail,
    read_appended_jsonl,
    write_json_atomic,
)
from lamm.infer.engine import Engine, GenerateRequest, GenerationSettings

from .context import render_context
from .prompts import PromptPack
from .validate import InvalidOutput, parse_reply


class GenerationError(RuntimeError):
    """Too many records failed; the message gives the counts, the main reasons and the log file."""


class GenerateJob(Config):
    """One C1–C3 generation job of a build config."""

    name: str
    kind: Literal["conversation", "description", "commonsenseqa"]
    source: str
    engine: str = Field(description="engine spec, e.g. openai:gpt-4o-mini@https://api.openai.com/v1")
    engine_options: dict[str, Any] = Field(default_factory=dict)
    prompt_pack: str | None = None  # bundled name or YAML path; default: the kind's bundled pack
    max_records: int | None = Field(None, ge=0)
    concurrency: int = Field(4, ge=1)
    batch_size: int = Field(1, ge=1)
    retries: int = Field(2, ge=0)
    retry_wait: float = Field(1.0, ge=0)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(1024, ge=1)
    max_objects: int = Field(40, ge=1)
    max_failed_fraction: float = Field(0.0, ge=0, le=1)
    price_prompt_per_million: float = Field(0.0, ge=0)
    price_completion_per_million: float = Field(0.0, ge=0)


@dataclass
class Job:
    id: str
    record: dict[str, Any]
    conversation: Conversation
    question: tuple[str, str] | None  # description packs: (question id, text)
    context_sha256: str = ""  # of the rendered annotations; a changed one makes a done record stale


@dataclass
class GenerationSummary:
    jobs: int = 0
    already_done: int = 0
    regenerated: int = 0  # done records whose annotation context changed since, generated again
    torn_line_dropped: bool = False  # the output's last line was cut by a kill: cut off, generated again
    generated: int = 0
    failed: int = 0
    not_applicable: int = 0
    attempts: int = 0
    invalid_outputs: int = 0
    engine_errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_source: str = "estimate"
    cost_usd: float = 0.0
    seconds: float = 0.0
    prompt_pack: str = ""
    model: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _estimate_tokens(text: str) -> int:
    # ~4 characters per token for English with BPE tokenizers; used when the backend reports nothing
    return max(1, len(text) // 4)


def reason_key(message: str) -> str:
    """A short class of a failure message for counting: the turn number, details and digits dropped.

    >>> reason_key("turn 3: mentions 'the caption' (answers must read as if ...)")
    "mentions 'the caption'"
    >>> reason_key("turn 1: 412 words, outside [2, 200]")
    'N words, outside [N, N]'
    """
    m = re.sub(r"^(?:turn \d+|description): ", "", message)
    m = re.split(r": | \(", m, maxsplit=1)[0]
    return re.sub(r"\d+", "N", m)[:80]


def plan_jobs(
    records: list[dict[str, Any]], pack: PromptPack, seed: int, max_objects: int = 40
) -> tuple[list[Job], int]:
    """The jobs for ``records`` (in order) and the number of records with nothing to describe."""
    jobs, skipped = [], 0
    shots: list[Message] = []
    for ctx, resp in pack.few_shot:
        shots += [Message("user", ctx), Message("assistant", resp)]
    for rec in records:
        if pack.modality not in rec:
            other = "pcl" if pack.modality == "image" else "image"
            raise ValueError(
                f"source record {rec.get('src_dataset')}:{rec.get('src_id')}: prompt pack {pack.name!r} "
                f"is for {pack.modality!r} records but the record has {other!r}"
            )
        ctx = render_context(rec, max_objects=max_objects)
        if not ctx:
            skipped += 1
            continue
        rid = record_id(rec["src_dataset"], rec["src_id"], pack.kind)
        question = None
        if pack.output == "description":
            question = pick(
                rng_for(seed, "generate", pack.name, rec["src_dataset"], rec["src_id"]), list(pack.questions)
            )
        conv = Conversation([*shots, Message("user", ctx)], task_type="normal", system=pack.system, id=rid)
        jobs.append(Job(rid, rec, conv, question, context_hash(ctx)))
    return jobs, skipped


def context_hash(context: str) -> str:
    """SHA-256 (hex) of a rendered annotation context: what a generated record was written from."""
    return hashlib.sha256(context.encode("utf-8")).hexdigest()


def _read_done(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], AppendedJsonl]:
    """:func:`read_done` and what the read found (a torn last line cut off, ...)."""
    p = Path(path)
    fix = "fix or delete that line to resume"
    log = read_appended_jsonl(p, repair=True, what="record line", fix=fix)
    done: dict[str, dict[str, Any]] = {}
    for n, rec in zip(log.line_numbers, log.rows):
        if "id" not in rec:
            raise FileFormatError(f"{p}:{n}: not a valid record line (no 'id'); {fix}")
        done[str(rec["id"])] = rec
    return done, log


def read_done(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records already in an append-only output, by id (a later line of an id supersedes an earlier
    one: a regenerated record is appended). Read by :func:`lamm.fileio.read_appended_jsonl`: a torn
    last line (a kill mid-write) is cut off the file and its record generated again; a damaged line
    elsewhere, or a record without ``id``, is an error naming the line."""
    return _read_done(path)[0]


class Generator:
    """Generates records for jobs with one engine and one pack; see the module docstring."""

    def __init__(self, engine: Engine, pack: PromptPack, job: GenerateJob, seed: int = 0) -> None:
        self.engine, self.pack, self.cfg, self.seed = engine, pack, job, seed
        self.summary = GenerationSummary(prompt_pack=pack.ref, model=engine.spec or engine.fingerprint())
        self._est_prompt = self._est_completion = 0

    def _request(self, job: Job, attempt: int) -> GenerateRequest:
        s = GenerationSettings(
            max_new_tokens=self.cfg.max_new_tokens,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            seed=stable_int(self.seed, job.id, attempt) % 2**31,
        )
        return GenerateRequest(job.conversation, s)

    def _call(self, chunk: list[Job], attempts: Counter) -> list[tuple[Job, str | Exception]]:
        reqs = [self._request(j, attempts[j.id]) for j in chunk]
        try:
            replies = list(self.engine.generate(reqs))
        except Exception as e:  # noqa: BLE001 - any engine failure is counted, logged and retried
            if len(chunk) == 1:
                return [(chunk[0], e)]
            return [r for j in chunk for r in self._call([j], attempts)]  # isolate the failing request
        if len(replies) != len(chunk):
            # zip would silently drop the unanswered jobs: a broken backend, not a bad reply to retry
            raise GenerationError(
                f"backend {self.summary.model!r} ({type(self.engine).__name__}) returned {len(replies)} "
                f"replies for {len(chunk)} requests (ids {chunk[0].id!r}...); the engine contract is one "
                "reply per request, in order: fix the backend"
            )
        return list(zip(chunk, replies))

    def _record(
        self, job: Job, turns: list[dict[str, str]], n_attempts: int, model: str | None = None
    ) -> dict[str, Any]:
        """The LAMM record of ``job``: media and provenance from the job's source record, ``turns``
        as generated (description packs: the assistant turn; the seeded question is put before it)."""
        rec, pack = job.record, self.pack
        template_id = pack.ref
        if job.question is not None:
            turns = [{"from": "human", "value": job.question[1]}, *turns]
            template_id += f":{job.question[0]}"
        return {
            "id": job.id,
            pack.modality: rec[pack.modality],
            "task_type": pack.task_type,
            "conversations": turns,
            "src_dataset": rec["src_dataset"],
            "src_id": str(rec["src_id"]),
            "builder": f"generate.{pack.kind}@{pack.version}",
            "template_id": template_id,
            "seed": self.seed,
            "generator": {
                "model": model or self.summary.model,
                "attempts": n_attempts,
                "context_sha256": job.context_sha256,
            },
        }

    def _resumed(self, job: Job, stored: dict[str, Any]) -> dict[str, Any] | None:
        """The done record ``stored`` rebuilt for ``job``: its generated turns with the current media
        and provenance; None when it was written from other annotations (it must be generated again)."""
        gen = stored.get("generator") if isinstance(stored.get("generator"), dict) else {}
        made_from = gen.get("context_sha256")
        if made_from and job.context_sha256 and made_from != job.context_sha256:
            return None
        turns = stored.get("conversations")
        if not isinstance(turns, list) or not turns:
            return None
        if job.question is not None:  # the question is ours, not generated: rebuilt from the job
            turns = [t for t in turns if isinstance(t, dict) and t.get("from") == "gpt"]
            if not turns:
                return None
        out = self._record(job, turns, int(gen.get("attempts", 1)), model=gen.get("model"))
        if not made_from:  # written before hashes were stored: keep it, it cannot be checked
            out["generator"]["context_sha256"] = ""
        return out

    def run(
        self, jobs: list[Job], out_path: str | os.PathLike, progress: Callable[[int, int], None] | None = None
    ) -> list[dict[str, Any]]:
        """Generate every job not yet in ``out_path``; return all records of ``jobs`` in job order."""
        t0 = time.time()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        log = out.with_name(out.stem + ".log.jsonl")
        done, read = _read_done(out)
        cut_torn_tail(log)  # a kill may have cut the log's last event too: the next one starts a line
        for rec in done.values():
            # resuming must not mix records made from another prompt or seed into one dataset
            made_with = str(rec.get("template_id", "")).split(":")[0]
            if made_with != self.pack.ref or rec.get("seed") != self.seed:
                raise GenerationError(
                    f"{out}: record {rec.get('id')!r} was made with prompt pack {made_with!r} and seed "
                    f"{rec.get('seed')!r}, but this run uses {self.pack.ref!r} and seed {self.seed}; move "
                    "the file away to start afresh, or restore the pack and seed to resume"
                )
        s = self.summary
        s.jobs = len(jobs)
        s.torn_line_dropped = read.torn_line is not None
        for j in jobs:
            if j.id in done:
                fresh = self._resumed(j, done[j.id])
                if fresh is None:
                    del done[j.id]
                    s.regenerated += 1
                else:
                    done[j.id] = fresh
        s.already_done = sum(j.id in done for j in jobs)
        pending = [j for j in jobs if j.id not in done]
        order = {j.id: i for i, j in enumerate(jobs)}
        attempts: Counter = Counter()
        reasons: Counter = Counter()
        failed: set[str] = set()
        if progress:
            progress(s.already_done, len(jobs))
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            while pending:
                bs = self.cfg.batch_size
                futures = [
                    pool.submit(self._call, pending[i : i + bs], attempts) for i in range(0, len(pending), bs)
                ]
                retry: list[Job] = []
                for fut in as_completed(futures):
                    for job, reply in fut.result():
                        attempts[job.id] += 1
                        s.attempts += 1
                        self._est_prompt += sum(
                            _estimate_tokens(m.content) for m in job.conversation.messages
                        ) + _estimate_tokens(self.pack.system)
                        event: dict[str, Any] = {"id": job.id, "attempt": attempts[job.id]}
                        try:
                            if isinstance(reply, Exception):
                                s.engine_errors += 1
                                raise InvalidOutput(f"engine error: {type(reply).__name__}: {reply}")
                            self._est_completion += _estimate_tokens(reply)
                            turns = parse_reply(reply, self.pack)
                        except InvalidOutput as e:
                            if not isinstance(reply, Exception):
                                s.invalid_outputs += 1
                            reasons[reason_key(str(e))] += 1
                            event.update(
                                status="error" if isinstance(reply, Exception) else "invalid",
                                reason=str(e)[:500],
                            )
                            append_jsonl(log, event)
                            if attempts[job.id] <= self.cfg.retries:
                                retry.append(job)
                            else:
                                failed.add(job.id)
                            continue
                        rec = self._record(job, turns, attempts[job.id])
                        append_jsonl(out, rec)  # durable before it counts as done
                        done[job.id] = rec
                        s.generated += 1
                        append_jsonl(log, {**event, "status": "ok"})
                        if progress:
                            progress(len(done), len(jobs))
                if retry and self.cfg.retry_wait:
                    time.sleep(self.cfg.retry_wait)
                pending = sorted(retry, key=lambda j: order[j.id])
        s.failed = len(failed)
        s.reasons = dict(reasons.most_common(20))
        u = self.engine.usage
        if u.prompt_tokens or u.completion_tokens:
            s.prompt_tokens, s.completion_tokens, s.tokens_source = (
                u.prompt_tokens,
                u.completion_tokens,
                "backend",
            )
        else:
            s.prompt_tokens, s.completion_tokens = self._est_prompt, self._est_completion
        s.cost_usd = round(
            s.prompt_tokens / 1e6 * self.cfg.price_prompt_per_million
            + s.completion_tokens / 1e6 * self.cfg.price_completion_per_million,
            6,
        )
        s.seconds = round(time.time() - t0, 3)
        write_json_atomic(out.with_name(out.stem + ".summary.json"), s.to_json())
        if jobs and s.failed / len(jobs) > self.cfg.max_failed_fraction:
            top = ", ".join(f"{k} ({v})" for k, v in reasons.most_common(3))
            raise GenerationError(
                f"{out}: {s.failed} of {len(jobs)} records failed after {self.cfg.retries + 1} "
                f"attempt(s), above max_failed_fraction={self.cfg.max_failed_fraction}; main "
                f"reasons: {top}; details in {log}. Rerun to retry them (done records are kept)."
            )
        return [done[j.id] for j in jobs if j.id in done]
