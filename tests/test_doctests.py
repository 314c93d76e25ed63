"""Every docstring example in the package runs and holds (modules found by their ``>>>`` lines, so a new
example is checked without being listed here)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import lamm

SRC = Path(lamm.__file__).parent
MODULES = sorted(
    "lamm." + ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
    for p in SRC.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8")
)


def test_modules_with_examples_are_found():
    assert "lamm.conversation" in MODULES and "lamm.infer.engine" in MODULES and len(MODULES) > 30


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
