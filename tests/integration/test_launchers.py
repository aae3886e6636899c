"""Launch paths of the fine-tuning script: configs, torchrun with 2 processes (gloo on CPU), DeepSpeed, 8-bit Adam."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import HfArgumentParser, WhisperForConditionalGeneration

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.args import parse_config_and_flags
from whisper_finetuning.training.arguments import RetentionArguments

REPO = Path(__file__).resolve().parents[2]


def tiny_config(tiny_model_dir, corpus, output_dir, **overrides) -> dict:
    config = {
        "model_name_or_path": str(tiny_model_dir), "language": "sv",
        "dataset_name": str(corpus / "common_voice"), "dataset_config_name": "sv-SE",
        "eval_dataset_name": str(corpus / "fleurs"), "eval_dataset_config_name": "sv_se", "max_eval_samples": 4,
        "output_dir": str(output_dir), "max_steps": 4, "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 2, "do_train": True, "do_eval": True, "save_steps": 2, "logging_steps": 1,
        "generation_max_length": 8, "learning_rate": 1e-3, "warmup_steps": 1, "report_to": "none", "use_cpu": True,
    }
    config.update(overrides)
    return config


def launch(config: dict, tmp_path, processes: int) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(["bash", str(REPO / "scripts" / "run.sh"), str(path), str(processes)],
                          capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse(config):
    parser = HfArgumentParser(train_script.ARGUMENTS)
    parsed = parse_config_and_flags(parser, [str(config), "--max_steps", "7"])
    model_args, data_args, training_args = parsed[0], parsed[1], parsed[-1]
    assert training_args.max_steps == 7 and data_args.language == "sv" and training_args.do_train
    assert model_args.model_name_or_path.startswith("openai/whisper-")
    if not training_args.use_cpu:  # the GPU configs: the forgetting guard is on by default
        guard = next(group for group in parsed if isinstance(group, RetentionArguments))
        assert (guard.replay_probability, guard.replay_language, guard.replay_dataset_config_name) == (0.1, "en",
                                                                                                        "en_us")
        assert (guard.retention_language, guard.retention_dataset_config_name) == ("en", "en_us")


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_read_disjoint_shards(tiny_model_dir, corpus, tmp_path, launcher):
    out = tmp_path / "out"
    if launcher == "torchrun":
        run = launch(tiny_config(tiny_model_dir, corpus, out), tmp_path, processes=2)  # scripts/run.sh
    else:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_config(tiny_model_dir, corpus, out)))
        run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                              "--num_machines", "1", "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend",
                              "no", str(REPO / "run_speech_recognition_seq2seq_streaming.py"),
                              str(tmp_path / "config.yaml")],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    contributed = [line for line in (run.stdout + run.stderr).splitlines()
                   if "common_voice:sv-SE:train contributed" in line]
    # Each of the 2 processes read 9 of the 18 training rows: its own shards, not everything.
    assert len(contributed) == 2 and all(line.endswith("contributed 9 samples") for line in contributed)
    WhisperForConditionalGeneration.from_pretrained(out / "checkpoint-4")  # the checkpoint loads


def shipped_config_on_cpu(name: str, tiny_model_dir, corpus, output_dir) -> list[str]:
    """A shipped GPU config, with the model, data and sizes of this test and CPU settings on top."""
    overrides = tiny_config(tiny_model_dir, corpus, output_dir, fp16=False, activation_checkpointing=False,
                            load_best_model_at_end=False, eval_strategy="no", save_total_limit=None,
                            dataloader_num_workers=0, replay_dataset_name=str(corpus / "common_voice"),
                            replay_dataset_config_name="en", retention_dataset_name=str(corpus / "common_voice"),
                            retention_dataset_config_name="en", max_retention_samples=2)
    return [str(REPO / "configs" / name)] + [item for key, value in overrides.items() if value is not None
                                             for item in (f"--{key}", str(value))]


def test_deepspeed_zero2_from_the_shipped_config(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "out"
    argv = shipped_config_on_cpu("deepspeed_large.yaml", tiny_model_dir, corpus, out)
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(["bash", str(REPO / "scripts" / "run.sh"), argv[0], "1", *argv[1:]],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "DeepSpeed" in run.stdout + run.stderr
    assert (out / "checkpoint-4" / "global_step4").is_dir() and (out / "model.safetensors").is_file()
    rates = [e["learning_rate"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"]
             if "learning_rate" in e]
    assert rates[1] == max(rates) and rates[-1] < rates[1]  # warm-up, then decay (not constant)
    # The forgetting guard's baseline (measured when training begins: ZeRO-2 cannot evaluate before) and its English
    # replay, both on by default in the GPU configs.
    assert "eval_retention_en_wer" in json.loads((out / "baseline_results.json").read_text())
    assert "Replay: 10 % of the samples" in run.stdout + run.stderr


def test_8bit_adamw_from_the_shipped_config(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "out"
    metrics = train_script.main(shipped_config_on_cpu("adam8bit_12gb.yaml", tiny_model_dir, corpus, out))
    assert metrics["train_loss"] > 0
    state = torch.load(out / "checkpoint-4" / "optimizer.pt", weights_only=False)["state"]
    assert all("__bnb_optimizer_quant_state__" in s for s in state.values())  # bitsandbytes' 8-bit states


def test_deepspeed_launcher(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "out"
    config = tiny_config(tiny_model_dir, corpus, out, deepspeed=str(REPO / "ds_config.json"), do_eval=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    launcher = Path(sys.executable).with_name("deepspeed")
    run = subprocess.run([str(launcher), "--num_nodes", "1", "--num_gpus", "1",
                          str(REPO / "run_speech_recognition_seq2seq_streaming.py"), str(tmp_path / "config.yaml")],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert (out / "checkpoint-4" / "global_step4").is_dir() and (out / "model.safetensors").is_file()
