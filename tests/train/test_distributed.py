"""Two gloo processes under torchrun (DDP or FSDP2, micro-batch 2 each) reproduce one process with two
accumulated micro-batches: same global batches, same per-step losses, same final weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _train_helpers import small_train_config
from safetensors.torch import load_file

from lamm.train import train

COMMON = {"steps": 3, "data__packing": True, "checkpoint": {"save_final": True}}


@pytest.fixture(scope="module")
def single(train_data, tmp_path_factory):
    return train(small_train_config(train_data, micro_batch_size=2, grad_accum=2, **COMMON),
                 tmp_path_factory.mktemp("single"), progress=False)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_single_process(train_data, tmp_path, single, strategy):
    cfg = small_train_config(train_data, micro_batch_size=2, grad_accum=1, cpu_threads=1,
                             distributed={"strategy": strategy, "backend": "gloo"}, **COMMON)
    cfg.dump(tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "lamm.cli.train", str(tmp_path / "ddp.yaml"), "--out", str(tmp_path / "ddp"), "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    ddp = [r for r in rows if "loss" in r]
    assert [r["samples"] for r in ddp] == [4, 4, 4]  # the global batch, counted over both ranks
    for a, b in zip(single.metrics, ddp):
        assert abs(a["loss"] - b["loss"]) <= 1e-5 * abs(a["loss"]), (a["loss"], b["loss"])
        assert a["tokens"] == b["tokens"] and a["supervised_tokens"] == b["supervised_tokens"]
    w1 = load_file(str(single.checkpoint / "weights.safetensors"))
    w2 = load_file(str(tmp_path / "ddp" / "checkpoints" / "step-00000003" / "weights.safetensors"))
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], atol=1e-5, rtol=1e-4, msg=k)
