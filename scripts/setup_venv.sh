#!/usr/bin/env bash
# Create the project's virtual environment and install lamm with its dev extras.
# torch is installed first, pinned to the CPU wheel that lies on local disk (torch==2.13.0):
# a bare "torch" requirement with no torch present would pull a multi-GB CUDA build.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install --quiet -e ".[dev,serve,web,judge]"
