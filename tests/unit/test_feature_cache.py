"""The feature cache: built once (in parts), read back exactly, used by training with the same resume exactness as
the audio stream, and refused when it was made with other settings."""

import json

import numpy as np
import pytest

import run_speech_recognition_seq2seq_streaming as train_script
import whisper_finetuning.features.preprocessing as preprocessing
from training_runs import arguments, assert_same_weights, losses, train_stopped_by_sigterm
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features import cache
from whisper_finetuning.features.preprocessing import Preprocessor, prepare


def build(tiny_model_dir, corpus, output_dir, *extra) -> int:
    return cache.main(["--model_name_or_path", str(tiny_model_dir), "--language", "sv",
                       "--dataset_name", f"{corpus}/common_voice+{corpus}/fleurs",
                       "--dataset_config_name", "sv-SE+sv_se", "--output_dir", str(output_dir), *extra])


def test_cached_features_and_labels_equal_the_decoded_ones(tiny_model_dir, corpus, processor, tmp_path):
    assert build(tiny_model_dir, corpus, tmp_path / "cache") == 36
    processor.tokenizer.set_prefix_tokens(language="sv", task="transcribe")
    originals = {}
    for name, config in (("common_voice", "sv-SE"), ("fleurs", "sv_se")):
        for example in prepare(load_source(str(corpus / name), config, "train"), Preprocessor(processor)):
            originals[example["id"]] = example
    rows = cache.restore_features(cache.load_feature_cache(tmp_path / "cache"), 80, 3000)
    restored = {row["id"]: row for row in rows}
    assert restored.keys() == originals.keys()
    for key, original in originals.items():
        assert restored[key]["labels"] == original["labels"]
        expected = original["input_features"].astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(restored[key]["input_features"], expected)
    size = sum(p.stat().st_size for p in (tmp_path / "cache").rglob("*.parquet"))
    assert size < 36 * 80 * 3000 * 2 / 5  # float16, and the padding is not stored


def test_a_cache_built_in_parts_is_complete_only_with_every_part(tiny_model_dir, corpus, tmp_path):
    folder = tmp_path / "cache"
    counts = [build(tiny_model_dir, corpus, folder, "--num_shards", "3", "--shard_index", "0"),
              build(tiny_model_dir, corpus, folder, "--num_shards", "3", "--shard_index", "2")]
    with pytest.raises(cache.FeatureCacheError, match="incomplete: parts 1 of 3 are missing"):
        cache.load_feature_cache(folder)
    counts.append(build(tiny_model_dir, corpus, folder, "--num_shards", "3", "--shard_index", "1"))
    assert sum(counts) == 36 and all(counts)
    ids = [row["id"] for row in cache.load_feature_cache(folder)]
    assert len(ids) == len(set(ids)) == 36
    by_rank = [[row["id"] for row in cache.load_feature_cache(folder, rank=r, world_size=2)] for r in (0, 1)]
    assert not set(by_rank[0]) & set(by_rank[1]) and sorted(by_rank[0] + by_rank[1]) == sorted(ids)


def test_an_interrupted_build_leaves_no_part(tiny_model_dir, corpus, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "compact", fail)
    with pytest.raises(KeyboardInterrupt):
        build(tiny_model_dir, corpus, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == [] and cache.read_parts(tmp_path / "cache") == []


def test_training_builds_the_cache_then_reads_it_without_decoding_audio(tiny_model_dir, corpus, tmp_path,
                                                                       monkeypatch):
    folder = tmp_path / "cache"
    common = ["--do_train", "--max_steps", "3", "--feature_cache_dir", str(folder), "--save_steps", "100"]
    train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "first", *common))
    info = json.loads(next(folder.glob("part-*/part_info.json")).read_text())
    assert info["num_samples"] == 18 and sum(info["statistics"]["kept"].values()) == 18  # counted while building

    decoded, decode = [], preprocessing.decode_row_audio
    monkeypatch.setattr(preprocessing, "decode_row_audio", lambda audio: decoded.append(audio["path"]) or decode(audio))
    train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "second", *common))
    assert decoded == []  # no training audio decoded: features came from the cache (eval set: --do_eval is off)
    assert_same_weights(tmp_path / "first", tmp_path / "second")


def test_training_from_the_cache_resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    build_args = ["--dataset_name", str(corpus / "common_voice"), "--dataset_config_name", "sv-SE"]
    cache.main(["--model_name_or_path", str(tiny_model_dir), "--language", "sv", *build_args,
                "--output_dir", str(folder)])
    # 18 cached rows in batches of 2: stop in the second pass over the cache.
    common = ["--do_train", "--max_steps", "12", "--save_steps", "100", "--feature_cache_dir", str(folder)]
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train_script.main(arguments(tiny_model_dir, corpus, straight, *common))
    train_stopped_by_sigterm(arguments(tiny_model_dir, corpus, interrupted, *common), 10, monkeypatch)
    assert not (interrupted / "model.safetensors").exists()
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))
    position = json.loads((interrupted / "checkpoint-10" / "data_position_0.json").read_text())
    assert position == {"pass": 1, "next_row": 2, "global_step": 10}
    assert_same_weights(straight, interrupted)
    assert losses(interrupted)[-2:] == losses(straight)[-2:]


def test_a_cache_made_with_other_settings_is_refused(tiny_model_dir, corpus, tmp_path):
    folder = tmp_path / "cache"
    cache.main(["--model_name_or_path", str(tiny_model_dir), "--language", "sv",
                "--dataset_name", str(corpus / "common_voice"), "--dataset_config_name", "sv-SE",
                "--output_dir", str(folder), "--max_duration_in_seconds", "20"])
    with pytest.raises(cache.FeatureCacheError, match=r"max_duration_in_seconds: 20.0 -> 30.0"):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "run", "--do_train", "--max_steps", "2",
                                    "--feature_cache_dir", str(folder)))
