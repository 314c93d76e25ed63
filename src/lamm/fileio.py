"""Atomic file writes and JSON / JSONL reading shared by every part of the project.

Nothing is ever left half-written: every writer goes through a temporary file in the target's
directory and an ``os.replace``, which is atomic on POSIX file systems. The one exception is an
append-only JSONL log (:func:`append_jsonl`), whose last line a kill may cut: every resume reads such a
file with :func:`read_appended_jsonl`, which settles once what is a cut write and what is damage.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class FileFormatError(ValueError):
    """A file could not be read; the message names the file, the line or record, and the fix."""


def _owner_tag() -> str:
    """``HOST-PID`` of this process, as it appears in the names of its temporary files and folders."""
    host = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


#: (folder, kind) pairs this process has swept already: one listing per folder, not one per write
_SWEPT: set[tuple[str, str]] = set()


def sweep_stale_temps(directory: str | os.PathLike, kind: str = "tmp") -> list[Path]:
    """Remove the temporaries of ``kind`` (``.NAME.KIND-HOST-PID...``) in ``directory`` that a killed
    process of this host left (SIGKILL skips every ``finally``); those of running processes (this one
    too) and of other hosts stay. Lists the folder once per process. Returns what it removed."""
    d = Path(directory)
    key = (str(d.resolve()), kind)
    if key in _SWEPT or not d.is_dir():
        return []
    _SWEPT.add(key)
    host = _owner_tag().rsplit("-", 1)[0]
    pattern = re.compile(r"^\..+\." + re.escape(f"{kind}-{host}-") + r"(\d+)(?:\..*)?$")
    removed = []
    for p in d.iterdir():
        m = pattern.match(p.name)
        if m is None or _pid_running(int(m.group(1))):  # ours included: another thread may be writing
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def owned_temp(target: str | os.PathLike, kind: str = "tmp", suffix: str = "") -> Path:
    """The path of this process's temporary beside ``target``, ``.NAME.KIND-HOST-PID{suffix}``, free
    to create: stale temporaries of killed processes in that folder are swept first (so a rerun after a
    kill leaves nothing behind) and one of this same name (a reused pid) is removed."""
    target = Path(target)
    sweep_stale_temps(target.parent, kind)
    tmp = target.parent / f".{target.name}.{kind}-{_owner_tag()}{suffix}"
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp)
    else:
        tmp.unlink(missing_ok=True)
    return tmp


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move folder ``new`` to ``final``. An existing ``final`` is first moved aside (``.NAME.old-HOST-PID``)
    and deleted only once ``new`` is in place: an error restores it, and a kill between the two renames
    leaves it aside, where the next :func:`replace_dir` (or :func:`restore_replaced`) of ``final`` puts it
    back before anything else."""
    new, final = Path(new), Path(final)
    restore_replaced(final)
    if not final.exists():
        os.replace(new, final)
        return
    old = owned_temp(final, "old")
    os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(old, final)
        raise
    shutil.rmtree(old)


def restore_replaced(final: str | os.PathLike) -> bool:
    """Put back a folder :func:`replace_dir` moved aside when a kill came before the new one was in
    place (``final`` missing, its ``.old-`` copy of a dead process beside it); other such copies of
    dead processes are removed. Returns whether one was restored."""
    final = Path(final)
    if not final.parent.is_dir():
        return False
    host = _owner_tag().rsplit("-", 1)[0]
    pattern = re.compile(re.escape(f".{final.name}.old-{host}-") + r"(\d+)$")
    restored = False
    for p in sorted(final.parent.iterdir()):
        m = pattern.match(p.name)
        if m is None or (_pid_running(int(m.group(1))) and int(m.group(1)) != os.getpid()):
            continue
        if not final.exists() and not restored:
            os.replace(p, final)
            restored = True
        else:
            shutil.rmtree(p, ignore_errors=True)
    return restored


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was; a temporary left by
    a killed earlier writer of ``path`` is removed by the next one (:func:`owned_temp`).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = owned_temp(target, "tmp", suffix + ".tmp")
    tmp_path.unlink(missing_ok=True)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o644)  # shared like any other artifact, whatever created the file
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


# ------------------------------------------------------------------- append-only JSONL that a kill may cut
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class AppendedJsonl:
    """What :func:`read_appended_jsonl` found: the rows (JSON objects) in file order with their 1-based
    line numbers, and what a kill left at the end."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    #: line number of a cut last line that was dropped (``None``: there was none)
    torn_line: int | None = None
    #: bytes of that cut line (0: none)
    torn_bytes: int = 0
    #: the last row was whole but lacked its ``"\n"`` (with ``repair`` one was appended)
    unterminated: bool = False


def _parse_jsonl_line(raw: bytes) -> tuple[dict[str, Any] | None, str, str]:
    """``(row, kind, why)`` of one line's bytes (without its ``"\\n"``); ``kind`` is ``ok``, ``blank``,
    ``undecodable``, ``invalid`` or ``not_object``, and ``why`` says what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, "undecodable", f"not UTF-8 at byte {e.start + 1}"
    text = text.removesuffix("\r")
    if not text.strip():
        return None, "blank", ""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as e:
        return None, "invalid", f"invalid JSON: {e.msg} at column {e.colno}"
    if not isinstance(row, dict):
        names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
        return None, "not_object", f"{names.get(type(row), 'a number')}, not a JSON object"
    return row, "ok", ""


