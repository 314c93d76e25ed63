"""Data quality: filters, exact and near-duplicate removal, and leak-free split assignment.

* Filters drop records whose answers are too short or long, refuse ("I'm sorry, as an AI ..."), or
  contradict the annotations where that can be checked: a stated count ("there are three dogs") must
  equal the number of annotated objects of that class.
* Exact duplicates: the same media, task type and (whitespace/case-normalised) conversation.
* Near duplicates: MinHash over word n-grams with LSH banding, candidate pairs confirmed by their
  exact Jaccard similarity — pure Python + numpy. By default only generated text (C1–C3) is compared,
  across all media: templated C4 records are near-identical by design.
* Splits are assigned per media file (image or point cloud), by a stable hash of the path, so an image
  or scene is never in two splits, whatever tasks were built from it.

Every drop is returned with its reason, so the build can count and report it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
from pydantic import Field

from lamm.config import Config
from lamm.data.builders.base import plural, stable_unit
from lamm.data.builders.counting import counts_complete, record_counts

REFUSALS = (
    "i'm sorry",
    "i am sorry",
    "as an ai",
    "i cannot",
    "i can't",
    "i am unable",
    "i'm unable",
    "i do not have access",
    "i don't have access",
    "cannot see the image",
    "can't see the image",
)
# One pattern for every refusal check (the quality filter and the generation validator): each phrase
# must stand on word boundaries, so "has an air conditioner" or "was an airport" is not "as an ai".
REFUSAL_RE = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in REFUSALS) + r")\b", re.IGNORECASE)
GENERATED_TASKS = (
    "conversation",
    "description",
    "commonsenseqa",
    "conversation3d",
    "description3d",
    "commonsenseqa3d",
)
NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
NUMBER_WORDS["no"] = 0
NUMBER_WORDS["a single"] = 1
_MERSENNE31 = (1 << 31) - 1

Dropped = tuple[dict[str, Any], str]


class QualityConfig(Config):
    """Filters and deduplication settings of a build."""

    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity of word n-gram sets")
    near_tasks: list[str] = Field(default_factory=lambda: list(GENERATED_TASKS))
    near_scope: Literal["global", "media"] = "global"
    num_perm: int = Field(128, ge=8)
    bands: int = Field(32, ge=1)
    ngram: int = Field(3, ge=1)
    near_min_words: int = Field(8, ge=1)
    min_answer_words: int = Field(1, ge=0)
    max_answer_words: int = Field(400, ge=1)
    max_turns: int = Field(20, ge=2)
    drop_refusals: bool = True
    drop_contradictions: bool = True


# ------------------------------------------------------------------------------------------------
# text helpers


def media_key(rec: dict[str, Any]) -> str:
    """The media path a record is about (``image`` or ``pcl``), normalised; the unit of splitting."""
    return str(rec.get("image") or rec.get("pcl") or "").replace("\\", "/").lstrip("./")


def normalize_text(text: str) -> str:
    """Lower case, single spaces."""
    return " ".join(text.lower().split())


def answer_text(rec: dict[str, Any]) -> str:
    return "\n".join(t["value"] for t in rec["conversations"] if t.get("from") == "gpt")


def conversation_key(rec: dict[str, Any]) -> str:
    return "\x1e".join(f"{t['from']}:{normalize_text(t['value'])}" for t in rec["conversations"])


def _number(tok: str) -> int | None:
    tok = tok.lower()
    if tok.isdigit():
        return int(tok)
    return NUMBER_WORDS.get(tok)


_CLAIM = (
    r"\b(?:there\s+(?:is|are|were|was)|i\s+(?:can\s+)?(?:see|count)|(?:it|this|the\s+image|the\s+scene)"
    r"\s+(?:contains|shows|has))\s+(\d+|{words})\s+(?:[a-z\-]+\s+){{0,2}}?({nouns})\b"
)


def count_claims(
    text: str, labels: Iterable[str], plurals: dict[str, str] | None = None
) -> list[tuple[str, int]]:
    """Statements of a count in ``text`` for the given class names: ``[(label, n)]``.

    Only explicit claims are read ("there are 3 dogs", "I can see two red cars", "the image contains
    one cat"), never incidental numbers ("one dog is brown"), so a mismatch is a real contradiction.

    ``plurals`` gives a label's plural where the dataset names it (FSC147), besides the derived one.

    >>> count_claims("There are three small dogs and a cat.", ["dog", "cat"])
    [('dog', 3)]
    """
    words = "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True))
    out = []
    for label in labels:
        given = (plurals or {}).get(label)
        forms = sorted(
            {re.escape(f.lower()) for f in (label, plural(label), given) if f}, key=len, reverse=True
        )
        pat = re.compile(_CLAIM.format(words=words, nouns="|".join(forms)), re.IGNORECASE)
        for m in pat.finditer(text):
            n = _number(m.group(1))
            if n is not None:
                out.append((label, n))
    return out


def contradiction(rec: dict[str, Any], source: dict[str, Any] | None) -> str | None:
    """Why ``rec``'s answers contradict its source annotations, or None (also when not checkable)."""
    if source is None:
        return None
    try:
        counts = record_counts(source)
    except ValueError:
        return None
    if not counts_complete(source):
        return None  # objects of unknown class: a stated count may well be right
    crowd = set(source.get("crowd_labels") or [])
    labels = [k for k in counts if k not in crowd]
    for label, n in count_claims(answer_text(rec), labels, source.get("plurals")):
        if n != counts[label]:
            return f"states {n} {label} but the annotations have {counts[label]}"
    return None


# ------------------------------------------------------------------------------------------------
# filters


def filter_records(
    records: list[dict[str, Any]],
    cfg: QualityConfig,
    sources: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """Apply length, refusal and contradiction filters; return ``(kept, [(record, reason)])``."""
    kept, dropped = [], []
    for rec in records:
        reason = _filter_reason(rec, cfg, sources or {})
        if reason:
            dropped.append((rec, reason))
        else:
            kept.append(rec)
    return kept, dropped


def find_refusal(text: str) -> str | None:
    """The first refusal phrase in ``text`` (lower-cased), matched on word boundaries; None if none.
    Typographic apostrophes count as plain ones ("I\u2019m sorry" is a refusal too)."""
    m = REFUSAL_RE.search(text.replace("\u2019", "'"))
    return m.group(0).lower() if m else None


def _filter_reason(
    rec: dict[str, Any], cfg: QualityConfig, sources: dict[tuple[str, str], dict[str, Any]]
) -> str | None:
    conv = rec["conversations"]
    if len(conv) > cfg.max_turns:
        return f"too_many_turns: {len(conv)} > {cfg.max_turns}"
    for t in conv:
        if t.get("from") != "gpt":
            continue
        n = len(t["value"].split())
        if n < cfg.min_answer_words:
            return f"answer_too_short: {n} words"
        if n > cfg.max_answer_words:
            return f"answer_too_long: {n} words"
        if cfg.drop_refusals:
            hit = find_refusal(t["value"])
            if hit:
                return f"refusal: {hit!r}"
    if cfg.drop_contradictions:
        why = contradiction(rec, sources.get((str(rec.get("src_dataset")), str(rec.get("src_id")))))
        if why:
            return f"contradicts_annotations: {why}"
    return None


# ------------------------------------------------------------------------------------------------
# deduplication


def dedup_exact(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """Drop records with the same media, task type and normalised conversation as an earlier one."""
    seen: dict[str, str] = {}
    kept, dropped = [], []
    for rec in records:
        key = hashlib.sha256(
            f"{media_key(rec)}\x1f{rec.get('task_type')}\x1f{conversation_key(rec)}".encode()
        ).hexdigest()
        if key in seen:
            dropped.append((rec, f"exact_duplicate: of {seen[key]}"))
        else:
            seen[key] = str(rec["id"])
            kept.append(rec)
    return kept, dropped


def shingles(text: str, n: int) -> set[str]:
    """Word ``n``-grams of ``text`` (lower case; a text shorter than n is one shingle)."""
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class MinHasher:
    """MinHash signatures with universal hashing ``(a*x + b) mod (2^31 - 1)`` (fits in uint64)."""

    def __init__(self, num_perm: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, _MERSENNE31, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _MERSENNE31, size=num_perm, dtype=np.uint64)

    def signature(self, items: set[str]) -> np.ndarray:
        """``(num_perm,)`` uint64 minimum hashes; an empty set gets all-max (matches nothing real)."""
        if not items:
            return np.full(self.a.shape, _MERSENNE31, dtype=np.uint64)
        x = np.array(
            [
                int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") % _MERSENNE31
                for s in sorted(items)
            ],
            dtype=np.uint64,
        )
        return ((np.outer(x, self.a) + self.b) % _MERSENNE31).min(axis=0)


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate_groups(
    texts: list[str],
    threshold: float = 0.8,
    num_perm: int = 128,
    bands: int = 32,
    ngram: int = 3,
    seed: int = 0,
) -> list[int]:
    """For each text, the index of the first text of its near-duplicate cluster (itself if none).

    LSH: signatures cut into ``bands`` bands; texts sharing a band bucket are candidates, confirmed
    when the exact Jaccard similarity of their n-gram sets is >= ``threshold``.
    """
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    sets = [shingles(t, ngram) for t in texts]
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        ri, rj = find(i), find(j)
        parent[max(ri, rj)] = min(ri, rj)  # the earliest text represents the cluster

    # identical n-gram sets are duplicates outright: grouped in one pass, so a boilerplate text repeated
    # ten thousand times costs one signature, not fifty million comparisons
    first: dict[frozenset[str], int] = {}
    uniq: list[int] = []
    for i, sh in enumerate(sets):
        if not sh:
            continue
        key = frozenset(sh)
        if key in first:
            union(first[key], i)
        else:
            first[key] = i
            uniq.append(i)
    hasher = MinHasher(num_perm, seed)
    sigs = {i: hasher.signature(sets[i]) for i in uniq}
    rows = num_perm // bands
    checked: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i in uniq:
            buckets[sigs[i][band * rows : (band + 1) * rows].tobytes()].append(i)
        for members in buckets.values():
            reps: list[int] = []  # compare against one member per cluster, not every pair
            for j in members:
                for i in reps:
                    if find(i) == find(j):
                        break
                    if (i, j) in checked:
                        continue
                    checked.add((i, j))
                    if jaccard(sets[i], sets[j]) >= threshold:
                        union(i, j)
                        break
                else:
                    reps.append(j)
    return [find(i) for i in range(len(texts))]


def dedup_near(
    records: list[dict[str, Any]], cfg: QualityConfig
) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """Drop near-duplicate answers among records of ``cfg.near_tasks`` (long enough to judge)."""
    idx = [
        i
        for i, r in enumerate(records)
        if r.get("task_type") in cfg.near_tasks and len(answer_text(r).split()) >= cfg.near_min_words
    ]
    groups: dict[str, list[int]] = defaultdict(list)
    for i in idx:
        groups[media_key(records[i]) if cfg.near_scope == "media" else ""].append(i)
    drop: dict[int, str] = {}
    for members in groups.values():
        reps = near_duplicate_groups(
            [answer_text(records[i]) for i in members], cfg.near_threshold, cfg.num_perm, cfg.bands, cfg.ngram
        )
        for k, rep in enumerate(reps):
            if rep != k:
                drop[members[k]] = f"near_duplicate: of {records[members[rep]]['id']}"
    kept = [r for i, r in enumerate(records) if i not in drop]
    return kept, [(records[i], why) for i, why in sorted(drop.items())]


# ------------------------------------------------------------------------------------------------
# splits


def assign_splits(
    records: list[dict[str, Any]],
    fractions: dict[str, float],
    seed: int = 0,
    key: Callable[[dict[str, Any]], str] = media_key,
) -> dict[str, list[dict[str, Any]]]:
    """Split by a stable hash of each record's media: every record of one image lands in one split.

    ``fractions`` (e.g. ``{"train": 0.95, "val": 0.05}``) must be positive and sum to 1.
    """
    if not fractions or any(v <= 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    names = list(fractions)
    edges = np.cumsum([fractions[n] for n in names])
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for rec in records:
        u = stable_unit(seed, "split", key(rec))
        out[names[min(int(np.searchsorted(edges, u, side="right")), len(names) - 1)]].append(rec)
    return out


def check_disjoint(
    splits: dict[str, list[dict[str, Any]]], key: Callable[[dict[str, Any]], str] = media_key
) -> None:
    """Raise when one media file appears in two splits (a train/test leak), naming it and the splits."""
    where: dict[str, str] = {}
    for name, recs in splits.items():
        for r in recs:
            k = key(r)
            if where.setdefault(k, name) != name:
                raise ValueError(
                    f"media {k!r} is in splits {where[k]!r} and {name!r} (record {r['id']!r}); "
                    "an image or scene must be in one split only"
                )
