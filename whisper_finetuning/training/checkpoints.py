"""Finding the checkpoint to resume from, and saving one when the job is told to stop."""

import logging
import re
import signal
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
# The Trainer writes trainer_state.json last: a checkpoint without it was cut off while saving.
COMPLETE_MARKERS = ("trainer_state.json",)
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


def is_complete(checkpoint: Path) -> bool:
    return all((checkpoint / m).is_file() for m in COMPLETE_MARKERS) and (
        any((checkpoint / w).is_file() for w in WEIGHTS) or any(checkpoint.glob("global_step*")))


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint-N in output_dir that finished saving; incomplete ones are skipped and reported."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    numbered = sorted(((int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))),
                      reverse=True)
    for _, checkpoint in numbered:
        if is_complete(checkpoint):
            return checkpoint
        logger.warning("Ignoring %s: it was not completely saved", checkpoint)
    return None


class SaveOnSignalCallback(TrainerCallback):
    """On SIGTERM (a scheduler's pre-emption, Ctrl-\\) or SIGINT (Ctrl-C): save a checkpoint at the end of the
    current optimizer step, then stop. Auto-resume continues from it."""

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.received = None
        self.signals = signals
        self.previous_handlers = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.previous_handlers = {signum: signal.signal(signum, self._handle) for signum in self.signals}

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.received is not None:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name
        logger.warning("Received %s: saving a checkpoint after this step, then stopping", self.received)

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:
            control.should_save = True
            control.should_training_stop = True
        return control
