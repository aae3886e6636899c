"""Non-finite values in training (training/nonfinite.py).

fp16 on a GPU scales the loss with a GradScaler; a step whose gradients overflow is skipped by the scaler and must
not stop the run. The fp16 tests give the Trainer the GradScaler accelerate builds on a GPU (torch.amp.GradScaler, here
for the CPU) and make the scaled loss overflow float16 on chosen steps, as a too-high scale does on a GPU."""

import json
import logging

import accelerate
import pytest
import torch
from safetensors.torch import load_file

import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments, train_stopped_by_sigterm
from whisper_finetuning.training.nonfinite import NonFiniteError


class OverflowingScaler(torch.amp.GradScaler):
    """A real GradScaler whose scaled loss overflows float16 on the optimizer steps in `overflow_on` (1-based; all
    of them when None). Its unscale_ then finds inf/nan gradients, step() skips the update and update() lowers the
    scale, exactly as on a GPU."""

    def __init__(self, overflow_on: set[int] | None, **kwargs):
        super().__init__("cpu", **kwargs)
        self.overflow_on, self.calls = overflow_on, 0

    def scale(self, outputs):
        self.calls += 1
        scaled = super().scale(outputs)
        if self.overflow_on is None or self.calls in self.overflow_on:
            scaled = scaled * 2.0**120 * 2.0**120  # past float16's (and float32's) range
        return scaled


@pytest.fixture
def loss_scaler(monkeypatch):
    """Install an OverflowingScaler in the Trainer's accelerator, as accelerate does for fp16 on a GPU."""
    made = {}

    def install(overflow_on: set[int] | None, **kwargs):
        original = accelerate.Accelerator.__init__

        def init(self, *args, **init_kwargs):
            original(self, *args, **init_kwargs)
            if self.state.mixed_precision == "fp16" and self.scaler is None:  # CPU: accelerate makes none
                self.scaler, self.native_amp = OverflowingScaler(overflow_on, **kwargs), True
                made["scaler"] = self.scaler

        monkeypatch.setattr(accelerate.Accelerator, "__init__", init)
        return made

    return install


def fp16_run(tiny_model_dir, corpus, out, *extra):
    return arguments(tiny_model_dir, corpus, out, "--do_train", "--max_steps", "6", "--save_steps", "3", "--fp16",
                     "true", *extra)


def test_overflow_steps_are_skipped_counted_and_logged_and_the_run_goes_on(tiny_model_dir, corpus, tmp_path,
                                                                          loss_scaler, caplog):
    made = loss_scaler({2, 3})
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO):
        train_script.main(fp16_run(tiny_model_dir, corpus, out))
    assert made["scaler"].calls == 6
    assert "the gradients of step 2 overflowed; the loss scaler skipped the step and lowered the scale to 32768" \
        in caplog.text
    assert "skipped 2 overflow steps" in caplog.text
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    guard = state["stateful_callbacks"]["NonFiniteGuard"]["attributes"]
    assert guard["overflow_steps"] == 2 and guard["loss_scale"] == 2.0**14
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert [entry["fp16_overflow_steps"] for entry in logged] == [0, 1, 2, 2, 2, 2]
    assert [entry["loss_scale"] for entry in logged] == [2.0**16, 2.0**15, 2.0**14, 2.0**14, 2.0**14, 2.0**14]
    weights = load_file(out / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())


def test_a_skipped_overflow_step_leaves_the_weights_as_they_were(tiny_model_dir, corpus, tmp_path, loss_scaler):
    loss_scaler({2, 3})
    out = tmp_path / "run"
    train_script.main(fp16_run(tiny_model_dir, corpus, out, "--max_steps", "4", "--save_steps", "1"))
    after = {step: load_file(out / f"checkpoint-{step}" / "model.safetensors") for step in (1, 3, 4)}
    assert all(torch.equal(after[1][name], tensor) for name, tensor in after[3].items())
    assert any(not torch.equal(after[3][name], tensor) for name, tensor in after[4].items())


