"""The fine-tuning entry point on a tiny random Whisper and the synthetic corpus (seconds per run)."""

import json
import os
import signal

import pytest
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.checkpoints import SaveOnSignalCallback, last_complete_checkpoint
from whisper_finetuning.sources import DataSourceError


def arguments(tiny_model_dir, corpus, output_dir, *extra):
    return ["--model_name_or_path", str(tiny_model_dir), "--language", "sv",
            "--dataset_name", str(corpus / "common_voice"), "--dataset_config_name", "sv-SE",
            "--eval_dataset_name", str(corpus / "fleurs"), "--eval_dataset_config_name", "sv_se",
            "--max_eval_samples", "4", "--output_dir", str(output_dir), "--per_device_train_batch_size", "2",
            "--per_device_eval_batch_size", "4", "--generation_max_length", "8", "--learning_rate", "1e-3",
            "--logging_steps", "1", "--report_to", "none", "--seed", "3", "--shuffle_buffer_size", "8", *extra]


def test_short_run_saves_an_inference_ready_model_and_a_leaderboard_card(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "run"
    metrics = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "4",
                                          "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2"))
    assert metrics["eval_wer"] > 0 and (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    for folder in (out, out / "checkpoint-2"):
        assert json.loads((folder / "config.json").read_text())["use_cache"] is True
        assert json.loads((folder / "preprocessor_config.json").read_text())["feature_size"] == 80
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["language"] == "sv" and generation["task"] == "transcribe"
    assert generation.get("forced_decoder_ids") is None
    card = ModelCard.load(out / "README.md")
    assert card.data.language == "sv" and card.data.base_model == str(tiny_model_dir)
    assert {"whisper-event", "hf-asr-leaderboard"} <= set(card.data.tags)
    assert card.data.datasets == ["mozilla-foundation/common_voice_17_0"]
    result = card.data.eval_results[0]
    assert (result.task_type, result.dataset_type, result.dataset_config, result.dataset_split, result.metric_type) == (
        "automatic-speech-recognition", "google/fleurs", "sv_se", "test", "wer")
    assert result.metric_value == round(metrics["eval_wer"], 2)


# 18 training rows in batches of 2: 9 steps per pass over the data. Stop within the first pass, and in the second.
@pytest.mark.parametrize("max_steps, stop_at, position", [(6, 3, {"pass": 0, "next_row": 6}),
                                                          (12, 10, {"pass": 1, "next_row": 2})])
def test_sigterm_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(
        tiny_model_dir, corpus, tmp_path, monkeypatch, max_steps, stop_at, position):
    common = ["--do_train", "--max_steps", str(max_steps), "--save_steps", "100"]
    straight = tmp_path / "straight"
    train_script.main(arguments(tiny_model_dir, corpus, straight, *common))

    original = SaveOnSignalCallback.on_step_end

    def stop_early(self, args, state, control, **kwargs):
        if state.global_step == stop_at and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler pre-empting the job would
        return original(self, args, state, control, **kwargs)

    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        patch.setattr(SaveOnSignalCallback, "on_step_end", stop_early)
        train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))
    assert last_complete_checkpoint(interrupted).name == f"checkpoint-{stop_at}"
    assert not (interrupted / "model.safetensors").exists()  # it stopped: no final model yet
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after training

    import whisper_finetuning.preprocessing as preprocessing

    decoded, decode = [], preprocessing.decode_row_audio
    monkeypatch.setattr(preprocessing, "decode_row_audio", lambda audio: decoded.append(audio["path"]) or decode(audio))
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))  # auto-resume
    saved = json.loads((interrupted / f"checkpoint-{stop_at}" / "data_position_0.json").read_text())
    assert saved == {**position, "global_step": stop_at}
    # The resumed run started reading at its saved row: the rows trained on before were not decoded again.
    assert len(decoded) == len(set(decoded)) == 18 - position["next_row"]
    expected, actual = load_file(straight / "model.safetensors"), load_file(interrupted / "model.safetensors")
    for name, tensor in expected.items():
        assert (actual[name] - tensor).abs().max() < 1e-5, name
    losses = lambda folder: [round(e["loss"], 4) for e in json.loads((folder / "trainer_state.json").read_text())[
        "log_history"] if "loss" in e]
    assert losses(interrupted)[-(max_steps - stop_at):] == losses(straight)[-(max_steps - stop_at):]


