"""Every verb group and every verb answers --help (the CLI contract of the foundation issue)."""

from __future__ import annotations

import typer
from typer.main import get_command
from typer.testing import CliRunner

from lamm.cli.main import app

GROUPS = ["data", "model", "train", "chat", "serve", "bench", "quickstart", "export"]


def _paths(cmd, prefix=()):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


def test_top_level_lists_every_group():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for g in GROUPS:
        assert g in res.output, g


def test_every_command_has_help():
    root = get_command(app)
    paths = list(_paths(root))
    assert len(paths) > 20
    runner = CliRunner()
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output, path
    assert isinstance(app, typer.Typer)
