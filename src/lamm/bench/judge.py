"""The LLM judge: ChEF's *language performance* desideratum and LAMM's pairwise GPT ranking, done right.

A judge is any engine (``lamm.infer.engine.load_engine``: ``openai:MODEL@URL``, ``hf:...``, ``lamm:...``,
``dummy:constant=...``), asked through the one prompt builder (a text-only
:class:`~lamm.conversation.Conversation`), greedily, with the versioned prompts of
``lamm.bench.judge_prompts``.

* **Single-answer grading** (:func:`grade_answers`): question + reference + answer → a score 0–10.
* **Pairwise** (:func:`compare_answers`): question + reference + two answers → ``"s1 s2"``, asked in
  *both* orders (A as answer 1, then B as answer 1); per sample the outcome is ``A``, ``B``, ``tie`` (also
  when the two orders disagree) or ``failed`` (a call failed or a reply was unreadable in either order).

A failed judgement is a third outcome: counted and reported, never scored 0 or 1. Every judge reply is
stored in the SQLite :class:`~lamm.bench.cache.ResponseCache` under (judge fingerprint, ``judge:<prompt
id>:<prompt sha>``, a SHA-256 of the rendered request), so a rerun asks nothing again. Failed calls are not
cached (a rerun retries them); unreadable replies are (greedy decoding would give them again).

Failed calls: the ``openai`` backend retries connection errors, timeouts, 408/409/429 and 5xx, then raises
``OpenAIError`` (and counts ``engine.usage.failures``); it fails a whole ``generate`` batch on the first
failure. The judge therefore asks a batch, and when it fails re-asks its requests one by one, so only the
failing ones become failed judgements; after ``max_consecutive_failures`` failed calls in a row it stops
with :class:`JudgeUnavailableError` (a dead server). Other exceptions (a bug, out of memory) propagate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lamm.bench.judge_prompts import JudgePrompt, get_prompt, parse_pair_scores, parse_rating
from lamm.bench.metrics.intervals import DEFAULT_N_BOOT, bootstrap_ratios
from lamm.conversation import Conversation
from lamm.infer.engine import Engine, GenerateRequest, GenerationSettings, load_engine

DEFAULT_MAX_NEW_TOKENS = 512
DEFAULT_BATCH_SIZE = 16
DEFAULT_MAX_CONSECUTIVE_FAILURES = 16


class JudgeUnavailableError(RuntimeError):
    """The judge failed too many calls in a row (a server down, a wrong URL or key): stop instead of
    failing every remaining judgement. Replies received so far are in the cache; a rerun resumes."""


def call_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this judge call failed" (after the backend's own retries)."""
    import httpx

    from lamm.infer.backends.openai import OpenAIError

    # a 200 whose body is not JSON surfaces as a JSONDecodeError from httpx's response.json()
    return (OpenAIError, httpx.HTTPError, json.JSONDecodeError)


@dataclass(frozen=True)
class Reply:
    """One judge reply: ``text`` (``None`` when the call failed, with ``error``) and whether it was cached."""

    text: str | None
    error: str | None = None
    cached: bool = False


