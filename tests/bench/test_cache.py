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


# ------------------------------------------------------------------------------------ sample fingerprints
def _sample(root, question="Q? (A) cat (B) dog", rel="img/0.png", **kw):
    from lamm.bench.scenarios.base import Sample
    from lamm.conversation import MediaRef

    return Sample(id="s0", media=[MediaRef("image", path=str(root / rel))], question=question,
                  references=kw.pop("references", {}), options=kw.pop("options", ["cat", "dog"]),
                  task_type=kw.pop("task_type", "VQA"), **kw)


def _media(root, rel="img/0.png", data=b"pixels", mtime_ns=1_700_000_000_000_000_000):
    import os

    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.utime(p, ns=(mtime_ns, mtime_ns))
    return p


def test_sample_fingerprint_covers_what_the_model_sees(tmp_path):
    import os

    from lamm.bench.cache import sample_fingerprint

    a, b = tmp_path / "a", tmp_path / "b"
    _media(a), _media(b)
    base = sample_fingerprint(_sample(a), a)
    assert len(base) == 16 and base == sample_fingerprint(_sample(a), a)  # stable
    # the same data under another root (timestamps kept, as cp -p / rsync -a do) is the same sample
    assert sample_fingerprint(_sample(b), b) == base
    # anything shown to the model changes it
    assert sample_fingerprint(_sample(a, question="Q? (A) cow (B) dog"), a) != base
    assert sample_fingerprint(_sample(a, options=["cow", "dog"]), a) != base
    assert sample_fingerprint(_sample(a, labels=["1", "2"]), a) != base
    assert sample_fingerprint(_sample(a, task_type="normal"), a) != base
    _media(a, rel="img/1.png")
    assert sample_fingerprint(_sample(a, rel="img/1.png"), a) != base  # another file
    _media(b, data=b"pixels!")  # regenerated image: size changes
    assert sample_fingerprint(_sample(b), b) != base
    _media(b, mtime_ns=1_700_000_000_000_000_001)  # rewritten with the same size: mtime changes
    assert sample_fingerprint(_sample(b), b) != base
    # the ground truth never reaches the model: not part of it
    assert sample_fingerprint(_sample(a, references={"gt_choice": 1}), a) == base
    # a missing file does not crash (loading it reports the error later)
    os.remove(a / "img/0.png")
    assert sample_fingerprint(_sample(a), a) != base


def test_split_fresh():
    from lamm.bench.cache import split_fresh

    hits = {"a": {"answer": "x", "fingerprint": "f1"}, "b": {"answer": "y", "fingerprint": "old"},
            "c": {"answer": "legacy, no fingerprint"}}
    fresh, stale = split_fresh(hits, {"a": "f1", "b": "f2", "c": "f3"})
    assert fresh == {"a": hits["a"]} and stale == ["b", "c"]
