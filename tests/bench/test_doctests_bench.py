"""Every docstring example in the parsers, metrics and scenario catalog runs and holds."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import lamm.bench.metrics as metrics_pkg

MODULES = ["lamm.bench.parsers", "lamm.bench.metrics", "lamm.bench.scenarios.catalog",
           "lamm.bench.scenarios.lamm_files"] + [
    f"lamm.bench.metrics.{m.name}" for m in pkgutil.iter_modules(metrics_pkg.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name not in ("lamm.bench.metrics.base",):  # the base module holds types only
        assert result.attempted > 0, f"{name} has no docstring example"
