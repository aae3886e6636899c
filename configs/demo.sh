#!/usr/bin/env bash
# Quickstart: set up (if needed), then transcribe and score a few spoken clips with pretrained Whisper, offline.
# Extra arguments go to `python -m whisper_finetuning.quickstart` (see --help).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# Use the Hub if it is reachable and you want it: HF_HUB_OFFLINE=0 bash configs/demo.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
cd "$REPO"
exec "$VENV/bin/python" -m whisper_finetuning.quickstart "$@"
