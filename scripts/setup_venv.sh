#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install the project with its extras.
# Uses uv when it is available (about 30 s from a warm cache), otherwise installs uv with pip, otherwise pip.
set -euo pipefail
VENV="${1:-.venv}"
EXTRAS="${2:-all}"
PYTHON="${PYTHON:-python3}"

if ! command -v uv >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --user uv >/dev/null 2>&1 || "$PYTHON" -m pip install --quiet uv >/dev/null 2>&1 || true
    export PATH="$HOME/.local/bin:$PATH"
fi

if command -v uv >/dev/null 2>&1; then
    [ -x "$VENV/bin/python" ] || uv venv --quiet --python "$PYTHON" "$VENV"
    echo "installing deg-live[$EXTRAS] into $VENV with uv (first time: a few minutes, torch is large)"
    VIRTUAL_ENV="$VENV" uv pip install --quiet -e ".[$EXTRAS]"
else
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    echo "installing deg-live[$EXTRAS] into $VENV with pip (first time: several minutes, torch is large)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
fi
"$VENV/bin/python" -c "import camera_adapters, deg_train, deg_live; print('environment ready:', '$VENV')"
