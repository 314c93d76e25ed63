"""``lamm train configs/train/tiny.yaml`` trains the tiny model (loss falls); every train config loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lamm.cli.main import app
from lamm.config import load_config
from lamm.train import TrainConfig

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "train").glob("*.yaml"))


def _overrides(data: Path, steps: int) -> list[str]:
    return [f"data.train=[{{file: {data}, weight: 1.0}}]", "data.eval=[]", f"steps={steps}", "micro_batch_size=4",
            "optim.warmup_steps=1", "checkpoint.save_every=3", "eval.every=0", "cpu_threads=1"]


def test_cli_trains_tiny_and_the_loss_falls(train_data, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", *_overrides(train_data, 8), "--out", str(out),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 8 and losses[-1] < 0.8 * losses[0], losses
    assert (out / "checkpoints" / "step-00000008" / "trainer" / "COMPLETE").is_file()
    # --resume on a finished run does nothing and says so
    again = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", *_overrides(train_data, 8), "--out",
                                     str(out), "--resume", "--no-progress"])
    assert again.exit_code == 0 and "nothing to do" in again.output
    # the same --out without --resume, or a resume with another global batch: one line each, no traceback
    res = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", *_overrides(train_data, 8), "--out",
                                   str(out), "--no-progress"])
    assert res.exit_code == 2 and "already holds checkpoints" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", *_overrides(train_data, 10),
                                   "micro_batch_size=2", "--out", str(out), "--resume", "--no-progress"])
    assert res.exit_code == 2 and "cannot resume: data global_batch" in res.output, res.output


def test_placeholder_paths_of_a_shipped_config_are_named_before_loading(tmp_path):
    """configs/train/lamm2d.yaml as shipped has /path/to/... placeholders: say which fields, exit 2."""
    res = CliRunner().invoke(app, ["train", "configs/train/lamm2d.yaml", "--out", str(tmp_path / "r"),
                                   "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "paths of the config do not exist" in res.output and "model.overrides.llm.name_or_path" in res.output
    assert "data.train.0.file" in res.output and "Traceback" not in res.output


def test_cli_reports_config_and_data_errors(train_data, tmp_path):
    res = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", "optim.lrr=1", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "optim.lrr: unknown key" in res.output
    res = CliRunner().invoke(app, ["train", "configs/train/tiny.yaml", *_overrides(train_data, 1),
                                   "data.max_length=20", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "train.json: record 0" in res.output


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_train_configs_validate(path):
    cfg = load_config(TrainConfig, path)
    if cfg.model.preset is not None:
        from lamm.model.config import model_preset

        model_preset(cfg.model.preset, [f"{k}={json.dumps(v)}" for k, v in cfg.model.overrides.items()])
    if path.stem != "tiny":  # the LAMM recipes: global batch 64 on 4 GPUs, 2 epochs, lr 5e-4, LoRA r=32
        assert cfg.global_batch_size(4) == 64 and cfg.epochs == 2 and cfg.optim.lr == 5e-4
        assert cfg.model.overrides["lora"]["r"] == 32 and cfg.data.max_length == 656
