"""Import the modules lamm uses once, so that Python writes their bytecode (.pyc) files.

Run by ``scripts/setup_venv.sh`` with ``PYTHONDONTWRITEBYTECODE`` unset, after a ``pip install
--no-compile``: this compiles only what lamm imports instead of every file of every package.
``core`` covers the quickstart's path; ``all`` adds the extras the tests and servers import.
A missing extra is reported, not fatal (the set-up still works; those modules compile on first use).
"""

from __future__ import annotations

import importlib
import sys

CORE = [
    "lamm.cli.main", "lamm.quickstart", "lamm.quickstart_report", "lamm.data.build", "lamm.data.synthetic",
    "lamm.model.mllm", "lamm.train", "lamm.bench.runner", "lamm.infer.backends.lamm",
    "transformers.models.llama.modeling_llama", "safetensors.torch",
]
EXTRAS = ["pytest", "hypothesis", "fastapi", "uvicorn", "httpx", "gradio", "gradio_client", "plotly", "openai",
          "playwright.sync_api"]


def main(what: str) -> int:
    for name in CORE:
        importlib.import_module(name)  # a failure here is a broken install: let it raise
    if what == "all":
        for name in EXTRAS:
            try:
                importlib.import_module(name)
            except ImportError as e:
                print(f"warm_bytecode: could not import {name} ({e}); it will be compiled on first use",
                      file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "all"))
