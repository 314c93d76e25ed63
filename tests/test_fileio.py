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


# ----------------------------------------------------- append-only JSONL that a kill may have cut (resume)
ROWS = [{"id": 1, "text": "un"}, {"id": 2, "text": "deux"}]
WHOLE = b'{"id": 1, "text": "un"}\n{"id": 2, "text": "deux"}\n'


def test_a_torn_last_line_is_dropped_and_cut_only_when_asked(tmp_path):
    from lamm.fileio import append_jsonl, read_appended_jsonl

    p = tmp_path / "log.jsonl"
    p.write_bytes(WHOLE + b'{"id": 3, "te')
    got = read_appended_jsonl(p)
    assert (got.rows, got.line_numbers, got.torn_line, got.torn_bytes) == (ROWS, [1, 2], 3, 13)
    assert p.read_bytes() == WHOLE + b'{"id": 3, "te'  # reading alone changes nothing
    assert read_appended_jsonl(p, repair=True).torn_line == 3
    assert p.read_bytes() == WHOLE  # cut back to the end of the last whole line, byte for byte
    append_jsonl(p, {"id": 3})  # the next row starts its own line
    again = read_appended_jsonl(p, repair=True)
    assert again.rows == [*ROWS, {"id": 3}] and again.torn_line is None and again.torn_bytes == 0


def test_a_kill_inside_a_multibyte_character_is_a_torn_line(tmp_path):
    from lamm.fileio import read_appended_jsonl

    p = tmp_path / "log.jsonl"
    cut = '{"id": 3, "text": "猫"}'.encode()[:-3]  # one byte of the three of 猫 was written
    p.write_bytes(WHOLE + cut)
    got = read_appended_jsonl(p, repair=True)
    assert got.rows == ROWS and got.torn_line == 3 and got.torn_bytes == len(cut)
    assert p.read_bytes() == WHOLE


@pytest.mark.parametrize("damage, lineno, why", [
    (b"not json\n", 2, "invalid JSON"),  # a middle line
    ('{"text": "猫"}'.encode()[:-4] + b"\n", 2, "not UTF-8"),  # cut bytes, then a newline: not a kill
    (b"[1, 2]\n", 2, "an array, not a JSON object"),
])
def test_damage_before_the_last_line_is_an_error_naming_the_line(tmp_path, damage, lineno, why):
    from lamm.fileio import read_appended_jsonl

    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"id": 1}\n' + damage + b'{"id": 2}\n')
    with pytest.raises(FileFormatError, match=rf"log.jsonl:{lineno}: not a valid row \({why}.*: fix it$"):
        read_appended_jsonl(p, repair=True, what="row", fix="fix it")
    assert p.read_bytes() == b'{"id": 1}\n' + damage + b'{"id": 2}\n'  # never repaired


def test_a_complete_last_line_that_does_not_parse_is_damage_not_a_cut(tmp_path):
    """A writer puts the newline last: a line that has one was written whole, so a kill did not cut it."""
    from lamm.fileio import read_appended_jsonl

    p = tmp_path / "log.jsonl"
    p.write_bytes(WHOLE + b'{"id": 3, "te\n')
    with pytest.raises(FileFormatError, match=r"log.jsonl:3: not a valid JSON line \(invalid JSON"):
        read_appended_jsonl(p, repair=True)
    p.write_bytes(WHOLE + b"42")  # whole, but not a row: a cut object never parses as a number
    with pytest.raises(FileFormatError, match=r"log.jsonl:3: .*a number, not a JSON object"):
        read_appended_jsonl(p, repair=True)


def test_a_whole_last_row_without_its_newline_is_kept_and_terminated(tmp_path):
    """An object that parses cannot be a cut of a longer one (its closing brace comes last); files
    edited by hand often end this way. It is a row; repair adds the newline the next append needs."""
    from lamm.fileio import append_jsonl, read_appended_jsonl

    p = tmp_path / "log.jsonl"
    p.write_bytes(WHOLE.rstrip(b"\n"))
    got = read_appended_jsonl(p)
    assert got.rows == ROWS and got.unterminated and got.torn_line is None
    assert p.read_bytes() == WHOLE.rstrip(b"\n")
    read_appended_jsonl(p, repair=True)
    assert p.read_bytes() == WHOLE
    append_jsonl(p, {"id": 3})
    assert read_appended_jsonl(p).rows == [*ROWS, {"id": 3}]


def test_bom_crlf_blank_lines_and_unicode_separators(tmp_path):
    from lamm.fileio import read_appended_jsonl

    p = tmp_path / "log.jsonl"
    text = '{"id": 1, "text": "a\u2028b\u2029c\x85d"}\r\n\n{"id": 2}\n'
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    got = read_appended_jsonl(p)
    assert got.rows == [{"id": 1, "text": "a\u2028b\u2029c\x85d"}, {"id": 2}] and got.line_numbers == [1, 3]
    p.write_bytes(b'\xef\xbb\xbf{"id"')  # a BOM, then a torn first line: the BOM stays
    assert read_appended_jsonl(p, repair=True).torn_line == 1 and p.read_bytes() == b"\xef\xbb\xbf"
    assert read_appended_jsonl(p).rows == []


def test_empty_missing_and_changed_files(tmp_path):
    from lamm import fileio
    from lamm.fileio import read_appended_jsonl

    missing = tmp_path / "none.jsonl"
    got = read_appended_jsonl(missing, repair=True)
    assert (got.rows, got.torn_line, got.torn_bytes, got.unterminated) == ([], None, 0, False)
    assert not missing.exists()  # reading never creates the file
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert read_appended_jsonl(empty, repair=True).rows == [] and empty.read_bytes() == b""
    # another writer appended between the read and the repair: not ours to cut
    empty.write_bytes(b'{"id"')
    with pytest.raises(FileFormatError, match="changed while it was being read"):
        fileio._mend_tail(empty, 3, 0)
    assert empty.read_bytes() == b'{"id"'


@pytest.mark.parametrize("block", [4, 1 << 16])  # a last line longer than a block is found too
def test_cut_torn_tail_looks_at_the_last_line_only(tmp_path, block):
    from lamm.fileio import cut_torn_tail

    p = tmp_path / "run.log.jsonl"
    torn = b'{"event": "batch", "n": 1'
    p.write_bytes(b"not ours to judge\n" + WHOLE + torn)
    assert cut_torn_tail(p, block=block) == len(torn)
    assert p.read_bytes() == b"not ours to judge\n" + WHOLE
    assert cut_torn_tail(p, block=block) == 0 and p.read_bytes() == b"not ours to judge\n" + WHOLE
    p.write_bytes(WHOLE.rstrip(b"\n"))  # whole but unterminated: it gets its newline
    assert cut_torn_tail(p, block=block) == 0 and p.read_bytes() == WHOLE
    p.write_bytes(b'{"event": "st')  # no newline at all: the whole file is the torn line
    assert cut_torn_tail(p, block=block) == 13 and p.read_bytes() == b""
    assert cut_torn_tail(tmp_path / "none.jsonl") == 0 and not (tmp_path / "none.jsonl").exists()