def _mend_tail(p: Path, size: int, cut_at: int | None) -> None:
    """Cut ``p`` back to byte ``cut_at`` (a torn last line), or append the missing ``"\\n"`` of a whole
    last line when ``cut_at`` is None; ``size`` is the size it had when read. One truncate or one
    one-byte append, fsync'ed."""
    with open(p, "r+b") as fh:
        if fh.seek(0, os.SEEK_END) != size:
            raise FileFormatError(f"{p}: changed while it was being read (another process appends to it?); "
                                  "stop the other writer, then run again")
        if cut_at is not None:
            fh.truncate(cut_at)
        else:
            fh.write(b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_appended_jsonl(path: str | os.PathLike, *, repair: bool = False, what: str = "JSON line",
                        fix: str = "fix or delete that line, then run again") -> AppendedJsonl:
    r"""Read an append-only JSONL file (one JSON object per line, written by :func:`append_jsonl` or
    alike) whose last write a kill (SIGKILL mid-write) may have cut, for a resume.

    The rules, the same for every such file:

    - A missing file is an empty one. A leading UTF-8 byte-order mark is ignored, lines end at
      ``"\n"`` only (U+2028 and friends stay inside strings, see :func:`jsonl_lines`), a trailing
      ``"\r"`` and blank lines are ignored.
    - Every line that ends with ``"\n"`` must be a JSON object in UTF-8. A writer puts the ``"\n"``
      last, so a line that has it was written whole: if it does not parse, the file was damaged some
      other way. That is a :class:`FileFormatError` naming the file and line (``FILE:LINE: not a valid
      {what} (...)``, then ``fix``), whichever line it is: nothing is guessed or skipped silently.
    - The bytes after the last ``"\n"`` are the write a kill may have cut. If they are not UTF-8 (cut
      inside a multi-byte character) or do not parse, they are a *torn* line: dropped (``torn_line``,
      ``torn_bytes``). If they parse as a JSON object they are a whole row that only lacks its ``"\n"``
      (``unterminated``): an object's closing brace is its last character, so no cut of a longer
      object parses, and a file edited by hand often ends that way. A whole value that is not an
      object is an error as above.

    With ``repair`` the file is mended for appending: a torn line is cut off by truncating the file at
    the end of the last whole line, or the missing ``"\n"`` is appended (else the next appended row
    would be glued onto it). A truncate, not an atomic rewrite: it changes no byte of the whole lines,
    costs nothing on a large file, and a kill during it leaves the file either as it was (mended on
    the next read) or mended. The file must have one writer at a time, this process: a size that
    changed while it was read is an error.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return AppendedJsonl()
    start = len(_BOM) if data.startswith(_BOM) else 0
    end = max(data.rfind(b"\n") + 1, start)  # just past the last whole line
    lines = data[start:end].split(b"\n")[:-1]
    rows, numbers = [], []
    for n, raw in enumerate(lines, start=1):
        row, kind, why = _parse_jsonl_line(raw)
        if kind == "blank":
            continue
        if row is None:
            raise FileFormatError(f"{p}:{n}: not a valid {what} ({why}); only a last line without its "
                                  f"newline can be a write cut by a kill, so this is damage: {fix}")
        rows.append(row)
        numbers.append(n)
    tail = data[end:]
    torn_line, unterminated = None, False
    if tail:
        n = len(lines) + 1
        row, kind, why = _parse_jsonl_line(tail)
        if kind == "not_object":
            raise FileFormatError(f"{p}:{n}: not a valid {what} ({why}); {fix}")
        if row is None:
            torn_line = n
        else:
            rows.append(row)
            numbers.append(n)
            unterminated = True
    if repair and (torn_line is not None or unterminated):
        _mend_tail(p, len(data), end if torn_line is not None else None)
    return AppendedJsonl(rows, numbers, torn_line, len(tail) if torn_line is not None else 0, unterminated)


def cut_torn_tail(path: str | os.PathLike, block: int = 1 << 16) -> int:
    r"""Make an append-only JSONL log ready for appending without reading it all: a torn last line (see
    :func:`read_appended_jsonl`) is cut off, a whole last row that lacks its ``"\n"`` gets one. Only
    the last line is looked at (a log's earlier lines are not this function's to judge). Returns the
    number of bytes cut (0 when none or when the file is missing)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:  # back from the end, one block at a time, to the last "\n"
            size = fh.seek(0, os.SEEK_END)
            pos, tail = size, b""
            while pos > 0 and b"\n" not in tail:
                step = min(block, pos)
                pos -= step
                fh.seek(pos)
                tail = fh.read(step) + tail
    except FileNotFoundError:
        return 0
    end = pos + tail.rfind(b"\n") + 1  # 0 when the file holds no "\n"
    tail = tail[end - pos:]
    if end == 0 and tail.startswith(_BOM):
        tail, end = tail[len(_BOM):], len(_BOM)
    if not tail:
        return 0
    row, kind, _ = _parse_jsonl_line(tail)
    if kind == "not_object":  # whole, just not a row: a log keeps it, on its own line
        row = {}
    _mend_tail(p, size, end if row is None else None)
    return size - end if row is None else 0
