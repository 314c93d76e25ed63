"""The response cache: every answer is stored here, keyed by (model fingerprint, recipe hash, sample id),
*before* it is scored.

SQLite in WAL mode with ``synchronous=FULL``: each :meth:`ResponseCache.put_many` is one committed
transaction, so a run killed at any instant (SIGKILL included) keeps every batch that finished, and the
rerun asks the model only for the rest. WAL lets several processes of one data-parallel run (on one
host) read and write the same file; ``timeout`` makes a writer wait for another's lock instead of
failing. WAL needs shared memory between the processes, so keep the file on a local disk (not NFS).

A payload is a JSON object: ``answer`` (the text scored), ``prompt`` (the rendered request) and
``extra`` (inferencer details: option probabilities, the first turn of a CoT, ...).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

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
