"""Atomic writes leave no partial file; JSON / JSONL reading names the bad line."""

from __future__ import annotations

import pytest

from lamm.fileio import (
    FileFormatError,
    atomic_path,
    read_json_or_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
)


def test_atomic_write_failure_leaves_old_file(tmp_path):
    p = tmp_path / "out.json"
    write_json_atomic(p, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(p) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("killed")
    assert p.read_text() == '{\n "a": 1\n}\n'
    with pytest.raises(FileFormatError, match="one pretty-printed JSON object"):
        read_json_or_jsonl(p)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.json"]


def test_json_and_jsonl(tmp_path):
    write_json_atomic(tmp_path / "a.json", [{"x": 1}, {"x": 2}])
    write_jsonl_atomic(tmp_path / "a.jsonl", [{"x": 1}, {"x": 2}])
    assert read_json_or_jsonl(tmp_path / "a.json") == read_json_or_jsonl(tmp_path / "a.jsonl")


def test_bad_jsonl_line_is_named(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(FileFormatError, match="line 2"):
        read_json_or_jsonl(p)
    q = tmp_path / "c.json"
    q.write_text('[{"x": 1},')
    with pytest.raises(FileFormatError, match="c.json"):
        read_json_or_jsonl(q)
