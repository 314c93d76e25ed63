"""Atomic file writes and JSON / JSONL reading shared by every part of the project.

Nothing is ever left half-written: every writer goes through a temporary file in the target's
directory and an ``os.replace``, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class FileFormatError(ValueError):
    """A file could not be read; the message names the file, the line or record, and the fix."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; artifacts are meant to be shared like any other file
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    """Write ``obj`` as JSON atomically. Keys keep their insertion order, so output is byte-stable."""
    write_text_atomic(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Write one JSON object per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def append_jsonl(path: str | os.PathLike, row: Any) -> None:
    """Append one JSON line and flush it to disk (used by append-only logs that resume)."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_text_utf8(path: str | os.PathLike) -> str:
    """The text of a UTF-8 file, without a leading byte-order mark (Windows editors write one)."""
    return Path(path).read_text(encoding="utf-8-sig")


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    r"""``(line number, line)`` of JSONL text, numbered from 1, split on ``"\n"`` only.

    Not ``str.splitlines()``: it also splits on U+2028, U+2029, U+0085 and other separators that
    ``json.dumps(..., ensure_ascii=False)`` leaves raw inside strings, which would cut a record in two.
    A trailing ``"\r"`` (CRLF files) is removed; blank lines are yielded too (callers skip them).

    >>> list(jsonl_lines('{"a": "x\u2028y"}\r\n\n{"b": 1}\n'))
    [(1, '{"a": "x\u2028y"}'), (2, ''), (3, '{"b": 1}')]
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, start=1):
        yield n, line.removesuffix("\r")


def read_json_or_jsonl(path: str | os.PathLike) -> list[Any]:
    r"""Read a JSON array or a JSONL file (one object per line) into a list.

    The format is sniffed from the first non-blank character: ``[`` means a JSON array. A leading UTF-8
    byte-order mark is ignored. JSONL lines end at ``"\n"`` only (see :func:`jsonl_lines`). A trailing
    partial line of a JSONL file (a writer killed mid-line) is an error naming the line, never skipped.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    text = read_text_utf8(p)
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] == "[":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FileFormatError(f"{p}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e
        if not isinstance(data, list):
            raise FileFormatError(f"{p}: expected a JSON array of records")
        return data
    if stripped[0] == "{" and "\n" in stripped.strip():
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            raise FileFormatError(f"{p}: holds one pretty-printed JSON object; expected a JSON array of "
                                  "records or JSONL (one object per line)")
    rows = []
    for lineno, line in jsonl_lines(text):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise FileFormatError(
                f"{p}: line {lineno} is not valid JSON ({e.msg}); fix or remove that line"
            ) from e
    return rows