def request_key(prompt: JudgePrompt, user_text: str, max_new_tokens: int) -> str:
    """The cache key of one judge request: a SHA-256 (32 hex) of the exact rendered request.

    The rendered text holds the judged texts in their order, so ``(A, B)`` and ``(B, A)`` get different keys
    and the same comparison asked again (by any run pair) hits the cache.
    """
    blob = json.dumps({"system": prompt.system, "user": user_text, "max_new_tokens": max_new_tokens},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


class Judge:
    """An engine used as a judge, with the response cache.

    ``engine``: an :class:`Engine` or a spec (``engine_options`` go to ``load_engine``); ``cache``: a
    :class:`~lamm.bench.cache.ResponseCache` or ``None`` (no caching); ``max_new_tokens`` of each reply;
    ``batch_size`` requests per engine call; ``max_consecutive_failures``: raise
    :class:`JudgeUnavailableError` after that many failed calls in a row (0: never). ``n_asked`` /
    ``n_cached`` / ``n_call_failures`` count what :meth:`ask` did over the judge's lifetime.
    """

    def __init__(self, engine: Engine | str, *, cache: Any = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                 batch_size: int = DEFAULT_BATCH_SIZE, engine_options: dict[str, Any] | None = None,
                 progress: Callable[[int], None] | None = None,
                 max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES) -> None:
        self.engine = engine if isinstance(engine, Engine) else load_engine(engine, **(engine_options or {}))
        self.spec = self.engine.spec or type(self.engine).__name__
        self.fingerprint = self.engine.fingerprint()
        self.cache, self.progress = cache, progress
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"judge: max_new_tokens ({max_new_tokens}) and batch_size ({batch_size}) must be >= 1")
        self.max_new_tokens, self.batch_size = int(max_new_tokens), int(batch_size)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.n_asked = self.n_cached = self.n_call_failures = self._failed_in_a_row = 0

    def _request(self, prompt: JudgePrompt, user_text: str) -> GenerateRequest:
        conv = Conversation.single_turn(user_text, system=prompt.system)
        return GenerateRequest(conv, GenerationSettings(max_new_tokens=self.max_new_tokens, temperature=0.0))

    def _store(self, prompt: JudgePrompt, bucket: str, keys: list[str], replies: list[Reply],
               text_of: dict[str, str], out: dict[str, Reply]) -> None:
        """Commit the good replies to the cache (before anything is scored), count, report progress."""
        good = {k: {"answer": r.text, "prompt": text_of[k], "extra": {"prompt_id": prompt.id}}
                for k, r in zip(keys, replies) if r.text is not None}
        if self.cache is not None:
            self.cache.put_many(self.fingerprint, bucket, good)
        self.n_asked += len(keys)
        self.n_call_failures += len(keys) - len(good)
        out.update(zip(keys, replies))
        if self.progress:
            self.progress(len(keys))

    def _ask_batch(self, prompt: JudgePrompt, bucket: str, keys: list[str], text_of: dict[str, str],
                   out: dict[str, Reply]) -> None:
        try:
            texts = self.engine.generate([self._request(prompt, text_of[k]) for k in keys])
        except call_errors() as e:
            if len(keys) > 1:
                # the batch failed as a whole: re-ask one by one, so only the failing requests fail
                for k in keys:
                    self._ask_batch(prompt, bucket, [k], text_of, out)
                return
            self._store(prompt, bucket, keys, [Reply(None, f"judge call failed: {e}")], text_of, out)
            self._failed_in_a_row += 1
            if 0 < self.max_consecutive_failures <= self._failed_in_a_row:
                raise JudgeUnavailableError(
                    f"judge {self.spec!r}: {self._failed_in_a_row} calls failed in a row (last: {e}); check the "
                    "server, its URL and key, then rerun: the replies received so far are cached") from e
            return
        self._failed_in_a_row = 0
        if len(texts) != len(keys):
            raise RuntimeError(f"judge engine {self.spec!r} returned {len(texts)} replies for {len(keys)} requests")
        # an empty reply is a glitch of the server (or a content filter), not a verdict: not cached either
        replies = [Reply(t) if t.strip() else Reply(None, "judge returned an empty reply") for t in texts]
        self._store(prompt, bucket, keys, replies, text_of, out)

    def ask(self, prompt: JudgePrompt, user_texts: Sequence[str]) -> list[Reply]:
        """One reply per rendered user message, in order: from the cache, else from the engine."""
        keys = [request_key(prompt, u, self.max_new_tokens) for u in user_texts]
        bucket = f"judge:{prompt.id}:{prompt.sha256}"
        cached = self.cache.get_many(self.fingerprint, bucket, keys) if self.cache is not None else {}
        out: dict[str, Reply] = {k: Reply(p["answer"], cached=True) for k, p in cached.items()}
        todo = list(dict.fromkeys(k for k in keys if k not in out))
        text_of = dict(zip(keys, user_texts))
        self.n_cached += sum(k in cached for k in keys)
        if self.progress and len(keys) > len(todo):
            self.progress(len(keys) - len(todo))
        for start in range(0, len(todo), self.batch_size):
            self._ask_batch(prompt, bucket, todo[start:start + self.batch_size], text_of, out)
        return [out[k] for k in keys]


# ----------------------------------------------------------------------------------- single answer

@dataclass(frozen=True)
class SingleItem:
    """One answer to grade: the sample id, the question, the reference (ground truth) and the answer."""

    id: str
    question: str
    reference: str
    answer: str


@dataclass(frozen=True)
class SingleJudgement:
    """``score`` in [0, 10], or ``None`` with ``error`` (a failed judgement); ``reply`` is the judge's text."""

    id: str
    score: float | None
    error: str | None
    reply: str | None


