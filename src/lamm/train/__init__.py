"""Training: configs, data mixing, collation (padding or packing), the loop, distributed engines,
checkpoints with exact resume, metrics, and export.

Python quick start::

    from lamm.config import load_config
    from lamm.train import TrainConfig, train

    cfg = load_config(TrainConfig, "configs/train/tiny.yaml", ["steps=50"])
    result = train(cfg, "runs/tiny")          # TrainResult
    result.checkpoint, result.final_loss      # final checkpoint dir, last step's loss
"""

from lamm.train.config import DataConfig, DataSource, ModelSource, OptimConfig, TrainConfig
from lamm.train.loop import TrainResult, train

__all__ = ["DataConfig", "DataSource", "ModelSource", "OptimConfig", "TrainConfig", "TrainResult", "train"]
