"""Benchmark scenarios: datasets of :class:`Sample` built from benchmark records.

* ``lamm_files`` — every LAMM-Benchmark dataset (CIFAR10, VOC2012, ScienceQA, ..., ScanQA) read from
  its file under a benchmark root;
* ``synthetic`` — ``Synth-*`` / ``Synth3D-*`` over the output of ``lamm data synth``, any split;
* ``generic`` — any LAMM-format JSON/JSONL file scored by a named metric family.

:func:`load_scenario` builds one from a recipe's ``scenario`` section; :func:`get_scenario_spec` gives a
scenario's static facts (metric family, task type) without reading data.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lamm.bench.scenarios.base import (
    SCENARIOS,
    MissingDataError,
    RecordScenario,
    Sample,
    Scenario,
    ScenarioError,
    ScenarioSpec,
    subset_indices,
)

if TYPE_CHECKING:
    from lamm.bench.recipe import ScenarioConfig

__all__ = [
    "SCENARIOS", "MissingDataError", "RecordScenario", "Sample", "Scenario", "ScenarioError", "ScenarioSpec",
    "get_scenario_spec", "load_all", "load_scenario", "subset_indices",
]

_MODULES = ("lamm.bench.scenarios.lamm_files", "lamm.bench.scenarios.synthetic", "lamm.bench.scenarios.generic",
            "lamm.bench.scenarios.pope", "lamm.bench.scenarios.mme", "lamm.bench.scenarios.seedbench",
            "lamm.bench.scenarios.mmbench")


def load_all() -> None:
    """Import every scenario module so that ``SCENARIOS`` is complete."""
    for m in _MODULES:
        importlib.import_module(m)


def get_scenario_spec(name: str) -> ScenarioSpec:
    """The registered scenario ``name`` (did-you-mean error when unknown)."""
    load_all()
    return SCENARIOS.get(name)


def load_scenario(cfg: ScenarioConfig, root: str | os.PathLike | None, *, split: str | None = None,
                  file: str | None = None) -> Scenario:
    """Build the scenario of a recipe's ``scenario`` section; ``root`` is the benchmark / data root.

    ``split`` and ``file`` override the section's own (used to load an in-context example pool).
    """
    spec = get_scenario_spec(cfg.name)
    base = cfg.root if cfg.root is not None else root
    if base is None and spec.suite != "generic":
        raise ScenarioError(f"scenario {cfg.name!r}: no data root; pass --root DIR (the benchmark or "
                            "`lamm data synth` output directory) or set scenario.root in the recipe")
    split = split or cfg.split
    if split not in spec.splits and spec.splits:
        raise ScenarioError(f"scenario {cfg.name!r}: unknown split {split!r}; expected one of {', '.join(spec.splits)}")
    extra = {"params": dict(cfg.params)} if cfg.params else {}
    try:
        scenario = spec.load(Path(base) if base is not None else None, split=split, file=file or cfg.file,
                             metric=cfg.metric, task_type=cfg.task_type, **extra)
    except TypeError as e:
        if extra and "params" in str(e):
            raise ScenarioError(f"scenario {cfg.name!r} takes no scenario.params (got {sorted(cfg.params)}); "
                                "remove them from the recipe") from None
        raise
    # circular evaluation (MMBench): every rotation of the options, before the transforms below so a
    # corruption applies to the rotated questions
    if cfg.circular:
        from lamm.bench.circular import circular_scenario

        scenario = circular_scenario(scenario)
    # desiderata transforms: relabelled options (instruction following), corrupted copies (robustness)
    if cfg.verbalizer:
        from lamm.bench.desiderata.instruction_following import verbalize_scenario

        scenario = verbalize_scenario(scenario, cfg.verbalizer)
    if cfg.corruption is not None:
        from lamm.bench.desiderata.robustness import corrupt_scenario

        scenario = corrupt_scenario(scenario, cfg.corruption)
    return scenario
