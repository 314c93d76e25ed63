"""metrics.jsonl on resume: read by the shared append-only JSONL reader, rows after the checkpoint dropped."""

from __future__ import annotations

import json

import pytest
import torch

from lamm.fileio import FileFormatError
from lamm.train.meter import Meter, StepFlops


def _resume(out, step: int) -> Meter:
    return Meter(out, 10, step, StepFlops(1.0, 1.0), 1, torch.device("cpu"), "fp32", None, progress=False)


def test_a_kill_inside_a_multibyte_character_of_the_last_row_is_a_cut_line(tmp_path):
    """The old reader decoded the whole file first and crashed with a UnicodeDecodeError here."""
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": 1, "loss": 2.0}, {"step": 2, "note": "époque"}, {"eval_loss": 1.0}]
    line = json.dumps({"step": 3, "note": "époque"}, ensure_ascii=False).encode()
    torn = line[: line.index("é".encode()) + 1]  # the kill landed after one of the two bytes of é
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows) + torn)
    _resume(tmp_path, 2)
    assert [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] == rows  # the event kept


def test_nothing_to_drop_leaves_the_file_alone_and_a_whole_last_row_counts(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n', encoding="utf-8")
    inode = path.stat().st_ino
    _resume(tmp_path, 2)
    assert path.stat().st_ino == inode  # not rewritten
    path.write_text('{"step": 1}\n{"step": 2}', encoding="utf-8")  # whole, only the newline missing
    _resume(tmp_path, 2)
    assert path.read_text(encoding="utf-8") == '{"step": 1}\n{"step": 2}\n'


def test_a_step_that_is_not_a_number_is_named(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": "2"}\n', encoding="utf-8")
    with pytest.raises(FileFormatError, match=r"metrics.jsonl:2: not a valid metrics row \('step' is '2'"):
        _resume(tmp_path, 2)
