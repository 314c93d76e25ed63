"""Atomic file writes and JSON / JSONL reading shared by every part of the project.

Nothing is ever left half-written: every writer goes through a temporary file in the target's
directory and an ``os.replace``, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
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
