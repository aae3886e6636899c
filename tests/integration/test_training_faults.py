"""Fault injection on the fine-tuning script (tiny model, several short runs per test): each way a run can go wrong ends with a clear error or an
exact recovery, never with a run that says it succeeded. Each test checks the message and that no file is wrong."""

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments, assert_same_weights
from whisper_finetuning.training.checkpoints import CheckpointError
from whisper_finetuning.training.collator import SpeechSeq2SeqCollator
from whisper_finetuning.training.run_record import OutputDirError
from whisper_finetuning.training.nonfinite import NonFiniteError

REPO = Path(__file__).resolve().parents[2]


def with_value(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def poison_batch(monkeypatch, number: int) -> None:
    """Make the features of the `number`-th training batch (1-based) NaN, as a broken input would."""
    original, calls = SpeechSeq2SeqCollator.__call__, {"count": 0}

    def collate(self, features):
        batch = original(self, features)
        if "row" in batch:  # a training batch (evaluation batches carry no stream position)
            calls["count"] += 1
            if calls["count"] == number:
                batch["input_features"] = torch.full_like(batch["input_features"], float("nan"))
        return batch

    monkeypatch.setattr(SpeechSeq2SeqCollator, "__call__", collate)


def test_a_diverging_run_stops_with_the_step_and_writes_no_model_or_card(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "run"
    argv = with_value(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "6",
                                "--save_steps", "1"), "--learning_rate", "1e4")
    with pytest.raises(NonFiniteError, match=r"training stopped at optimizer step 2: .*non-finite.*"
                                             r"--skip_nonfinite_steps") as error:
        train_script.main(argv)
    assert "last good checkpoint" in str(error.value) and "checkpoint-1" in str(error.value)
    assert not (out / "model.safetensors").exists() and not (out / "README.md").exists()
    assert not (out / "checkpoint-2").exists()  # nothing saved after the bad step


def test_a_nan_batch_stops_the_run_or_is_skipped_when_asked(tiny_model_dir, corpus, tmp_path, monkeypatch, caplog):
    common = ["--do_train", "--max_steps", "4", "--save_steps", "100"]
    poison_batch(monkeypatch, 3)
    with pytest.raises(NonFiniteError, match=r"step 3: the loss is nan"):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "stop", *common))
    assert not (tmp_path / "stop" / "model.safetensors").exists()

    poison_batch(monkeypatch, 3)
    with caplog.at_level(logging.WARNING):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "skip", *common, "--skip_nonfinite_steps", "1"))
    assert "Skipping optimizer step 3: the loss is nan" in caplog.text
    state = json.loads((tmp_path / "skip" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "skip" / "model.safetensors").values())


