"""`user_errors` prints an expected error as one line, exit 2, with the message intact."""

from __future__ import annotations

import pytest
import typer

from lamm.cli import common
from lamm.fileio import FileFormatError


def _run(exc: BaseException, capsys) -> str:
    with pytest.raises(typer.Exit) as info, common.user_errors():
        raise exc
    assert info.value.exit_code == 2
    return capsys.readouterr().err


def test_bracketed_text_is_not_read_as_markup(capsys, monkeypatch):
    from rich.console import Console

    monkeypatch.setattr(common, "err_console", Console(stderr=True, width=300))
    out = _run(FileFormatError("a.json: annotations[0].bbox: expected 4 numbers [x1, y1, x2, y2], got [1, 2]"), capsys)
    assert "[x1, y1, x2, y2], got [1, 2]" in out
    out = _run(FileFormatError("a.json: record 3: image '[/img]/a.png' not found"), capsys)  # once a MarkupError
    assert "'[/img]/a.png'" in out


def test_a_bare_key_error_says_which_key_is_missing(capsys):
    assert "missing key 'question_id'" in _run(KeyError("question_id"), capsys)
    assert "unknown model preset 'x'" in _run(KeyError("unknown model preset 'x' (known: tiny)"), capsys)
