"""Fixtures shared by the tests under tests/bench."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def make_synth_2d(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Builder of a tiny 2D-only synthetic data set (no 3D objects or scenes, no word lists).

    ``make_synth_2d(n_train_2d, n_test_2d, name="synth")`` synthesises a fresh set into a new temporary folder
    and returns it; each call builds its own, so a module that edits its copy affects no other.
    """
    from lamm.data.synthetic import SynthConfig, synthesize

    def build(n_train_2d: int, n_test_2d: int, name: str = "synth") -> Path:
        out = tmp_path_factory.mktemp(name)
        synthesize(out, SynthConfig(n_train_2d=n_train_2d, n_test_2d=n_test_2d, n_train_objects_3d=0,
                                    n_test_objects_3d=0, n_train_scenes_3d=0, n_test_scenes_3d=0, words=False))
        return out

    return build


@pytest.fixture(autouse=True)
def _no_meteor_jvm(monkeypatch):
    """METEOR starts a Java process (~5 s) per caption evaluation: off in these tests, except where a test
    turns it back on (tests/bench/test_metrics_caption.py::test_meteor_where_java_runs)."""
    monkeypatch.setenv("LAMM_METEOR", "0")
