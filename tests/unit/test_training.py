"""The fine-tuning entry point on a tiny random Whisper and the synthetic corpus (seconds per run)."""

import json
import signal

import pytest
from huggingface_hub import ModelCard

import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments, assert_same_weights, losses, train_stopped_by_sigterm
from whisper_finetuning.data.rows import DataSourceError
from whisper_finetuning.training.checkpoints import last_complete_checkpoint


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
    assert card.data.language == "sv" and card.data.base_model is None  # a local folder: no path in the card
    assert str(tiny_model_dir) not in (out / "README.md").read_text()
    assert {"whisper-event", "hf-asr-leaderboard"} <= set(card.data.tags)
    assert card.data.datasets == ["mozilla-foundation/common_voice_17_0"]
    result = card.data.eval_results[0]
    assert (result.task_type, result.dataset_type, result.dataset_config, result.dataset_split, result.metric_type) == (
        "automatic-speech-recognition", "google/fleurs", "sv_se", "test", "wer")
    assert result.metric_value == round(metrics["eval_wer"], 2)

    # The same command again: nothing left to train; the first run's training results stay as they were.
    train_results = (out / "train_results.json").read_text()
    again = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "4",
                                        "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2"))
    assert (out / "train_results.json").read_text() == train_results
    assert again["train_samples_per_second"] == metrics["train_samples_per_second"] > 0


# 18 training rows in batches of 2: 9 steps per pass over the data. Stop within the first pass, and in the second.
@pytest.mark.parametrize("max_steps, stop_at, position", [(6, 3, {"pass": 0, "next_row": 6}),
                                                          (12, 10, {"pass": 1, "next_row": 2})])
def test_sigterm_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(
        tiny_model_dir, corpus, tmp_path, monkeypatch, max_steps, stop_at, position):
    common = ["--do_train", "--max_steps", str(max_steps), "--save_steps", "100"]
    straight = tmp_path / "straight"
    train_script.main(arguments(tiny_model_dir, corpus, straight, *common))

    interrupted = tmp_path / "interrupted"
    train_stopped_by_sigterm(arguments(tiny_model_dir, corpus, interrupted, *common), stop_at, monkeypatch)
    assert last_complete_checkpoint(interrupted).name == f"checkpoint-{stop_at}"
    assert not (interrupted / "model.safetensors").exists()  # it stopped: no final model yet
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after training

    import whisper_finetuning.features.preprocessing as preprocessing

    decoded, decode = [], preprocessing.decode_row_audio
    monkeypatch.setattr(preprocessing, "decode_row_audio", lambda audio: decoded.append(audio["path"]) or decode(audio))
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))  # auto-resume
    saved = json.loads((interrupted / f"checkpoint-{stop_at}" / "data_position_0.json").read_text())
    assert saved == {**position, "global_step": stop_at}
    # The resumed run started reading at its saved row: the rows trained on before were not decoded again.
    assert len(decoded) == len(set(decoded)) == 18 - position["next_row"]
    assert_same_weights(straight, interrupted)
    assert losses(interrupted)[-(max_steps - stop_at):] == losses(straight)[-(max_steps - stop_at):]


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


def test_flops_model_counts_what_torch_counts():
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import WhisperForConditionalGeneration

    from tiny_models import tiny_whisper_config
    from whisper_finetuning.training.flops import forward_flops, training_flops_per_sample

    config = tiny_whisper_config(d_model=32, encoder_ffn_dim=64, decoder_ffn_dim=48, decoder_layers=3)
    model = WhisperForConditionalGeneration._from_config(config, attn_implementation="eager").eval()
    for length in (3, 20):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.randn(1, 80, 3000), decoder_input_ids=torch.ones(1, length, dtype=torch.long))
        assert forward_flops(config, length) == counter.get_total_flops()
    assert training_flops_per_sample(config, 20) == 3 * forward_flops(config, 20)


def test_config_file_with_flag_overrides(tmp_path):
    from transformers import HfArgumentParser

    from whisper_finetuning.args import parse_config_and_flags

    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\nmax_steps: 5\nlanguage: sv\noutput_dir: o\n")
    parser = HfArgumentParser(train_script.ARGUMENTS)
    # As the deepspeed launcher calls it: --local_rank=N first; a .json after a flag is that flag's value.
    model_args, data_args, *_, training_args = parse_config_and_flags(
        parser, ["--local_rank=0", str(config), "--max_steps", "9", "--deepspeed", "ds_config.json"])
    assert (model_args.model_name_or_path, data_args.language, training_args.max_steps) == ("m", "sv", 9)
    assert training_args.deepspeed == "ds_config.json" and training_args.local_rank == 0
