"""The SQLite response cache: keys, WAL, durability across connections and concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from lamm.bench.cache import ResponseCache


def test_roundtrip_and_keys(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as c:
        c.put_many("m1", "r1", {"a": {"answer": "x", "extra": {"p": [0.5, 0.5]}}, "b": {"answer": "y"}})
        c.put_many("m2", "r1", {"a": {"answer": "other model"}})
        c.put_many("m1", "r2", {"a": {"answer": "other recipe"}})
        assert c.get_many("m1", "r1", ["a", "b", "missing"]) == {
            "a": {"answer": "x", "extra": {"p": [0.5, 0.5]}}, "b": {"answer": "y"}}
        assert c.get_many("m2", "r1", ["a", "b"]) == {"a": {"answer": "other model"}}
        assert c.count() == 4 and c.count("m1") == 3 and c.count("m1", "r1") == 2
        c.put_many("m1", "r1", {"a": {"answer": "replaced"}})
        assert c.get_many("m1", "r1", ["a"])["a"]["answer"] == "replaced"
    with ResponseCache(path) as c:  # committed: visible to a new connection
        assert c.count("m1", "r1") == 2
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_many_ids_are_chunked(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as c:
        c.put_many("m", "r", {str(i): {"answer": str(i)} for i in range(1234)})
        got = c.get_many("m", "r", [str(i) for i in range(1300)])
        assert len(got) == 1234 and got["1233"] == {"answer": "1233"}


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ValueError, match="bad.sqlite: cannot use as a response cache"):
        ResponseCache(bad)


def _writer(path: str, rank: int) -> None:
    with ResponseCache(path) as c:
        for i in range(40):
            c.put_many("m", "r", {f"{rank}-{i}": {"answer": str(i)}})


def test_concurrent_writers(tmp_path):
    path = str(tmp_path / "c.sqlite")
    ResponseCache(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, r)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with ResponseCache(path) as c:
        assert c.count("m", "r") == 80
