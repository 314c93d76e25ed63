"""Shared fixtures: the tiny model, built and saved ONCE per test session, and its tokenizer.

``tiny_model_dir`` is a complete checkpoint (``lamm model init --preset tiny --seed 0``) that any test
may load with ``lamm.model.checkpoint.load_checkpoint``; treat the directory as read-only. ``tiny_model``
is a fresh in-memory copy per test (cheap: ~0.1 s), safe to train or mutate.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # One thread: CI has 2 cores and runs tests in parallel; tiny models gain nothing from more threads.
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The built-in tiny byte-level BPE tokenizer (with <image>/<pcl> and a chat template). Do not mutate."""
    from lamm.model.llm import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny random model (preset ``tiny``, seed 0), built once per session. Read-only."""
    import torch

    from lamm.model.checkpoint import save_checkpoint
    from lamm.model.config import model_preset
    from lamm.model.mllm import MultimodalLM

    out = tmp_path_factory.mktemp("tiny_model") / "tiny"
    with torch.random.fork_rng(devices=[]):
        model = MultimodalLM.from_config(model_preset("tiny"))
    save_checkpoint(model, out, extra_manifest={"init": {"preset": "tiny", "seed": 0}})
    return out


@pytest.fixture
def tiny_model(tiny_model_dir: Path):
    """A fresh ``MultimodalLM`` loaded from ``tiny_model_dir`` (eval mode, CPU)."""
    from lamm.model.checkpoint import load_checkpoint

    return load_checkpoint(tiny_model_dir)
