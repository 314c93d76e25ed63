"""Atomic writes leave no partial file; JSON / JSONL reading names the bad line."""

from __future__ import annotations

import os

import pytest

from lamm.fileio import (
    FileFormatError,
    atomic_path,
    jsonl_lines,
    read_json_or_jsonl,
    write_json_atomic,
    write_jsonl_atomic,
    write_text_atomic,
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


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028 / U+2029 / U+0085 (and \x1c-\x1e, \v, \f) raw;
    # str.splitlines() would split a record on them
    rows = [{"id": "1", "answer": "It is a cat.\u2028Definitely."}, {"id": "2", "answer": "A dog\x85"},
            {"id": "3", "answer": "p1\u2029p2\x1c\x1d\x1e\x0b\x0c end"}]
    p = tmp_path / "answers.jsonl"
    write_jsonl_atomic(p, rows)
    assert p.read_text(encoding="utf-8").count("\n") == 3
    assert read_json_or_jsonl(p) == rows


def test_jsonl_crlf_blank_lines_and_numbering(tmp_path):
    p = tmp_path / "crlf.jsonl"
    p.write_bytes(b'{"x": 1}\r\n\r\n{"x": "a\xe2\x80\xa8b"}\r\n{"x": \r\n')
    with pytest.raises(FileFormatError, match="line 4 is not valid JSON"):
        read_json_or_jsonl(p)
    p.write_bytes(b'{"x": 1}\r\n\r\n{"x": "a\xe2\x80\xa8b"}\r\n')
    assert read_json_or_jsonl(p) == [{"x": 1}, {"x": "a\u2028b"}]
    assert list(jsonl_lines("a\r\n\nb")) == [(1, "a"), (2, ""), (3, "b")]


def test_utf8_bom_is_ignored(tmp_path):
    # Windows editors save JSON with a byte-order mark; it must not make an array look like JSONL
    arr = tmp_path / "Classification_CIFAR10.json"
    arr.write_bytes(b"\xef\xbb\xbf" + b'[\n {"id": "0", "label": "cat"}\n]\n')
    assert read_json_or_jsonl(arr) == [{"id": "0", "label": "cat"}]
    lines = tmp_path / "b.jsonl"
    lines.write_bytes(b"\xef\xbb\xbf" + b'{"id": "0"}\n{"id": "1"}\n')
    assert read_json_or_jsonl(lines) == [{"id": "0"}, {"id": "1"}]


def _dead_pid() -> int:
    """The pid of a process that has ended (what a SIGKILLed writer leaves in its temporaries' names)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_killed_writer_are_removed_by_the_next_one(tmp_path):
    """SIGKILL skips every cleanup: the next write into the folder removes a dead process's leftovers
    (files and checkpoint-style folders), and leaves a running process's and another host's alone."""
    from lamm import fileio

    host = fileio._owner_tag().rsplit("-", 1)[0]
    dead = _dead_pid()
    stale_file = tmp_path / f".a.json.tmp-{host}-{dead}.tmp"
    stale_dir = tmp_path / f".step-3.tmp-{host}-{dead}"
    live = tmp_path / f".b.json.tmp-{host}-{os.getppid()}.tmp"  # the test runner's parent: running
    other_host = tmp_path / f".c.json.tmp-otherhost-{dead}.tmp"
    stale_file.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "weights").write_text("half")
    live.write_text("in flight")
    other_host.write_text("theirs")
    write_text_atomic(tmp_path / "x.json", "{}")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, other_host.name, "x.json"])


def test_a_folder_moved_aside_by_a_killed_replace_is_restored(tmp_path):
    """A kill between replace_dir's two renames leaves the target missing and the old copy aside: the
    next replace (or restore) puts it back first; with the target present, the aside copy is removed."""
    from lamm import fileio

    host = fileio._owner_tag().rsplit("-", 1)[0]
    final = tmp_path / "export"
    aside = tmp_path / f".export.old-{host}-{_dead_pid()}"
    aside.mkdir()
    (aside / "manifest.json").write_text("old")
    assert fileio.restore_replaced(final) and (final / "manifest.json").read_text() == "old"
    aside.mkdir()
    new = tmp_path / "new"
    new.mkdir()
    (new / "manifest.json").write_text("new")
    fileio.replace_dir(new, final)
    assert (final / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