def grade_answers(judge: Judge, items: Sequence[SingleItem], prompt_id: str = "single-v1") -> list[SingleJudgement]:
    """Grade each answer 0–10 against its reference; one judgement per item, in order."""
    prompt = get_prompt(prompt_id, "single")
    users = [prompt.render(question=i.question, reference=i.reference, answer=i.answer) for i in items]
    out = []
    for item, reply in zip(items, judge.ask(prompt, users)):
        if reply.text is None:
            out.append(SingleJudgement(item.id, None, reply.error, None))
            continue
        r = parse_rating(reply.text)
        out.append(SingleJudgement(item.id, r.score, None if r.score is not None else f"unparsable: {r.error}",
                                   reply.text))
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _interval(pair: tuple[float, float]) -> list[float | None]:
    return [_finite(pair[0]), _finite(pair[1])]


def failure_kinds(errors: Sequence[str | None]) -> dict[str, int]:
    """Counts of failed judgements by kind: ``call`` (the engine failed) and ``unparsable`` (bad reply)."""
    errs = [e for e in errors if e]
    unparsable = sum(e.startswith("unparsable") for e in errs)
    return {"call": len(errs) - unparsable, "unparsable": unparsable}


def summarize_scores(judgements: Sequence[SingleJudgement], *, seed: int = 0,
                     n_boot: int = DEFAULT_N_BOOT) -> dict[str, Any]:
    """Mean score (0–10) over the scored judgements, its seeded percentile-bootstrap 95% interval, counts.

    Failed judgements are excluded from the mean and counted in ``failures`` (``failure_kinds`` splits them).
    """
    scores = np.array([j.score for j in judgements if j.score is not None], dtype=float)
    ci = bootstrap_ratios({"mean": (scores, np.ones_like(scores), 1.0)}, n_boot=n_boot, seed=seed)["mean"]
    return {"n": len(judgements), "n_scored": int(scores.size), "failures": len(judgements) - int(scores.size),
            "failure_kinds": failure_kinds([j.error for j in judgements]),
            "mean_score": _finite(scores.mean()) if scores.size else None, "ci": _interval(ci),
            "scale": "0-10"}


# ---------------------------------------------------------------------------------------- pairwise

@dataclass(frozen=True)
class PairItem:
    """Two models' answers (A and B) to the same sample, with its question and reference."""

    id: str
    question: str
    reference: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class OrderVerdict:
    """The judge's verdict in one order: ``scores`` = (answer 1, answer 2), or ``None`` with ``error``."""

    scores: tuple[float, float] | None
    error: str | None
    reply: str | None

    @property
    def preferred_position(self) -> int | None:
        """1 or 2 (the position whose answer scored higher), 0 for equal scores, ``None`` when failed."""
        if self.scores is None:
            return None
        s1, s2 = self.scores
        return 1 if s1 > s2 else 2 if s2 > s1 else 0


@dataclass(frozen=True)
class PairJudgement:
    """``outcome`` ∈ {``A``, ``B``, ``tie``, ``failed``}; ``ab``: A shown as answer 1; ``ba``: B shown first."""

    id: str
    outcome: str
    ab: OrderVerdict
    ba: OrderVerdict


def combine_orders(ab: tuple[float, float] | None, ba: tuple[float, float] | None) -> str:
    """The outcome of one sample from its two orders' scores (``ab``: A is answer 1; ``ba``: B is answer 1).

    Either order missing → ``failed``; both orders prefer the same model (or both tie) → that model (or
    ``tie``); any disagreement — including a win in one order and a tie in the other — → ``tie``.

    >>> combine_orders((8, 5), (4, 9)), combine_orders((8, 5), (8, 5)), combine_orders((8, 5), None)
    ('A', 'tie', 'failed')
    """
    if ab is None or ba is None:
        return "failed"
    pref_ab, pref_ba = _model_preferences(ab, ba)
    return pref_ab if pref_ab == pref_ba else "tie"


def _model_preferences(ab: tuple[float, float], ba: tuple[float, float]) -> tuple[str, str]:
    """Which model each order preferred (``A``, ``B`` or ``tie``), undoing the swap of the second order."""
    pref_ab = "A" if ab[0] > ab[1] else "B" if ab[1] > ab[0] else "tie"
    pref_ba = "B" if ba[0] > ba[1] else "A" if ba[1] > ba[0] else "tie"
    return pref_ab, pref_ba


def _verdict(reply: Reply) -> OrderVerdict:
    if reply.text is None:
        return OrderVerdict(None, reply.error, None)
    p = parse_pair_scores(reply.text)
    return OrderVerdict(p.scores, None if p.scores is not None else f"unparsable: {p.error}", reply.text)


