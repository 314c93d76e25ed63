#!/usr/bin/env bash
# Create the project's virtual environment and install lamm.
#   bash scripts/setup_venv.sh [VENV] [core|all]
# core: what `lamm quickstart` needs; all (the default): with the dev, serve, web and judge extras.
# torch is installed first, pinned to the CPU wheel that lies on local disk (torch==2.13.0):
# a bare "torch" requirement with no torch present would pull a multi-GB CUDA build.
# pip does not byte-compile (--no-compile: compiling all of torch took ~35 of the ~70 s of a fresh set-up);
# instead the modules lamm uses are imported once with bytecode writing on, so their .pyc files exist
# even where PYTHONDONTWRITEBYTECODE is set.
set -euo pipefail
VENV="${1:-.venv}"
WHAT="${2:-all}"
PYTHON="${PYTHON:-python3}"
case "$WHAT" in
  core) SPEC="." ;;
  all) SPEC=".[dev,serve,web,judge]" ;;
  *) echo "setup_venv.sh: the second argument must be core or all, got '$WHAT'" >&2; exit 2 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --no-compile "torch==2.13.0"
fi
"$VENV/bin/python" -m pip install --quiet --no-compile -e "$SPEC"
PYTHONDONTWRITEBYTECODE= "$VENV/bin/python" scripts/warm_bytecode.py "$WHAT"
