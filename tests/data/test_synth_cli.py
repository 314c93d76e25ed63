"""`lamm data synth` from the command line: deterministic files that pass `lamm data validate`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from typer.testing import CliRunner

from lamm.cli.main import app

SMALL = ["n_train_2d=6", "n_test_2d=4", "n_train_objects_3d=4", "n_test_objects_3d=3",
         "n_train_scenes_3d=3", "n_test_scenes_3d=3", "points_per_object=128", "points_per_scene=512"]


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_cli_is_deterministic_and_valid(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / name), "--seed", "3", *SMALL])
        assert res.exit_code == 0, res.output
    a, b = digest_tree(tmp_path / "a"), digest_tree(tmp_path / "b")
    assert a == b and len(a) > 20
    files = sorted(str(p) for p in (tmp_path / "a" / "benchmark").rglob("*.json"))
    assert len(files) >= 16  # 2D + 3D files for train and test
    res = runner.invoke(app, ["data", "validate", *files, "--root", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "c"), "--seed", "4", *SMALL])
    assert digest_tree(tmp_path / "c") != a


def test_synth_cli_rejects_unknown_override(tmp_path):
    res = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "n_trian_2d=3"])
    assert res.exit_code == 2 and "n_trian_2d" in res.output


def test_shipped_synth_config_holds_the_defaults():
    """`lamm data synth --help` points at configs/data/synth.yaml: it exists and equals SynthConfig()."""
    from lamm.config import load_config
    from lamm.data.synthetic import SynthConfig

    path = Path(__file__).resolve().parents[2] / "configs" / "data" / "synth.yaml"
    assert load_config(SynthConfig, path) == SynthConfig()
