"""LoRA (peft) fine-tuning on the tiny model: adapter-only checkpoints, exact resume, a card that says it is an
adapter, loading the adapter folder for evaluation, and merging it into a plain checkpoint."""

import json
import re
import shutil

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration

import run_eval
import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments, assert_same_weights, losses, train_stopped_by_sigterm
from whisper_finetuning.export.merge import merge_adapter
from whisper_finetuning.loading import LOCAL_BASE, AdapterBaseError, load_whisper

LORA = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0"]


def test_lora_checkpoints_hold_the_adapter_only_and_resume_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch):
    common = ["--do_train", "--max_steps", "6", "--save_steps", "100", *LORA]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_script.main(arguments(tiny_model_dir, corpus, straight, *common))
    train_stopped_by_sigterm(arguments(tiny_model_dir, corpus, interrupted, *common), 3, monkeypatch)
    checkpoint = interrupted / "checkpoint-3"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()
    adapter = load_file(checkpoint / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    base_size = (tiny_model_dir / "model.safetensors").stat().st_size
    assert (checkpoint / "adapter_model.safetensors").stat().st_size < base_size / 10
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))  # auto-resume
    assert_same_weights(straight, interrupted, file="adapter_model.safetensors")
    assert losses(interrupted)[-3:] == losses(straight)[-3:]
    # adapter_config.json is pushed: it names the local base by its folder name; where that folder is stays here
    config = json.loads((straight / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == tiny_model_dir.name and config["r"] == 4
    assert json.loads((straight / LOCAL_BASE).read_text()) == {"base_model_name_or_path": tiny_model_dir.name,
                                                               "path": str(tiny_model_dir.resolve())}


def test_the_adapter_folder_evaluates_and_merges_into_a_plain_checkpoint(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "lora"
    metrics = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "2",
                                          "--save_steps", "100", *LORA, "--learning_rate", "1e-2",
                                          "--long_form_eval_clips", "3"))
    # The forgetting guard's long-form check decodes through the peft model as it trains.
    assert metrics["eval_long_form_wer"] >= 0 and metrics["eval_long_form_words_on_noise"] is not None
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags and "LoRA adapter" in card.text
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["language"] == "sv"

    merged_model, _ = load_whisper(str(out))
    assert type(merged_model) is WhisperForConditionalGeneration  # merged: no peft wrapper at inference
    from_checkpoint, _ = load_whisper(str(out / "checkpoint-2"))  # finds the local base through its run folder
    for name, tensor in merged_model.state_dict().items():
        assert torch.equal(from_checkpoint.state_dict()[name], tensor), name
    base, _ = load_whisper(str(tiny_model_dir))
    changed = [n for n, p in merged_model.state_dict().items() if not torch.equal(p, base.state_dict()[n])]
    assert changed and all("proj" in n for n in changed)  # the adapter moved the attention projections only

    results = run_eval.main(["--model_name_or_path", str(out), "--language", "sv", "--dtype", "float32",
                             "--dataset_name", str(corpus / "fleurs"), "--dataset_config_name", "sv_se",
                             "--max_eval_samples", "2", "--generation_max_length", "8",
                             "--output_dir", str(tmp_path / "eval")])
    assert results[0]["samples"] == 2

    merged = merge_adapter(str(out), tmp_path / "merged")
    plain = WhisperForConditionalGeneration.from_pretrained(merged)
    for name, tensor in merged_model.state_dict().items():
        assert torch.equal(plain.state_dict()[name], tensor), name
    assert json.loads((merged / "preprocessor_config.json").read_text())["feature_size"] == 80
    assert plain.generation_config.language == "sv"


def test_an_adapter_whose_base_cannot_be_found_is_a_clear_error(tiny_model_dir, corpus, tmp_path):
    base, out = tmp_path / "my-base", tmp_path / "lora"
    shutil.copytree(tiny_model_dir, base)
    train_script.main(arguments(base, corpus, out, "--do_train", "--max_steps", "1", "--save_steps", "100", *LORA))
    # As pushed (or copied without its local record): the base is only a folder name, found nowhere here
    pushed = tmp_path / "pushed"
    shutil.copytree(out, pushed, ignore=shutil.ignore_patterns("_*", "checkpoint-*"))
    with pytest.raises(AdapterBaseError, match=r"(?s)LoRA adapter for my-base, which cannot be found.*make my-base "
                                               r"reachable"):
        load_whisper(str(pushed))
    # The base folder moved away from where the run recorded it
    recorded = re.escape(str(base.resolve()))
    base.rename(tmp_path / "moved-away")
    with pytest.raises(AdapterBaseError, match=rf"LoRA adapter for my-base \(the local folder {recorded}, as "
                                               rf"{LOCAL_BASE} records it\), which cannot be found"):
        load_whisper(str(out))
