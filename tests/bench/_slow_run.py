"""Run a recipe with the call-counting engine (see _lammbench_helpers.CountingEngine); used by
test_runner.py as a subprocess that the test kills with SIGKILL.

usage: python _slow_run.py RECIPE ROOT OUT LOG READY BLOCK_AFTER [override ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _lammbench_helpers import CountingEngine

from lamm.bench.recipe import load_recipe
from lamm.bench.runner import run_recipe

if __name__ == "__main__":
    recipe, root, out, log, ready, block_after, *overrides = sys.argv[1:]
    engine = CountingEngine(log, block_after=int(block_after) if block_after != "none" else None, ready_path=ready)
    run_recipe(load_recipe(recipe, overrides), engine, out_dir=out, root=root, show_progress=False)
