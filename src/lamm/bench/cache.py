"""The response cache: every answer is stored here, keyed by (model fingerprint, recipe hash, sample id),
*before* it is scored.

SQLite in WAL mode with ``synchronous=FULL``: each :meth:`ResponseCache.put_many` is one committed
transaction, so a run killed at any instant (SIGKILL included) keeps every batch that finished, and the
rerun asks the model only for the rest. WAL lets several processes of one data-parallel run (on one
host) read and write the same file; ``timeout`` makes a writer wait for another's lock instead of
failing. WAL needs shared memory between the processes, so keep the file on a local disk (not NFS).

A payload is a JSON object: ``answer`` (the text scored), ``prompt`` (the rendered request),
``extra`` (inferencer details: option probabilities, the first turn of a CoT, ...) and ``fingerprint``
(:func:`sample_fingerprint` of the sample it answers).

The key names the sample only by its id, so the same ids under another data root, in a regenerated
benchmark or in an edited file would find answers to *other* questions. The fingerprint is the guard:
the runner reuses a cached answer only when its stored fingerprint equals the sample's current one, and
regenerates (and counts) the others. An entry written before fingerprints existed has none and is
regenerated too.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from lamm.bench.scenarios.base import Sample
    from lamm.conversation import MediaRef

#: bump when the content :func:`sample_fingerprint` covers changes
FINGERPRINT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    model TEXT NOT NULL,
    recipe TEXT NOT NULL,
    sample TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, recipe, sample)
) WITHOUT ROWID
"""

# SQLite limits host parameters per statement (999 on old builds); query ids in chunks below that
_CHUNK = 500


def _data_digest(data: Any) -> str:
    """A digest of in-memory media (no file to stat): array bytes with shape and dtype, or image pixels."""
    h = hashlib.sha256()
    if hasattr(data, "tobytes") and hasattr(data, "dtype") and hasattr(data, "shape"):  # numpy array
        h.update(f"array:{data.dtype}:{tuple(data.shape)}:".encode())
        h.update(data.tobytes())
    elif hasattr(data, "tobytes") and hasattr(data, "mode") and hasattr(data, "size"):  # PIL image
        h.update(f"image:{data.mode}:{tuple(data.size)}:".encode())
        h.update(data.tobytes())
    else:
        h.update(f"{type(data).__name__}:{data!r}".encode("utf-8", "replace"))
    return h.hexdigest()[:16]


def _media_identity(ref: MediaRef, root: Path | None,
                    stats: dict[str, tuple[int, int] | None]) -> dict[str, Any]:
    """What identifies one media item to the model: its modality, the derivation (``variant``), its path
    relative to ``root`` (absolute when outside it) and the file's size and ``mtime_ns`` (``None`` when
    it cannot be stat'ed; loading it will fail later with its own error)."""
    out: dict[str, Any] = {"modality": ref.modality, "variant": ref.variant}
    if ref.path is None:
        out["data"] = _data_digest(ref.data)
        return out
    path = Path(os.path.abspath(ref.path))
    rel = path
    if root is not None:
        try:
            rel = path.relative_to(os.path.abspath(root))
        except ValueError:
            pass
    out["path"] = rel.as_posix()
    key = str(path)
    if key not in stats:
        try:
            st = os.stat(path)
            stats[key] = (st.st_size, st.st_mtime_ns)
        except OSError:
            stats[key] = None
    st_pair = stats[key]
    out["size"], out["mtime_ns"] = st_pair if st_pair is not None else (None, None)
    return out


def sample_fingerprint(sample: Sample, root: str | os.PathLike | None = None,
                       _stats: dict[str, tuple[int, int] | None] | None = None) -> str:
    """A 16-hex-digit hash of what the model is shown for ``sample``: the question text, the options
    and their labels, the task type (it selects the system message) and, per media item, its path
    relative to ``root``, file size and modification time (ns) and derivation.

    The data root itself is left out, so a benchmark moved with its timestamps kept (``cp -p``,
    ``rsync -a``) still matches; an edited question, relabelled options or a rewritten image does not.
    Ground truth is left out too: it never reaches the model.
    """
    stats = {} if _stats is None else _stats
    root_p = Path(root) if root is not None else None
    payload = {
        "v": FINGERPRINT_VERSION, "question": sample.question, "options": sample.options,
        "labels": sample.labels, "task_type": sample.task_type,
        "media": [_media_identity(m, root_p, stats) for m in sample.media],
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def sample_fingerprints(samples: Sequence[Sample], root: str | os.PathLike | None = None) -> dict[str, str]:
    """Sample id → :func:`sample_fingerprint`; each media file is stat'ed once (LSP asks 14 questions
    per image)."""
    stats: dict[str, tuple[int, int] | None] = {}
    return {s.id: sample_fingerprint(s, root, stats) for s in samples}


def split_fresh(hits: Mapping[str, dict[str, Any]], fingerprints: Mapping[str, str]
                ) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``(fresh, stale)``: the cached payloads whose stored ``fingerprint`` equals the sample's, and the
    ids of the others (another question under the same id, or an entry with no fingerprint)."""
    fresh = {sid: p for sid, p in hits.items()
             if sid in fingerprints and p.get("fingerprint") == fingerprints[sid]}
    return fresh, [sid for sid in hits if sid not in fresh]


class ResponseCache:
    """A SQLite response cache; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, timeout: float = 120.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE in put_many)
        self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        try:
            self._setup(timeout)
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise ValueError(f"{self.path}: cannot use as a response cache ({e}); delete it or pass another "
                             "--cache path") from None

    def _setup(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                # fetchall: a half-read statement keeps a lock that blocks another process's WAL switch
                mode = self._db.execute("PRAGMA journal_mode=WAL").fetchall()[0][0]
                break
            except sqlite3.OperationalError as e:
                # switching a new file to WAL needs it alone and SQLite reports "locked" at once, without
                # its busy handler, when another process opens the same new file at the same moment
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is not available here")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def get_many(self, model: str, recipe: str, sample_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Cached payloads of the given samples (missing ones are absent from the result)."""
        ids = list(dict.fromkeys(sample_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT sample, payload FROM responses WHERE model = ? AND recipe = ? AND sample IN ({marks})",
                [model, recipe, *chunk],
            ).fetchall()
            for sid, payload in rows:
                out[sid] = json.loads(payload)
        return out

    def put_many(self, model: str, recipe: str, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """Store payloads in one transaction (an existing entry for a sample is replaced)."""
        if not payloads:
            return
        now = time.time()
        rows = [(model, recipe, sid, json.dumps(p, ensure_ascii=False, sort_keys=True), now)
                for sid, p in payloads.items()]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def count(self, model: str | None = None, recipe: str | None = None) -> int:
        """Number of cached answers, optionally for one model and/or recipe."""
        q, args = "SELECT COUNT(*) FROM responses WHERE 1=1", []
        if model is not None:
            q, args = q + " AND model = ?", [*args, model]
        if recipe is not None:
            q, args = q + " AND recipe = ?", [*args, recipe]
        return int(self._db.execute(q, args).fetchall()[0][0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
