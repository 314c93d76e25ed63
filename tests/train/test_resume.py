"""Exact resume: 6 steps straight vs 3 steps, stop, resume 3 — steps 4–6 and the final weights are
bit-identical on the CPU. Checkpoints are atomic, complete, and pruned to keep_last."""

from __future__ import annotations

import json

import torch
from _train_helpers import small_train_config
from safetensors.torch import load_file

from lamm.train import train
from lamm.train.checkpointing import latest_checkpoint, list_checkpoints


def _cfg(train_data, **kw):
    return small_train_config(train_data, steps=6, data__packing=True,
                              checkpoint={"save_every": 2, "keep_last": 2, "save_final": True}, **kw)


def test_resume_is_bit_identical(train_data, tmp_path):
    cfg = _cfg(train_data)
    straight = train(cfg, tmp_path / "a", progress=False)
    first = train(cfg, tmp_path / "b", progress=False, stop_after=3)
    assert first.steps == 3 and first.checkpoint.name == "step-00000003"
    second = train(cfg, tmp_path / "b", resume=True, progress=False)
    assert second.losses == straight.losses[3:]  # exact float equality, not approx
    wa = load_file(str(straight.checkpoint / "weights.safetensors"))
    wb = load_file(str(second.checkpoint / "weights.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # metrics.jsonl continues: each step once
    rows = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 5, 6]


def test_checkpoints_are_complete_and_pruned(train_data, tmp_path):
    result = train(_cfg(train_data), tmp_path / "run", progress=False)
    ckpts = list_checkpoints(tmp_path / "run")
    assert [p.name for p in ckpts] == ["step-00000004", "step-00000006"]
    assert latest_checkpoint(tmp_path / "run") == result.checkpoint == ckpts[-1]
    t = ckpts[-1] / "trainer"
    assert {p.name for p in t.iterdir()} >= {"optimizer.pt", "scheduler.pt", "rng.pt", "state.json",
                                             "train_config.yaml", "COMPLETE"}
    state = json.loads((t / "state.json").read_text())
    assert state["step"] == 6 and state["data"]["global_batch"] == 4
    # an interrupted save (no COMPLETE marker) is never resumed from
    broken = tmp_path / "run" / "checkpoints" / "step-00000008"
    broken.mkdir()
    assert latest_checkpoint(tmp_path / "run") == ckpts[-1]
    # the saved checkpoint is a model checkpoint other tools load
    from lamm.model.checkpoint import load_checkpoint

    model = load_checkpoint(ckpts[-1])
    assert model.config.llm_mode == "full"


def test_resume_refuses_changed_data(train_data, tmp_path):
    import pytest

    cfg = _cfg(train_data)
    train(cfg, tmp_path / "run", progress=False, stop_after=2)
    changed = _cfg(train_data, micro_batch_size=1)
    with pytest.raises(ValueError, match="global_batch"):
        train(changed, tmp_path / "run", resume=True, progress=False)
