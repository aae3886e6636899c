"""One trial: a run of the kit's training script, run_speech_recognition_seq2seq_streaming.py, with the trial's
sampled arguments on top of the base config, in its own output_dir. Every evaluation during training is reported to
the trial, so the pruner can stop a bad run early; the final evaluation is the trial's value."""

import gc
import logging
import os
import socket
from dataclasses import dataclass, fields
from pathlib import Path

import optuna
import torch
from transformers import HfArgumentParser, TrainerCallback

from ..args import config_to_flags, parse_config_and_flags
from ..entry_points import TRAIN_SCRIPT, import_script
from ..training.checkpoints import CheckpointError
from ..training.nonfinite import NonFiniteError
from .space import Parameter, sample

logger = logging.getLogger(__name__)
SET_BY_THE_SEARCH = ("output_dir", "overwrite_output_dir", "resume_from_checkpoint")


@dataclass(frozen=True)
class Objective:
    """What a trial minimises: the target WER, plus `retention_weight` x the retention WER (the forgetting guard's
    mean WER over the retention sets) when that weight is set. A weighted sum keeps one number per trial, so TPE,
    pruning and a single best config all work (Optuna prunes single-objective studies only)."""

    retention_weight: float = 0.0

    def value(self, metrics: dict) -> float | None:
        """None until `metrics` hold everything the objective needs."""
        if "eval_wer" not in metrics:
            return None
        if not self.retention_weight:
            return metrics["eval_wer"]
        if "eval_retention_wer" not in metrics:
            return None
        return metrics["eval_wer"] + self.retention_weight * metrics["eval_retention_wer"]


class ReportToTrial(TrainerCallback):
    """Reports the objective of each evaluation to the trial and prunes the trial when its pruner says so. Pruning
    raises optuna.TrialPruned out of the training loop, as the Trainer's own hyperparameter_search does: a trial
    thrown away saves no model and runs no final evaluation."""

    def __init__(self, trial: optuna.Trial, objective: Objective):
        self.trial, self.objective = trial, objective
        self.step, self.metrics, self.reported = None, {}, set()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.collect(state, metrics)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # With retention sets, the target and each retention set are evaluated one after the other, and their mean
        # retention WER (eval_retention_wer) is logged last.
        self.collect(state, logs)

    def collect(self, state, values: dict | None) -> None:
        if state.global_step != self.step:
            self.step, self.metrics = state.global_step, {}
        self.metrics.update(values or {})
        value = self.objective.value(self.metrics)
        if value is None or state.global_step in self.reported:  # the final evaluation repeats the last step's
            return
        self.reported.add(state.global_step)
        self.trial.report(value, state.global_step)
        if 0 < state.global_step < state.max_steps and self.trial.should_prune():
            note = f"pruned at step {state.global_step} of {state.max_steps} (objective {value:.2f})"
            self.trial.set_user_attr("note", note)
            raise optuna.TrialPruned(note)


def training_script():
    """The kit's training entry point, at the top of the repository beside the package."""
    return import_script(TRAIN_SCRIPT)


def check_base_config(script, config: str, space: list[Parameter], objective: Objective, pruning: bool) -> None:
    """Fail before the first trial: the space names training arguments, and the base config trains and evaluates."""
    known = {f.name for group in script.ARGUMENTS for f in fields(group)}
    unknown = [parameter.name for parameter in space if parameter.name not in known]
    if unknown:
        raise ValueError(f"the search space names {unknown}, which are not arguments of {TRAIN_SCRIPT.name} (see its --help)")
    reserved = [parameter.name for parameter in space if parameter.name in SET_BY_THE_SEARCH]
    if reserved:
        raise ValueError(f"the search sets {reserved} for each trial itself: remove them from the search space")
    groups = parse_config_and_flags(HfArgumentParser(script.ARGUMENTS), [config])
    training_args = groups[-1]
    if not (training_args.do_train and training_args.do_eval):
        raise ValueError(f"{config} must set do_train: true and do_eval: true: each trial trains, and its final "
                         "evaluation is the trial's value")
    retention = next(group for group in groups if hasattr(group, "retention_dataset_name"))
    if objective.retention_weight and not retention.retention_dataset_name:
        raise ValueError(f"--retention_weight needs a retention set: set retention_dataset_name (and "
                         f"retention_language) in {config}")
    if pruning and training_args.eval_strategy == "no":
        logger.warning("%s evaluates only at the end (eval_strategy: no), so no trial can be pruned early: set "
                       "eval_strategy: steps and eval_steps", config)


def train_or_start_again(train, argv: list[str], callback: TrainerCallback) -> dict:
    """Train (resuming the run in output_dir, if any). A run whose worker was killed while saving a checkpoint may
    hold nothing it can resume from; such a run starts again."""
    try:
        return train(argv, callbacks=[callback])
    except CheckpointError as error:
        logger.warning("The cut-off run cannot resume, so it starts again: %s", error)
        return train([*argv, "--overwrite_output_dir", "true"], callbacks=[callback])


def make_objective(train, config: str, space: list[Parameter], output_dir: str, objective: Objective):
    """The function Optuna calls with each trial. `train`: the training script's main(argv, callbacks)."""

    def run_trial(trial: optuna.Trial) -> float:
        gc.collect()  # the previous trial's model and optimizer are garbage now; give their memory back
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        # A trial queued again after its worker was killed inherits the cut trial's user attributes, so it
        # continues in the same output_dir, from its last checkpoint.
        run_dir = trial.user_attrs.get("output_dir") or str(Path(output_dir) / f"trial-{trial.number}")
        trial.set_user_attr("output_dir", run_dir)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = sample(trial, space)
        logger.info("Trial %d in %s: %s", trial.number, run_dir, params)
        argv = [config, *config_to_flags(params), "--output_dir", run_dir]
        try:
            metrics = train_or_start_again(train, argv, ReportToTrial(trial, objective))
        except (NonFiniteError, torch.cuda.OutOfMemoryError) as error:
            # The configuration cannot train (it diverges, or does not fit): a result about these parameters, so the
            # trial ends pruned (TPE then ranks it worst) and the search goes on.
            cause = "diverged" if isinstance(error, NonFiniteError) else "out of memory"
            trial.set_user_attr("note", f"{cause}: {str(error)[:300]}")
            raise optuna.TrialPruned(f"{cause}: {error}") from error
        if "eval_wer" not in metrics:
            # Training saved a checkpoint and stopped on SIGTERM/SIGINT (a scheduler's pre-emption, Ctrl-C). Leave
            # the trial RUNNING: once its heartbeat is older than --grace_period, a worker queues it again.
            raise SystemExit(f"trial {trial.number} stopped on a signal after saving a checkpoint in {run_dir}; the "
                             "same command resumes it (after --grace_period), or any worker of the study will")
        value = objective.value(metrics)
        if value is None:
            raise ValueError(f"trial {trial.number}'s final evaluation has no eval_retention_wer for "
                             "--retention_weight: set retention_dataset_name in the base config")
        for key in ("eval_wer", "eval_retention_wer", "eval_loss"):
            if key in metrics:
                trial.set_user_attr(key, metrics[key])
        return value

    return run_trial
