#!/usr/bin/env bash
# The whole loop, offline, on CPU: evaluate whisper-base on synthetic Swedish (Common Voice + FLEURS layouts),
# fine-tune it, evaluate again, and write a report (demo_output/report/). Sets itself up first if needed.
#   bash scripts/demo.sh            # 13 min on a fresh 2-core machine with native bfloat16 (a reviewer's run,
#                                   # before English scoring was added); much longer where training is float32
#   bash scripts/demo.sh --quick    # a smoke run
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# The demo needs no Hub; set HF_HUB_OFFLINE=0 to let it look there first.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
cd "$REPO"
exec "$VENV/bin/python" -m whisper_finetuning.demo "$@"