def test_a_different_run_into_the_same_output_dir_is_refused(tiny_model_dir, corpus, tmp_path, caplog):
    out = tmp_path / "run"
    first = arguments(tiny_model_dir, corpus, out, "--do_train", "--max_steps", "2", "--save_steps", "1")
    train_script.main(first)
    card_before = None if not (out / "README.md").exists() else (out / "README.md").read_text()
    for changed, message in [(with_value(first, "--learning_rate", "2e-3"), r"learning_rate: 0\.001 -> 0\.002"),
                             (with_value(first, "--max_steps", "3"), r"max_steps: 2 -> 3"),
                             (with_value(first, "--dataset_config_name", "en"), r"dataset_config_name: 'sv-SE' -> 'en'"),
                             (first + ["--augmentation_config", str(REPO / "configs/augmentation/noise.yaml")],
                              r"augmentation_config: None -> '.*noise.yaml'"),
                             (first + ["--balance_by", "gender", "--balance_max_per_group", "3"],
                              r"balance_by: None -> 'gender'")]:
        with pytest.raises(OutputDirError, match=message) as error:
            train_script.main(changed)
        assert "--overwrite_output_dir" in str(error.value) and "--output_dir" in str(error.value)
    assert (None if not (out / "README.md").exists() else (out / "README.md").read_text()) == card_before

    # A run recorded before the kit had an argument is the same run while that argument stays off.
    record = json.loads((out / "_run_arguments.json").read_text())
    del record["augmentation_config"]
    (out / "_run_arguments.json").write_text(json.dumps(record))
    with caplog.at_level(logging.INFO):
        train_script.main(first)  # the same command: resumes (here: nothing left to train)
    assert "Resuming from" in caplog.text and "checkpoint-2" in caplog.text

    longer = with_value(first, "--max_steps", "3")
    train_script.main(longer + ["--overwrite_output_dir", "true"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["log_history"][0]["step"] == 1  # a new run from step 1
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]


def test_a_folder_with_an_unrecorded_run_is_refused(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint-5").mkdir(parents=True)
    with pytest.raises(OutputDirError, match="did not record its arguments"):
        train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--max_steps", "2"))


def test_broken_checkpoints_are_skipped_with_a_warning_and_a_resume_stays_exact(tiny_model_dir, corpus, tmp_path,
                                                                                caplog):
    common = ["--do_train", "--max_steps", "4", "--save_steps", "1"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_script.main(arguments(tiny_model_dir, corpus, straight, *common))
    train_script.main(arguments(tiny_model_dir, corpus, resumed, *common))
    # Break the run's newest checkpoints as a full disk and a lost file would, and drop the final model.
    (resumed / "checkpoint-4" / "trainer_state.json").write_text("")
    (resumed / "checkpoint-3" / "optimizer.pt").unlink()
    for name in ("model.safetensors", "trainer_state.json"):
        (resumed / name).unlink()
    with caplog.at_level(logging.WARNING):
        train_script.main(arguments(tiny_model_dir, corpus, resumed, *common))
    assert "Not resuming from checkpoint-4: trainer_state.json is damaged (0 bytes that are not JSON)" in caplog.text
    assert "Not resuming from checkpoint-3: optimizer.pt is missing" in caplog.text
    assert "using the previous valid checkpoint checkpoint-2" in caplog.text
    assert_same_weights(straight, resumed)


def test_checkpoints_without_optimizer_state_are_not_resumed_silently(tiny_model_dir, corpus, tmp_path):
    out = tmp_path / "run"
    common = ["--do_train", "--max_steps", "2", "--save_steps", "1"]
    train_script.main(arguments(tiny_model_dir, corpus, out, *common, "--save_only_model", "true"))
    (out / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"none can resume the run .*optimizer\.pt is missing.*"
                                              r"--resume_requires_optimizer_state false"):
        train_script.main(arguments(tiny_model_dir, corpus, out, *common, "--save_only_model", "true"))
    train_script.main(arguments(tiny_model_dir, corpus, out, *common, "--save_only_model", "true",
                                "--resume_requires_optimizer_state", "false"))
    assert (out / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="cannot resume from .*checkpoint-1: .*scheduler.pt is missing"):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "other", *common,
                                    "--resume_from_checkpoint", str(out / "checkpoint-1")))


class FakeHub:
    """Records what the Trainer's push sends (huggingface_hub's HfApi as transformers calls it), reading the
    uploaded folder at the moment of the upload and leaving out what huggingface_hub would."""

    def __init__(self):
        self.repos, self.uploads = [], []

    def create_repo(self, repo_id, token=None, private=None, exist_ok=False, **kwargs):
        from types import SimpleNamespace

        self.repos.append(repo_id)
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, ignore_patterns=(), path_in_repo=None, commit_message=None,
                      **kwargs):
        from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

        from local_paths import folder_files

        files = folder_files(folder_path)
        kept = set(filter_repo_objects(files, ignore_patterns=list(ignore_patterns) + DEFAULT_IGNORE_PATTERNS))
        self.uploads.append({"repo_id": repo_id, "files": {name: files[name] for name in sorted(kept)},
                             "token": kwargs.get("token"), "path_in_repo": path_in_repo,
                             "commit_message": commit_message})
        if kwargs.get("run_as_future"):  # the Trainer pushes checkpoints in the background
            from concurrent.futures import Future

            future = Future()
            future.set_result(None)
            return future