def compare_answers(judge: Judge, items: Sequence[PairItem], prompt_id: str = "pairwise-v1") -> list[PairJudgement]:
    """Judge each pair in both orders and combine them (:func:`combine_orders`); one judgement per item."""
    prompt = get_prompt(prompt_id, "pairwise")
    users = []
    for i in items:
        users.append(prompt.render(question=i.question, reference=i.reference, answer_1=i.answer_a, answer_2=i.answer_b))
        users.append(prompt.render(question=i.question, reference=i.reference, answer_1=i.answer_b, answer_2=i.answer_a))
    replies = judge.ask(prompt, users)
    out = []
    for k, item in enumerate(items):
        ab, ba = _verdict(replies[2 * k]), _verdict(replies[2 * k + 1])
        out.append(PairJudgement(item.id, combine_orders(ab.scores, ba.scores), ab, ba))
    return out


def summarize_pairs(judgements: Sequence[PairJudgement], *, seed: int = 0,
                    n_boot: int = DEFAULT_N_BOOT) -> dict[str, Any]:
    """Win rate of A over B (percent) and the judge's position bias, over non-failed samples.

    ``win_rate`` = 100 (wins + ties / 2) / (wins + losses + ties); ``win_rate_no_ties`` = 100 wins /
    (wins + losses); both with seeded percentile-bootstrap 95% intervals over samples. ``failures`` are
    counted apart and enter no rate. Position bias: ``first_position_rate`` = 100 × (order verdicts that
    preferred answer 1) / (order verdicts with a preference), over every readable order (0.5 × 100 is
    unbiased); ``inconsistent`` counts samples whose two orders disagree (scored as ties);
    ``first_both`` / ``second_both`` count samples where the judge preferred the same *position* in both
    orders. ``mean_score_a`` / ``mean_score_b``: each model's 0–10 score averaged over both orders.
    """
    outcomes = [j.outcome for j in judgements]
    counts = {k: outcomes.count(k) for k in ("A", "B", "tie", "failed")}
    done = [j for j in judgements if j.outcome != "failed"]
    win = np.array([1.0 if j.outcome == "A" else 0.5 if j.outcome == "tie" else 0.0 for j in done])
    decisive = np.array([float(j.outcome in ("A", "B")) for j in done])
    a_won = np.array([float(j.outcome == "A") for j in done])
    ci = bootstrap_ratios({"win_rate": (win, np.ones_like(win), 100.0),
                           "win_rate_no_ties": (a_won, decisive, 100.0)}, n_boot=n_boot, seed=seed)
    positions = [v.preferred_position for j in judgements for v in (j.ab, j.ba)]
    n_pref = sum(p in (1, 2) for p in positions)
    both = [(j.ab.preferred_position, j.ba.preferred_position) for j in done]
    inconsistent = sum(len(set(_model_preferences(j.ab.scores, j.ba.scores))) > 1 for j in done)  # type: ignore[arg-type]
    mean_a = [(j.ab.scores[0] + j.ba.scores[1]) / 2 for j in done]  # type: ignore[index]
    mean_b = [(j.ab.scores[1] + j.ba.scores[0]) / 2 for j in done]  # type: ignore[index]
    return {
        "n": len(judgements), "wins": counts["A"], "losses": counts["B"], "ties": counts["tie"],
        "failures": counts["failed"],
        "failure_kinds": failure_kinds([v.error for j in judgements for v in (j.ab, j.ba)]),
        "win_rate": _finite(100.0 * win.mean()) if win.size else None,
        "win_rate_no_ties": _finite(100.0 * a_won.sum() / decisive.sum()) if decisive.sum() else None,
        "ci": {k: _interval(v) for k, v in ci.items()},
        "mean_score_a": _finite(float(np.mean(mean_a))) if mean_a else None,
        "mean_score_b": _finite(float(np.mean(mean_b))) if mean_b else None,
        "position_bias": {
            "first_position_rate": _finite(100.0 * positions.count(1) / n_pref) if n_pref else None,
            "order_verdicts_with_preference": n_pref, "order_verdicts_equal": positions.count(0),
            "inconsistent": inconsistent,
            "first_both": sum(b == (1, 1) for b in both), "second_both": sum(b == (2, 2) for b in both),
        },
    }


def judgement_rows(judgements: Sequence[SingleJudgement | PairJudgement]) -> list[dict[str, Any]]:
    """Per-sample rows for ``judge.json`` / ``compare.json`` (JSON-ready)."""
    return [asdict(j) for j in judgements]
