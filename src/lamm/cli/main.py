"""The ``lamm`` command: verb groups, each in its own module under ``lamm.cli``.

Heavy libraries (torch, transformers) are imported inside the commands, so ``lamm --help`` is fast.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="lamm",
    help="LAMM: build multimodal instruction data, train and chat with image / point-cloud LLMs, benchmark them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module, group name, help); a module exposes ``app`` (a sub-group) or ``register(app)`` (top-level verbs).
_GROUPS = [
    ("lamm.cli.data", "data", "Instruction data: synthesize, validate, build, convert, stats."),
    ("lamm.cli.model", "model", "Models: init a preset, show info, import LAMM checkpoints."),
    ("lamm.cli.train", "train", "Train a model from a YAML config (align / instruct / full)."),
    ("lamm.cli.chat", "chat", "Chat with a model about an image or a point cloud (interactive or batch)."),
    ("lamm.cli.serve", "serve", "Serve a model: OpenAI-compatible API or web demo."),
    ("lamm.cli.bench", "bench", "Benchmark: run recipes and suites, score answers, reports."),
]
_VERBS = ["lamm.cli.quickstart", "lamm.cli.export"]


def _attach() -> None:
    for module, name, help_text in _GROUPS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # group not built yet
                continue
            raise
        if hasattr(mod, "register"):
            mod.register(app)
        else:
            app.add_typer(mod.app, name=name, help=help_text)
    for module in _VERBS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                continue
            raise
        mod.register(app)


_attach()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # python -m lamm.cli.main (used by tests and torchrun)
    main()