LORA = ["--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.0"]
PUSHES = {  # each also pushes every checkpoint (hub_strategy checkpoint: the checkpoint folder as well)
    "full": ["--report_to", "tensorboard"],  # TensorBoard's runs/ folder is pushed with the model
    "best": ["--eval_strategy", "steps", "--eval_steps", "1", "--load_best_model_at_end", "true",
             # the highest loss: an early checkpoint, not the last one, is the best
             "--metric_for_best_model", "loss", "--greater_is_better", "true"],
    "lora": LORA,
}


@pytest.mark.parametrize("variant", PUSHES)
def test_push_sends_the_kit_card_to_hub_model_id_with_no_token_or_local_path(variant, tiny_model_dir, corpus,
                                                                             tmp_path, tmp_path_factory,
                                                                             monkeypatch, caplog):
    import transformers.trainer

    from local_paths import assert_nothing_local
    from whisper_finetuning.loading import LOCAL_BASE

    hub = FakeHub()
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: hub)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    secret = "hf_SECRETtoken1234567890"
    out, cache = tmp_path / "run", tmp_path / "hub-cache"
    argv = arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "3", "--save_steps", "1",
                     "--push_to_hub", "true", "--hub_model_id", "someone/whisper-sv", "--hub_strategy", "checkpoint",
                     "--hub_token", secret, "--cache_dir", str(cache))
    argv += PUSHES[variant]  # a flag given twice: the last value counts
    with caplog.at_level(logging.WARNING):
        train_script.main(argv)
    assert "prefer `hf auth login`" in caplog.text
    assert hub.repos == ["someone/whisper-sv"]
    final = hub.uploads[-1]
    assert final["repo_id"] == "someone/whisper-sv" and final["token"] is None  # from HF_TOKEN, not an argument
    card = ModelCard(final["files"]["README.md"].decode())
    assert card.data.language == "sv" and card.data.eval_results[0].dataset_type == "google/fleurs"
    assert card.data.model_name == "someone/whisper-sv"
    weights = "adapter_model.safetensors" if variant == "lora" else "model.safetensors"
    assert {weights, "training_args.bin", "preprocessor_config.json", "trainer_state.json"} <= set(final["files"])
    checkpoint_pushes = [upload for upload in hub.uploads if upload["path_in_repo"] == "last-checkpoint"]
    assert len(checkpoint_pushes) == 3 and "trainer_state.json" in checkpoint_pushes[0]["files"]

    # Nothing any push sent (each checkpoint's, the end of training's and the card's) holds a path of this machine
    local = [tiny_model_dir, corpus, out, cache, tmp_path, tmp_path_factory.getbasetemp()]
    pushed = {f"upload {number} ({upload['commit_message']!r} into {upload['path_in_repo'] or '/'}): {name}": content
              for number, upload in enumerate(hub.uploads) for name, content in upload["files"].items()}
    assert_nothing_local(pushed, local, secrets=[secret], what="the pushes")
    for path in out.rglob("*"):  # nothing written anywhere holds the token, checkpoints included
        assert not path.is_file() or secret.encode() not in path.read_bytes(), path

    if variant == "full":
        assert any(name.startswith("runs/") for name in final["files"])  # TensorBoard's event files went too
    if variant == "best":
        state = json.loads(final["files"]["trainer_state.json"])
        best = state["best_model_checkpoint"]
        assert best == f"checkpoint-{state['best_global_step']}" and best != "checkpoint-3"
        assert_same_weights(out / best, out)  # the best model was loaded at the end
        # A rerun of the finished run resumes from its last checkpoint and must find the best one by its name
        (out / "model.safetensors").unlink()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            train_script.main(argv)
        assert "The best checkpoint" not in caplog.text  # neither the Trainer's "does not exist" nor "is gone"
        assert_same_weights(out / best, out)
    if variant == "lora":
        adapter = json.loads(final["files"]["adapter_config.json"])
        assert adapter["base_model_name_or_path"] == tiny_model_dir.name  # a local base, by its folder name
        # where that base is stays here, in a record no push sends
        assert (out / LOCAL_BASE).is_file() and not any(LOCAL_BASE in upload["files"] for upload in hub.uploads)
    shutil.rmtree(out)


