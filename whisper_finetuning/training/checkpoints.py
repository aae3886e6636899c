"""Finding the checkpoint to resume from (validated, falling back past broken ones), and saving one when the job
is told to stop."""

import json
import logging
import re
import signal
from pathlib import Path

from transformers import TrainerCallback

logger = logging.getLogger(__name__)
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors")


class CheckpointError(RuntimeError):
    pass


def checkpoint_problems(checkpoint: Path, require_optimizer_state: bool = True) -> list[str]:
    """What keeps `checkpoint` from resuming a run exactly; [] when nothing does.

    The Trainer writes trainer_state.json last, so a checkpoint without it (or with a truncated one, e.g. after a
    full disk) was cut off while saving. Resuming the schedule also needs the optimizer, scheduler and random states
    (DeepSpeed keeps the first two in its global_step* folder)."""
    problems = []
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except FileNotFoundError:
        problems.append("trainer_state.json is missing (the save was cut off)")
    except (json.JSONDecodeError, UnicodeDecodeError):
        problems.append(f"trainer_state.json is damaged ({state.stat().st_size} bytes that are not JSON)")
    deepspeed = any(checkpoint.glob("global_step*"))
    if not deepspeed and not any((checkpoint / name).is_file() for name in WEIGHTS):
        problems.append("the model weights are missing")
    if require_optimizer_state:
        if not deepspeed:
            problems += [f"{name} is missing" for name in ("optimizer.pt", "scheduler.pt")
                         if not (checkpoint / name).is_file()]
        if not any(checkpoint.glob("rng_state*.pth")):
            problems.append("the random number generator state (rng_state*.pth) is missing")
    return problems


def numbered_checkpoints(output_dir: str | Path) -> list[Path]:
    """checkpoint-N folders in output_dir, newest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def last_complete_checkpoint(output_dir: str | Path, require_optimizer_state: bool = True) -> Path | None:
    """The newest checkpoint-N in output_dir that can resume the run; newer broken ones are skipped with a warning
    naming what is wrong. When checkpoints exist but none can resume, that is an error, not a silent restart."""
    rejected = []
    for checkpoint in numbered_checkpoints(output_dir):
        problems = checkpoint_problems(checkpoint, require_optimizer_state)
        if not problems:
            for path, reasons in rejected:
                logger.warning("Not resuming from %s: %s; using the previous valid checkpoint %s",
                               path.name, "; ".join(reasons), checkpoint.name)
            return checkpoint
        rejected.append((checkpoint, problems))
    if rejected:
        details = "; ".join(f"{path.name}: {', '.join(reasons)}" for path, reasons in rejected)
        raise CheckpointError(
            f"{output_dir} holds checkpoints, but none can resume the run ({details}). Delete the broken ones, pass "
            "--overwrite_output_dir to start over, or --resume_requires_optimizer_state false to resume from weights "
            "alone (the learning-rate schedule then restarts)")
    return None


def checked_checkpoint(path: str | Path, require_optimizer_state: bool = True) -> Path:
    """A checkpoint given with --resume_from_checkpoint, refused with the reasons when it cannot resume."""
    checkpoint = Path(path)
    if not checkpoint.is_dir():
        raise CheckpointError(f"--resume_from_checkpoint {path}: no such folder")
    problems = checkpoint_problems(checkpoint, require_optimizer_state)
    if problems:
        raise CheckpointError(f"cannot resume from {path}: {'; '.join(problems)}. Choose another checkpoint, or pass "
                              "--resume_requires_optimizer_state false to resume from its weights alone")
    return checkpoint


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
        self.restore_handlers()

    def restore_handlers(self) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.previous_handlers = {}

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
