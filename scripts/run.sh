#!/usr/bin/env bash
# Launch fine-tuning from a config on one machine:
#   bash scripts/run.sh configs/single_gpu_small.yaml          # one process
#   bash scripts/run.sh configs/deepspeed_large.yaml 8         # 8 processes (torchrun; DeepSpeed if the config says)
# Extra arguments after the process count go to the script. Re-running the same command resumes from the newest
# complete checkpoint in the config's output_dir. On CPU the processes talk over gloo, on GPU over NCCL.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG="${1:?usage: bash scripts/run.sh CONFIG.yaml [NUM_PROCESSES] [extra script arguments]}"
NPROC="${2:-1}"
shift $(( $# >= 2 ? 2 : 1 ))
PYTHON="${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}"
SCRIPT="$REPO/run_speech_recognition_seq2seq_streaming.py"
# DeepSpeed needs the distributed environment that torchrun sets up, even for one process.
if [ "$NPROC" -eq 1 ] && ! grep -q "^deepspeed:" "$CONFIG" && [[ " $* " != *" --deepspeed "* ]]; then
  exec "$PYTHON" "$SCRIPT" "$CONFIG" "$@"
fi
exec "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "$SCRIPT" "$CONFIG" "$@"
