"""Data-parallel runs: two gloo processes (torch.multiprocessing spawn) write the same results as one."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch.multiprocessing as tmp_mp

sys.path.insert(0, str(Path(__file__).parent))
from _lammbench_helpers import make_lamm_benchmark

RECIPES = ("scienceqa_ppl", "lsp")
OVERRIDES = ["inferencer.batch_size=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from lamm.bench.runner import run_recipe

    # one process group for several runs, the last one a resume of the one before
    for recipe in (*RECIPES, RECIPES[-1]):
        res = run_recipe(recipe, "dummy", out_dir=Path(out) / recipe, root=root, show_progress=False,
                         overrides=OVERRIDES)
        assert (res is None) == (rank != 0)


def test_two_processes_equal_one(tmp_path):
    from lamm.bench.runner import run_recipe

    root = make_lamm_benchmark(tmp_path / "data", n=7, scenarios=["ScienceQA", "LSP"])
    for recipe in RECIPES:
        run_recipe(recipe, "dummy", out_dir=tmp_path / "one" / recipe, root=root, show_progress=False,
                   overrides=OVERRIDES)
    tmp_mp.spawn(_worker, args=(2, _free_port(), str(root), str(tmp_path / "two")), nprocs=2, join=True)
    for recipe in RECIPES:
        one, two = tmp_path / "one" / recipe, tmp_path / "two" / recipe
        for f in ("results.json", "answers.jsonl", "report.md"):
            assert (one / f).read_bytes() == (two / f).read_bytes(), f"{recipe}: {f}"
        events = [json.loads(line) for line in (two / "log.jsonl").read_text().splitlines()]
        assert {e["rank"] for e in events if e["event"] == "batch"} == {0, 1}, "both ranks answered"
        n = json.loads((one / "results.json").read_text())["n_questions"]
        assert [e["generated"] for e in events if e["event"] == "done"] == ([n, 0] if recipe == "lsp" else [n])
    info = json.loads((tmp_path / "two" / "lsp" / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["generated"] == 0 and info["from_cache"] == 98