def test_retention_is_scored_before_and_during_training_and_reported(tiny_model_dir, corpus, tmp_path, caplog):
    out = tmp_path / "run"
    retention = ["--retention_dataset_name", str(corpus / "fleurs"), "--retention_dataset_config_name", "uk_ua",
                 "--retention_language", "ukrainian", "--max_retention_samples", "3"]
    with caplog.at_level(logging.WARNING):
        metrics = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps",
                                              "2", "--eval_strategy", "steps", "--eval_steps", "1", *retention,
                                              "--retention_max_degradation", "-1000"))
    baseline = json.loads((out / "baseline_results.json").read_text())
    assert {"eval_wer", "eval_retention_uk_wer", "eval_retention_wer"} <= set(baseline)
    assert metrics["eval_retention_uk_wer"] == metrics["eval_retention_wer"] > 0
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "eval_retention_uk_wer" in entry] == [1, 2]
    card = (out / "README.md").read_text()
    assert "| retention, uk: FLEURS uk_ua test | WER % |" in card and str(tmp_path) not in card
    # Language identification of the retention set: Whisper's own detection, before and after, in the card.
    assert 0 <= baseline["eval_retention_uk_language_accuracy"] <= 100
    assert 0 <= metrics["eval_retention_uk_language_accuracy"] <= 100
    assert [entry["step"] for entry in history if "eval_retention_uk_language_accuracy" in entry] == [1, 2]
    assert "| retention, uk: FLEURS uk_ua test | identified as uk, % |" in card
    assert "eval_retention_uk_wer rose from" in caplog.text  # a margin of -1000 points: always warns
    assert "eval_retention_uk_language_accuracy fell from" in caplog.text
    assert ModelCard.load(out / "README.md").data.eval_results[0].dataset_config == "sv_se"  # the target stays first


def test_replay_mixes_base_language_samples_with_their_own_language_token(tiny_model_dir, corpus, tmp_path,
                                                                          monkeypatch):
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(tiny_model_dir)
    with open(corpus / "common_voice" / "en" / "train.tsv", encoding="utf-8") as handle:
        english = {row["sentence"] for row in csv.DictReader(handle, delimiter="\t")}
    seen = []
    original = SpeechSeq2SeqCollator.__call__

    def record(self, features):
        batch = original(self, features)
        if "row" in batch:
            seen.extend(batch["labels"].tolist())
        return batch

    monkeypatch.setattr(SpeechSeq2SeqCollator, "__call__", record)
    train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "run", "--do_train", "--max_steps", "10",
                                "--save_steps", "100", "--replay_dataset_name", str(corpus / "common_voice"),
                                "--replay_dataset_config_name", "en", "--replay_language", "english",
                                "--replay_probability", "0.5"))
    by_language = {"en": [], "sv": []}
    for labels in seen:  # the collator removed <|startoftranscript|>: the language token comes first
        language = tokenizer.convert_ids_to_tokens(labels[0]).strip("<|>")
        by_language[language].append(tokenizer.decode([t for t in labels if t >= 0], skip_special_tokens=True))
    assert len(seen) == 20 and 5 <= len(by_language["en"]) <= 15  # about half of 20 samples
    assert set(by_language["en"]) <= english and not set(by_language["sv"]) & english
