"""Fixtures of the training tests (helpers in ``_train_helpers``). Everything is CPU, fp32, one thread,
and small enough that the whole ``tests/train`` runs in a couple of minutes on 2 cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _train_helpers import make_instruction_data


@pytest.fixture(autouse=True)
def _one_thread():
    # The "2 cores" budget: one intra-op thread keeps results stable and the suite within its time.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """A 16-record instruction file (12 images, 4 point clouds) with its media."""
    root = tmp_path_factory.mktemp("train_data")
    return make_instruction_data(root)
