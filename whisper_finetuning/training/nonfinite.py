"""Stopping on non-finite values instead of training on, and fp16's loss scaling told apart from divergence.

In bf16 and fp32 a non-finite loss or gradient means the run diverged (or a batch is broken): the optimizer step is
skipped while --skip_nonfinite_steps allows, then the run stops with an error naming the step and the last good
checkpoint.

In fp16 with dynamic loss scaling (a GradScaler, as accelerate sets up on a GPU), overflowing gradients are normal:
the scaler starts high (2^16), skips a step whose unscaled gradients hold inf/nan and halves the scale. Such a step is
the scaler's business: it is counted and logged with the new scale, and the run goes on. It stops only when the
scale collapses (below --min_loss_scale, or --max_consecutive_overflow_steps skipped steps in a row), or when the
loss itself is non-finite (the loss is computed in float32 under autocast, so that is divergence, not overflow).
"""

import logging
import math

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from .checkpoints import CheckpointError, last_complete_checkpoint

logger = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    pass


def loss_scaler(trainer):
    """The trainer's active fp16 GradScaler, or None (bf16, fp32, DeepSpeed's own scaling)."""
    scaler = getattr(trainer.accelerator, "scaler", None)
    return scaler if scaler is not None and scaler.is_enabled() else None


class NonFiniteGuard(TrainerCallback, ExportableState):
    """Before each optimizer step: a non-finite loss (seen by the trainer's training_step), or without a loss scaler a
    non-finite gradient, stops the run or skips the step. After each step under a loss scaler: an overflow step the
    scaler skipped is counted; a collapsing scale stops the run. (Under DeepSpeed the gradients live in its own
    buffers; the loss is still checked.)"""

    def __init__(self, trainer, skip_nonfinite_steps: int = 0, min_loss_scale: float = 1.0,
                 max_consecutive_overflow_steps: int = 20):
        self.trainer = trainer
        self.skip_nonfinite_steps = skip_nonfinite_steps
        self.min_loss_scale, self.max_consecutive_overflow_steps = min_loss_scale, max_consecutive_overflow_steps
        self.skipped_steps: list[tuple[int, str]] = []  # (step, reason) of the steps skipped for non-finite values
        self.overflow_steps = 0  # fp16 steps the loss scaler skipped, over the whole run (resumes included)
        self.consecutive_overflow_steps = 0
        self.loss_scale: float | None = None
        self.scale_before_step: float | None = None

    # -- the Trainer's state file keeps the overflow counts, so a resumed run goes on counting -------------------
    def state(self) -> dict:
        return {"args": {}, "attributes": {"overflow_steps": self.overflow_steps,
                                           "consecutive_overflow_steps": self.consecutive_overflow_steps,
                                           "loss_scale": self.loss_scale}}

    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__)  # filled when resuming from a checkpoint
        if isinstance(saved, dict):
            for name, value in saved.get("attributes", {}).items():
                setattr(self, name, value)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        trainer = self.trainer
        loss, trainer.nonfinite_loss = trainer.nonfinite_loss, None
        scaler = loss_scaler(trainer)
        self.scale_before_step = float(scaler.get_scale()) if scaler is not None else None
        if loss is not None:
            return self.stop_or_skip(state, f"the loss is {loss}")
        if scaler is not None:
            return  # inf/nan gradients are an overflow the scaler skips (checked after the step)
        gradients = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        if gradients and not math.isfinite(float(torch.stack(torch._foreach_norm(gradients)).float().sum())):
            self.stop_or_skip(state, "a gradient is non-finite (inf or nan)")

    def on_optimizer_step(self, args, state, control, **kwargs):
        scaler = loss_scaler(self.trainer)
        if scaler is None:
            return
        # The scaler lowers its scale exactly when it skipped the step for inf/nan gradients. (accelerate's
        # optimizer_step_was_skipped misses it with fused optimizers such as adamw_torch_fused, transformers 5's
        # default: their step is called and skips the update inside the kernel.)
        self.loss_scale = float(scaler.get_scale())
        if self.scale_before_step is None or self.loss_scale >= self.scale_before_step:
            self.consecutive_overflow_steps = 0
            return
        step = state.global_step + 1
        self.overflow_steps += 1
        self.consecutive_overflow_steps += 1
        logger.info("fp16: the gradients of step %d overflowed; the loss scaler skipped the step and lowered the "
                    "scale to %g (%d overflow steps so far)", step, self.loss_scale, self.overflow_steps)
        collapsed = (f"the fp16 loss scale fell to {self.loss_scale:g}, below --min_loss_scale {self.min_loss_scale:g}"
                     if self.loss_scale < self.min_loss_scale else
                     f"{self.consecutive_overflow_steps} steps in a row overflowed in fp16 (--max_consecutive_"
                     f"overflow_steps {self.max_consecutive_overflow_steps}); the loss scale is {self.loss_scale:g}"
                     if self.consecutive_overflow_steps >= self.max_consecutive_overflow_steps else None)
        if collapsed:
            raise NonFiniteError(f"training stopped at optimizer step {step}: {collapsed}. The gradients overflow at "
                                 "every scale, so the model has diverged or fp16's range is too small for it. "
                                 f"{self.restart_advice()}")

    def loss_scale_log(self, logs: dict) -> dict:
        """What a training log adds under fp16 loss scaling: the scale now and the overflow steps so far."""
        if self.loss_scale is None or not any(key in logs for key in ("loss", "train_loss")):
            return {}
        return {"loss_scale": self.loss_scale, "fp16_overflow_steps": self.overflow_steps}

    def stop_or_skip(self, state, reason: str) -> None:
        """Skip this optimizer step (drop its gradients) while the budget allows, else stop with an error."""
        step = state.global_step + 1
        if len(self.skipped_steps) < self.skip_nonfinite_steps:
            self.skipped_steps.append((step, reason))
            logger.warning("Skipping optimizer step %d: %s (%d of --skip_nonfinite_steps %d)", step, reason,
                           len(self.skipped_steps), self.skip_nonfinite_steps)
            self.trainer.model.zero_grad(set_to_none=True)  # parameters without a gradient are not updated
            return
        raise NonFiniteError(f"training stopped at optimizer step {step}: {reason}. {self.restart_advice()} Or "
                             "rerun the same command with --skip_nonfinite_steps N to skip up to N such steps")

    def restart_advice(self) -> str:
        args = self.trainer.args
        try:
            last_good = last_complete_checkpoint(args.output_dir)
        except CheckpointError:
            last_good = None
        resume = f"resumes from the last good checkpoint, {last_good}" if last_good else "starts from the beginning"
        precision = "use bf16 (Ampere or newer GPUs) or fp32 instead of fp16" if args.fp16 else "check the data"
        return (f"Nothing was saved after it and no final model or card is written. Start again with a lower "
                f"--learning_rate (now {args.learning_rate}) and --overwrite_output_dir (a resumed run keeps its "
                f"learning-rate schedule), or {precision}; the same command {resume}.")


def check_finite_weights(model, when: str) -> None:
    for name, parameter in model.named_parameters():
        if not torch.isfinite(parameter).all():
            raise NonFiniteError(f"the weights became non-finite ({name} at {when}); not saving them. Lower "
                                 "--learning_rate and resume from the last good checkpoint")
