#!/usr/bin/env bash
# Set up (if needed), then run the test suite: unit tests plus the integration tests on real pretrained weights.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"` for the fast unit tests only.
set -euo pipefail
EXTRAS="${EXTRAS:-weights,demo,dev,deepspeed,bnb,lora,export,app,search,augment}"  # the tests run every feature
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
export HF_HUB_OFFLINE=1  # the tests never use the network
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"
