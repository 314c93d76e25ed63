"""Typed configs: YAML loading, dotted overrides, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lamm.config import Config, ConfigError, apply_overrides, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


class Optim(Config):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)


class Train(Config):
    steps: int = 10
    name: str = "run"
    optim: Optim = Optim()
    files: list[str] = []


def write(tmp_path, data, name="cfg.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_load_defaults_and_file(tmp_path):
    assert load_config(Train, None).steps == 10
    cfg = load_config(Train, write(tmp_path, {"steps": 5, "optim": {"lr": 0.01}}))
    assert cfg.steps == 5 and cfg.optim.lr == 0.01 and cfg.optim.betas == (0.9, 0.95)


def test_override_dotted_and_types(tmp_path):
    cfg = load_config(Train, write(tmp_path, {"steps": 5}), ["optim.lr=1e-4", "steps=7", "files=[a.json, b.json]"])
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert isinstance(cfg.optim.lr, float)
    assert cfg.steps == 7
    assert cfg.files == ["a.json", "b.json"]


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, {"optim": {"lr": 0.1, "momentum": 0.9}})
    with pytest.raises(ConfigError) as e:
        load_config(Train, p)
    msg = str(e.value)
    assert str(p) in msg and "optim.momentum" in msg and "unknown key" in msg


def test_wrong_type_names_key(tmp_path):
    p = write(tmp_path, {"steps": "many"})
    with pytest.raises(ConfigError) as e:
        load_config(Train, p)
    assert "steps" in str(e.value) and str(p) in str(e.value) and "'many'" in str(e.value)


def test_unknown_override_key_is_error(tmp_path):
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(Train, None, ["optim.lrr=1"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError):
        parse_override("no_equals_sign")
    with pytest.raises(ConfigError):
        parse_override("a..b=1")


def test_override_into_value_is_error():
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"steps": 3}, ["steps.x=1"])


def test_override_indexes_lists():
    """``data.train.0.weight=2`` reaches an item of a list (the docs' own example); lists never grow."""
    data = {"data": {"train": [{"file": "a.json"}, {"file": "b.json"}]}, "tags": ["x", "y"]}
    out = apply_overrides(data, ["data.train.1.weight=2", "tags.0=z"])
    assert out == {"data": {"train": [{"file": "a.json"}, {"file": "b.json", "weight": 2}]}, "tags": ["z", "y"]}
    assert data["data"]["train"][1] == {"file": "b.json"}  # the input is not changed
    with pytest.raises(ConfigError, match="has 2 items; index 2 is past its end"):
        apply_overrides(data, ["data.train.2.weight=2"])
    with pytest.raises(ConfigError, match="data.train is a list; index it with a number"):
        apply_overrides(data, ["data.train.weight=2"])


def test_train_config_list_override_end_to_end():
    from lamm.train.config import TrainConfig

    cfg = load_config(TrainConfig, REPO / "configs/train/tiny.yaml", ["data.train.0.weight=2"])
    assert cfg.data.train[0].weight == 2


def test_dump_roundtrip(tmp_path):
    cfg = load_config(Train, None, ["optim.lr=0.5", "name=x"])
    cfg.dump(tmp_path / "resolved.yaml")
    again = load_config(Train, tmp_path / "resolved.yaml")
    assert again == cfg


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Train, tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Train, p)
