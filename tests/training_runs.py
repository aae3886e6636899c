"""Helpers for tests that run the fine-tuning script on a tiny model: arguments, a run stopped by SIGTERM at a
chosen step, and the comparisons that say two runs ended the same."""

import json
import math
import os
import signal

from safetensors.torch import load_file

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.training.checkpoints import SaveOnSignalCallback


def arguments(tiny_model_dir, corpus, output_dir, *extra) -> list[str]:
    return ["--model_name_or_path", str(tiny_model_dir), "--language", "sv",
            "--dataset_name", str(corpus / "common_voice"), "--dataset_config_name", "sv-SE",
            "--eval_dataset_name", str(corpus / "fleurs"), "--eval_dataset_config_name", "sv_se",
            "--max_eval_samples", "4", "--output_dir", str(output_dir), "--per_device_train_batch_size", "2",
            "--per_device_eval_batch_size", "4", "--generation_max_length", "8", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--report_to", "none", "--seed", "3", "--shuffle_buffer_size", "8", *extra]


def train_stopped_by_sigterm(argv: list[str], stop_at: int, monkeypatch) -> dict:
    """Run training and send this process SIGTERM at the end of optimizer step `stop_at`, as a scheduler
    pre-empting the job would."""
    original = SaveOnSignalCallback.on_step_end

    def stop_early(self, args, state, control, **kwargs):
        if state.global_step == stop_at and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, args, state, control, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SaveOnSignalCallback, "on_step_end", stop_early)
        return train_script.main(argv)


def losses(output_dir) -> list[float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [round(entry["loss"], 4) for entry in history if "loss" in entry]


def assert_same_weights(expected_dir, actual_dir, tolerance: float = 1e-5, file: str = "model.safetensors") -> None:
    expected, actual = load_file(expected_dir / file), load_file(actual_dir / file)
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert (actual[name] - tensor).abs().max() < tolerance, name


def resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch, caplog, steps: int, *flags) -> str:
    """Train `steps` steps straight, and again stopped by SIGTERM at step 3 and resumed: the same weights, every
    loss finite. Returns the straight run's log (for what its targets counted)."""
    common = ["--do_train", "--max_steps", str(steps), "--save_steps", "100", *flags]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    with caplog.at_level("INFO"):
        train_script.main(arguments(tiny_model_dir, corpus, straight, *common))
    log = caplog.text
    train_stopped_by_sigterm(arguments(tiny_model_dir, corpus, interrupted, *common), 3, monkeypatch)
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))
    assert_same_weights(straight, interrupted)
    history = json.loads((straight / "trainer_state.json").read_text())["log_history"]
    found = [entry["loss"] for entry in history if "loss" in entry]
    assert len(found) == steps and all(math.isfinite(loss) for loss in found)
    return log