def test_an_incomplete_checkpoint_is_never_resumed_from(tmp_path):
    for step in (2, 4):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text("{}")  # checkpoint-4 was cut off mid-save
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-2"


@pytest.mark.parametrize("extra, error, message", [
    (["--language", "swedsh"], ValueError, "Unknown language 'swedsh'"),
    (["--text_column_name", "transcript"], DataSourceError, "no column 'transcript'"),
    (["--max_duration_in_seconds", "0.1"], ValueError, "no usable sample"),
    (["--max_steps", "-1"], ValueError, "give --max_steps"),
])
def test_bad_input_gives_a_clear_error(tiny_model_dir, corpus, tmp_path, extra, error, message):
    argv = arguments(tiny_model_dir, corpus, tmp_path / "bad", "--do_train", "--max_steps", "2") + extra
    with pytest.raises(error, match=message):
        train_script.main(argv)


@pytest.mark.integration
def test_evaluation_in_training_reports_the_same_wer_as_run_eval(corpus, tmp_path):
    import run_eval

    data = ["--dataset_name", str(corpus / "fleurs"), "--dataset_config_name", "en_us"]
    metrics = train_script.main(["--model_name_or_path", "openai/whisper-base", "--language", "en", *data,
                                 "--eval_split_name", "test", "--do_eval", "--per_device_eval_batch_size", "6",
                                 "--output_dir", str(tmp_path / "train"), "--report_to", "none"])
    results = run_eval.main(["--model_name_or_path", "openai/whisper-base", "--language", "en", *data,
                             "--split", "test", "--batch_size", "6", "--output_dir", str(tmp_path / "eval")])
    assert results[0]["samples"] == 6
    assert metrics["eval_wer"] == pytest.approx(results[0]["wer"])


@pytest.mark.integration
def test_short_fine_tune_of_pretrained_whisper_base_lowers_wer_on_held_out_sentences(corpus, tmp_path):
    """configs/cpu_smoke.yaml as shipped (bf16 on CPU, 10 steps), on this test's synthetic Swedish corpus."""
    out = tmp_path / "run"
    train_script.main([str(train_script.__file__).replace("run_speech_recognition_seq2seq_streaming.py",
                                                          "configs/cpu_smoke.yaml"),
                       "--dataset_name", f"{corpus}/common_voice+{corpus}/fleurs",
                       "--eval_dataset_name", str(corpus / "fleurs"), "--output_dir", str(out),
                       "--eval_on_start", "true", "--report_to", "none", "--save_steps", "100"])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    wers = [entry["eval_wer"] for entry in history if "eval_wer" in entry]
    before, after = wers[0], wers[-1]
    assert after < 0.8 * before, wers  # test sentences are disjoint from the training sentences


def test_flops_model_counts_what_torch_counts():
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import WhisperForConditionalGeneration

    from conftest import tiny_whisper_config
    from whisper_finetuning.flops import forward_flops, training_flops_per_sample

    config = tiny_whisper_config(d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=48, decoder_layers=3)
    model = WhisperForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    for length in (3, 20):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 80, 3000), decoder_input_ids=torch.ones(1, length, dtype=torch.long))
        assert forward_flops(config, length) == counter.get_total_flops()
    assert training_flops_per_sample(config, 20) == 3 * forward_flops(config, 20)


def test_config_file_with_flag_overrides(tmp_path):
    from transformers import HfArgumentParser, Seq2SeqTrainingArguments

    from whisper_finetuning.arguments import DataTrainingArguments, ModelArguments, parse_config_and_flags

    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\nmax_steps: 5\nlanguage: sv\noutput_dir: o\n")
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, Seq2SeqTrainingArguments))
    # As the deepspeed launcher calls it: --local_rank=N first; a .json after a flag is that flag's value.
    model_args, data_args, training_args = parse_config_and_flags(
        parser, ["--local_rank=0", str(config), "--max_steps", "9", "--deepspeed", "ds_config.json"])
    assert (model_args.model_name_or_path, data_args.language, training_args.max_steps) == ("m", "sv", 9)
    assert training_args.deepspeed == "ds_config.json" and training_args.local_rank == 0
