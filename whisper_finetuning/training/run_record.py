"""The output-dir contract: a run records the arguments that define it, and a rerun into the same output_dir
either is the same run (it resumes) or is refused, naming the arguments that differ.

Without it a rerun with other data, another learning rate or more steps silently resumes the old run and returns
the old model under a new card. The record is `_run_arguments.json` (a leading "_" keeps it out of Hub pushes: it
holds local paths).
"""

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from ..files import write_json_atomic
from .checkpoints import numbered_checkpoints

logger = logging.getLogger(__name__)
RECORD = "_run_arguments.json"
# The training arguments that define a run (what it learns from and how); logging, saving and evaluation cadence may
# change between a run and its resumption.
DEFINING_TRAINING_ARGUMENTS = (
    "learning_rate", "lr_scheduler_type", "warmup_steps", "warmup_ratio", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "optim", "seed", "data_seed", "fp16", "bf16", "world_size", "deepspeed",
)
EXCLUDED = {"token", "output_dir", "feature_cache_dir", "auto_resume", "overwrite_output_dir",
            "resume_requires_optimizer_state", "skip_nonfinite_steps", "min_loss_scale", "max_consecutive_overflow_steps",
            "model_index_name", "model_card_tags", "max_eval_samples", "do_normalize_eval"}
# What a finished or interrupted run leaves at the top of output_dir besides its checkpoints.
RUN_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "adapter_model.safetensors",
             "config.json", "generation_config.json", "training_args.bin", "trainer_state.json", "README.md",
             "train_results.json", "eval_results.json", "all_results.json", "baseline_results.json", RECORD)


class OutputDirError(RuntimeError):
    pass


def run_identity(training_args, *argument_groups) -> dict:
    """The arguments that define the run, from the kit's argument groups and the training arguments."""
    identity = {}
    for group in argument_groups:
        identity.update({k: v for k, v in asdict(group).items()
                         if k not in EXCLUDED and "eval" not in k and "retention" not in k})
    for name in DEFINING_TRAINING_ARGUMENTS:
        value = getattr(training_args, name, None)
        identity[name] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return identity


def holds_a_run(output_dir: Path) -> bool:
    return bool(numbered_checkpoints(output_dir)) or any((output_dir / name).exists() for name in RUN_FILES)


def clear_run(output_dir: Path) -> None:
    """Remove what an earlier run left (checkpoints and the run's files), for --overwrite_output_dir."""
    for checkpoint in numbered_checkpoints(output_dir):
        shutil.rmtree(checkpoint)
    for name in RUN_FILES:
        (output_dir / name).unlink(missing_ok=True)


def check_output_dir(output_dir: str, identity: dict, overwrite: bool, write: bool) -> None:
    """Refuse to continue a different run in output_dir; record this run's identity (when `write`, i.e. on the main
    process). A run resumed on purpose with --resume_from_checkpoint does not come here."""
    folder = Path(output_dir)
    record = folder / RECORD
    if overwrite:
        if write and holds_a_run(folder):
            logger.warning("--overwrite_output_dir: removing the earlier run's checkpoints and files in %s", folder)
            clear_run(folder)
    elif record.is_file():
        recorded = json.loads(record.read_text())
        # An argument the kit gained after the run was recorded is the same run while it stays off (None, False, 0).
        changed = [f"{k}: {recorded.get(k)!r} -> {identity.get(k)!r}" for k in sorted(set(recorded) | set(identity))
                   if recorded.get(k) != identity.get(k) and (k in recorded or identity.get(k) not in (None, False, 0))]
        if changed:
            raise OutputDirError(
                f"{folder} holds a different run (recorded -> now): {'; '.join(changed)}. Choose one: a new "
                "--output_dir, --overwrite_output_dir to replace that run, or the recorded arguments to resume it "
                "(or --resume_from_checkpoint PATH to continue from one of its checkpoints on purpose)")
        return
    elif holds_a_run(folder):
        raise OutputDirError(
            f"{folder} holds checkpoints or a model of a run that did not record its arguments ({RECORD}), so it cannot "
            "be told apart from this one. Choose one: a new --output_dir, --overwrite_output_dir to replace it, or "
            "--resume_from_checkpoint PATH to continue from one of its checkpoints on purpose")
    if write:
        write_json_atomic(record, identity)