def test_the_overflow_count_and_the_scale_survive_a_resume(tiny_model_dir, corpus, tmp_path, loss_scaler,
                                                           monkeypatch):
    loss_scaler({2})  # each process's scaler counts its own steps: step 2, and step 3 + 2 = 5 after the resume
    out = tmp_path / "run"
    train_stopped_by_sigterm(fp16_run(tiny_model_dir, corpus, out, "--save_steps", "100"), 3, monkeypatch)
    saved = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert saved["stateful_callbacks"]["NonFiniteGuard"]["attributes"]["overflow_steps"] == 1
    train_script.main(fp16_run(tiny_model_dir, corpus, out, "--save_steps", "100"))
    guard = json.loads((out / "trainer_state.json").read_text())["stateful_callbacks"]["NonFiniteGuard"]
    assert guard["attributes"]["overflow_steps"] == 2
    assert guard["attributes"]["loss_scale"] == 2.0**14  # the scaler's state was restored with the checkpoint


def test_a_collapsing_loss_scale_stops_the_run_with_the_reason(tiny_model_dir, corpus, tmp_path, loss_scaler):
    loss_scaler(None, init_scale=4.0)  # every step overflows: 4 -> 2 -> 1 -> 0.5
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"optimizer step 3: the fp16 loss scale fell to 0.5, below "
                                             r"--min_loss_scale 1\. The gradients overflow at every scale") as error:
        train_script.main(fp16_run(tiny_model_dir, corpus, out))
    assert "bf16" in str(error.value) and "--learning_rate" in str(error.value)
    assert not (out / "model.safetensors").exists()


def test_too_many_overflow_steps_in_a_row_stop_the_run(tiny_model_dir, corpus, tmp_path, loss_scaler):
    loss_scaler({2, 3, 4})
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"optimizer step 4: 3 steps in a row overflowed in fp16"):
        train_script.main(fp16_run(tiny_model_dir, corpus, out, "--max_consecutive_overflow_steps", "3"))
    assert (out / "checkpoint-3").is_dir() and not (out / "model.safetensors").exists()


def test_without_a_loss_scaler_an_overflowing_gradient_still_stops_the_run(tiny_model_dir, corpus, tmp_path,
                                                                          monkeypatch):
    """bf16 and fp32 keep the old rule: a non-finite gradient is divergence, not the scaler's business."""
    from whisper_finetuning.training import trainer as kit_trainer

    original = kit_trainer.WhisperTrainer.training_step
    calls = {"count": 0}

    def poisoned(self, model, inputs, num_items_in_batch=None):
        loss = original(self, model, inputs, num_items_in_batch)
        calls["count"] += 1
        if calls["count"] == 2:
            next(p for p in model.parameters() if p.grad is not None).grad.fill_(float("inf"))
        return loss

    monkeypatch.setattr(kit_trainer.WhisperTrainer, "training_step", poisoned)
    with pytest.raises(NonFiniteError, match=r"optimizer step 2: a gradient is non-finite"):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "run", "--do_train", "--max_steps", "4"))


def test_weights_that_became_non_finite_are_not_saved(tiny_model_dir, corpus, tmp_path, monkeypatch):
    """The README's "non-finite weights" row: a checkpoint is never written from inf/nan weights."""
    from whisper_finetuning.training.checkpoints import SaveOnSignalCallback

    original = SaveOnSignalCallback.on_step_end

    def break_weights(self, args, state, control, **kwargs):
        if state.global_step == 2:  # after the step's update, before its checkpoint is saved
            with torch.no_grad():
                next(kwargs["model"].parameters()).fill_(float("nan"))
        return original(self, args, state, control, **kwargs)

    monkeypatch.setattr(SaveOnSignalCallback, "on_step_end", break_weights)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"the weights became non-finite \(model\..* at step 2\); not saving "
                                             r"them\. Lower --learning_rate"):
        train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--max_steps", "4", "--save_steps", "1"))
    assert (out / "checkpoint-1").is_dir() and not (out / "checkpoint-2").exists()
    assert not (out / "model.safetensors").exists()
