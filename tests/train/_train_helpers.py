"""Helpers of the training tests: tiny LAMM instruction files made in code, and small configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lamm.train.config import TrainConfig

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 40)}
SHAPES_3D = ["cube", "sphere"]

# A smaller LLM than the tiny preset's, so each test builds and steps in well under a second.
SMALL_MODEL = {"llm.config.num_hidden_layers": 2, "llm.config.intermediate_size": 256}


def make_instruction_data(root: Path, n_images: int = 12, n_clouds: int = 4, name: str = "train.json",
                          seed: int = 0) -> Path:
    """Write ``n_images`` 64-px PNGs and ``n_clouds`` ``(300, 6)`` point clouds under ``root`` and a LAMM
    instruction JSON (array) referencing them by relative path; answers depend on the media."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "pcls").mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    names = list(COLOURS)
    for i in range(n_images):
        colour = names[i % len(names)]
        img = np.full((64, 64, 3), 245, dtype=np.uint8)
        x, y = rng.integers(4, 36, size=2)
        img[y:y + 24, x:x + 24] = COLOURS[colour]
        path = f"images/{name.split('.')[0]}_{i:03d}.png"
        Image.fromarray(img).save(root / path)
        turns = [{"from": "human", "value": "<image>\nWhat colour is the square?"},
                 {"from": "gpt", "value": f"The square is {colour}."}]
        if i % 3 == 0:  # some multi-turn records
            turns += [{"from": "human", "value": "Is there a square in the image?"},
                      {"from": "gpt", "value": "Yes, there is a square."}]
        records.append({"id": f"img{i}", "image": path, "conversations": turns, "task_type": "conversation"})
    for i in range(n_clouds):
        shape = SHAPES_3D[i % 2]
        pts = rng.normal(size=(300, 3)).astype(np.float32)
        if shape == "cube":
            pts = rng.uniform(-1, 1, size=(300, 3)).astype(np.float32)
        else:
            pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        rgb = np.tile(np.array([[0.8, 0.2, 0.2]], dtype=np.float32), (300, 1))
        path = f"pcls/{name.split('.')[0]}_{i:03d}.npy"
        np.save(root / path, np.concatenate([pts, rgb], axis=1))
        records.append({"id": f"pcl{i}", "pcl": path, "task_type": "classification3d",
                        "conversations": [{"from": "human", "value": "What is the object in the point cloud?"},
                                          {"from": "gpt", "value": f"It is a {shape}."}]})
    out = root / name
    out.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return out


def small_train_config(data_file: Path, **kw: Any) -> TrainConfig:
    """A TrainConfig for the small tiny-preset model on ``data_file`` (fp32, full stage, no checkpoints)."""
    base: dict[str, Any] = {
        "model": {"preset": "tiny", "overrides": dict(SMALL_MODEL)},
        "stage": "full",
        "data": {"train": [{"file": str(data_file)}], "max_length": 160},
        "steps": 4, "micro_batch_size": 2, "grad_accum": 2,
        "optim": {"lr": 3e-3, "warmup_steps": 1, "weight_decay": 0.0},
        "checkpoint": {"save_every": 0, "save_final": False},
        "seed": 0,
    }
    for key, value in kw.items():
        node = base
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return TrainConfig.model_validate(base)
