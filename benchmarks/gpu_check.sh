#!/usr/bin/env bash
# GPU check (at most 13.5 minutes on one GPU: each setup has its own time limit): whisper-small training samples/s,
# peak memory and model FLOP utilisation with fp16, bf16, 8-bit AdamW and DeepSpeed ZeRO-2; fp16 with a loss scale
# started high enough to overflow (the skipped steps are counted and the run goes on); evaluation RTFx and WER of the
# transformers and CTranslate2 backends; prints one table.
# Run in an environment made by scripts/setup.sh with a CUDA torch and EXTRAS=weights,demo,dev,deepspeed,bnb:
#   bash benchmarks/gpu_check.sh
# Each setup runs in its own process (DeepSpeed under torchrun, as scripts/run.sh launches it); a setup that fails
# (a missing extra) prints its error and the others still run.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
results="$(mktemp)"
"$PYTHON" -c "import torch; print(torch.cuda.get_device_name(), 'torch', torch.__version__, 'CUDA', torch.version.cuda)"
for setup in fp16 fp16_overflow bf16 adam8bit; do
  timeout 120 "$PYTHON" benchmarks/gpu_check.py --setup "$setup" | tee -a "$results" \
    || echo "{\"setup\": \"$setup\", \"samples/s\": \"failed (see above)\"}" >> "$results"
done
timeout 180 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node 1 benchmarks/gpu_check.py --setup zero2 \
  | tee -a "$results" || echo '{"setup": "zero2", "samples/s": "failed (see above)"}' >> "$results"
for setup in eval eval_ct2; do
  timeout 75 "$PYTHON" benchmarks/gpu_check.py --setup "$setup" | tee -a "$results" \
    || echo "{\"setup\": \"$setup\", \"RTFx\": \"failed (see above)\"}" >> "$results"
done
echo
"$PYTHON" benchmarks/gpu_check.py --table "$results"
