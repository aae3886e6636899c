"""Training targets that keep Whisper's long-form skills (features/targets.py), checked token by token on the real
tokenizer in its v2 (whisper-base) and v3 (large-v3, turbo: one more language, every id above it shifted) forms,
the collator's prompt masking, and a training run with every option on that resumes exactly."""


import numpy as np
import pytest
import torch
from tiny_models import write_v3_tokenizer
from training_runs import arguments, resumes_exactly

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.offline.convert import build_tokenizer
from whisper_finetuning.features.targets import (NO_SPEECH_KINDS, TargetSettings, build_labels, choose,
                                                 no_speech_audio, speech_bounds, timed_labels)
from whisper_finetuning.training.collator import SpeechSeq2SeqCollator
from whisper_finetuning.training.stream import PreviousText

# The ids the two vocabularies give the tokens these tests use (openai/whisper tokenizer.py, large-v3's 100 languages).
IDS = {"v2": {"<|startoftranscript|>": 50258, "<|sv|>": 50273, "<|transcribe|>": 50359, "<|notimestamps|>": 50363,
              "<|0.00|>": 50364, "<|startofprev|>": 50361, "<|endoftext|>": 50257},
       "v3": {"<|startoftranscript|>": 50258, "<|sv|>": 50273, "<|transcribe|>": 50360, "<|notimestamps|>": 50364,
              "<|0.00|>": 50365, "<|startofprev|>": 50362, "<|endoftext|>": 50257}}


@pytest.fixture(scope="module", params=["v2", "v3"])
def tokenizer(request, base_tokenizer_file, tmp_path_factory):
    """The tokenizer as the kit builds it for the offline copies of OpenAI's models (timestamp tokens added)."""
    folder = tmp_path_factory.mktemp(f"tokenizer-{request.param}")
    file = base_tokenizer_file if request.param == "v2" else write_v3_tokenizer(base_tokenizer_file,
                                                                                 folder / "tokenizer.json")
    loaded = build_tokenizer(file, 51865 if request.param == "v2" else 51866)
    loaded.set_prefix_tokens(language="sv", task="transcribe")
    loaded.vocabulary = request.param
    return loaded


def tokens(tokenizer, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


def test_the_vocabularies_are_the_real_ones(tokenizer):
    for token, expected in IDS[tokenizer.vocabulary].items():
        assert tokenizer.convert_tokens_to_ids(token) == expected, token


def test_plain_labels_are_the_tokenizers_own(tokenizer):
    text = "Hej på dig, hur mår du?"
    assert build_labels(tokenizer, text) == tokenizer(text).input_ids
    assert tokens(tokenizer, build_labels(tokenizer, text)[:4]) == ["<|startoftranscript|>", "<|sv|>",
                                                                    "<|transcribe|>", "<|notimestamps|>"]


def test_timestamp_labels_replace_notimestamps_by_a_pair_on_the_grid(tokenizer):
    text = "Hej på dig"
    labels = build_labels(tokenizer, text, timestamps=(0.513, 2.297))
    text_ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokens(tokenizer, labels) == ["<|startoftranscript|>", "<|sv|>", "<|transcribe|>", "<|0.52|>",
                                         *tokens(tokenizer, text_ids), "<|2.30|>", "<|endoftext|>"]
    zero = IDS[tokenizer.vocabulary]["<|0.00|>"]
    assert labels[3] == zero + 26 and labels[-2] == zero + 115  # 0.52 s and 2.30 s: 26 and 115 steps of 0.02 s
    # Past 30 s the last timestamp is used; an end before the start is the start.
    assert tokens(tokenizer, build_labels(tokenizer, text, timestamps=(31.0, 40.0)))[3] == "<|30.00|>"
    assert tokens(tokenizer, build_labels(tokenizer, text, timestamps=(1.0, 0.5)))[-2] == "<|1.00|>"


def test_window_labels_put_a_timestamp_pair_around_each_utterance(tokenizer):
    """A long-form window's labels: one pair per utterance, as Whisper's 30 s training windows, after a prompt."""
    segments = [(0.419, 2.5, "Hej på dig"), (3.3, 5.0, "Och du"), (6.02, 29.99, "Tack")]
    labels = timed_labels(tokenizer, segments, prompt="Innan")
    prompt_ids = [int(i) for i in tokenizer.get_prompt_ids("Innan")]
    words = [tokens(tokenizer, tokenizer(text, add_special_tokens=False).input_ids) for _, _, text in segments]
    assert labels[:len(prompt_ids)] == prompt_ids
    assert tokens(tokenizer, labels[len(prompt_ids):]) == [
        "<|startoftranscript|>", "<|sv|>", "<|transcribe|>", "<|0.42|>", *words[0], "<|2.50|>", "<|3.30|>", *words[1],
        "<|5.00|>", "<|6.02|>", *words[2], "<|30.00|>", "<|endoftext|>"]
    zero = IDS[tokenizer.vocabulary]["<|0.00|>"]
    assert labels[len(prompt_ids) + 3] == zero + 21  # the tokenizer's ids, v2 or v3: 21 steps of 0.02 s
    # One segment is exactly the timestamped clip's labels.
    assert timed_labels(tokenizer, [(0.5, 2.3, "Hej")]) == build_labels(tokenizer, "Hej", timestamps=(0.5, 2.3))


def test_prompt_labels_put_the_previous_text_before_the_start_token(tokenizer):
    labels = build_labels(tokenizer, "Och du", prompt="Hej på dig")
    prompt_ids = [int(i) for i in tokenizer.get_prompt_ids("Hej på dig")]
    assert labels[:len(prompt_ids)] == prompt_ids and tokens(tokenizer, labels[:1]) == ["<|startofprev|>"]
    assert labels[len(prompt_ids):] == tokenizer("Och du").input_ids
    assert tokenizer.decode(labels[1:len(prompt_ids)]).strip() == "Hej på dig"


def test_a_long_prompt_keeps_its_last_tokens_and_the_labels_fit(tokenizer):
    long_prompt = " ".join(f"ord{i}" for i in range(400))
    labels = build_labels(tokenizer, "Och du", prompt=long_prompt, max_length=60)
    assert len(labels) == 60 and tokens(tokenizer, labels[:1]) == ["<|startofprev|>"]
    assert tokenizer.decode(labels[1:labels.index(50258)]).strip().endswith("ord399")
    assert build_labels(tokenizer, "Och du", prompt=long_prompt, max_length=8) == tokenizer("Och du").input_ids
    full = build_labels(tokenizer, "Och du", prompt=long_prompt)
    assert labels.index(50258) <= 223 + 1 and full.index(50258) == 224  # Whisper's 223-token prompt limit


def test_an_empty_target_is_the_prefix_and_the_end(tokenizer):
    labels = build_labels(tokenizer, "")
    assert tokens(tokenizer, labels) == ["<|startoftranscript|>", "<|sv|>", "<|transcribe|>", "<|notimestamps|>",
                                         "<|endoftext|>"]


def test_the_collator_masks_the_prompt_and_gives_the_decoder_its_inputs(tokenizer):
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    prompted = build_labels(tokenizer, "Och du", timestamps=(0.0, 1.0), prompt="Hej på dig")
    plain = build_labels(tokenizer, "Hej")
    collate = SpeechSeq2SeqCollator(start, tokenizer.eos_token_id)
    features = np.zeros((80, 3000), np.float32)
    batch = collate([{"input_features": features, "labels": prompted}, {"input_features": features, "labels": plain}])
    inputs, labels = batch["decoder_input_ids"], batch["labels"]
    at = prompted.index(start)
    assert inputs[0].tolist() == prompted[:-1]  # the decoder reads the prompt, then the start token
    assert labels[0, :at].tolist() == [-100] * at  # ... and is not trained to write the prompt or the start token
    assert labels[0, at:].tolist() == prompted[at + 1:]  # language, task, timestamps, text, end
    assert inputs[1, :len(plain) - 1].tolist() == plain[:-1]
    assert labels[1, :len(plain) - 1].tolist() == plain[1:] and (labels[1, len(plain) - 1:] == -100).all()
    # Without a prompt in the batch the model shifts the labels itself, as before.
    alone = collate([{"input_features": features, "labels": plain}])
    assert "decoder_input_ids" not in alone and alone["labels"][0].tolist() == plain[1:]


def test_the_loss_of_a_prompted_sample_counts_only_its_target(tiny_whisper, processor):
    """The same target with and without a prompt: the loss is over the same tokens (the prompt only conditions)."""
    tokenizer = processor.tokenizer
    tokenizer.set_prefix_tokens(language="sv", task="transcribe")
    collate = SpeechSeq2SeqCollator(tiny_whisper.config.decoder_start_token_id, tokenizer.eos_token_id)
    features = np.random.default_rng(0).standard_normal((80, 3000)).astype(np.float32)
    prompted = collate([{"input_features": features, "labels": build_labels(tokenizer, "Och du", prompt="Hej")}])
    plain = build_labels(tokenizer, "Och du")
    assert (prompted["labels"] != -100).sum() == len(plain) - 1
    with torch.no_grad():
        loss = tiny_whisper(**prompted).loss
    assert torch.isfinite(loss)


def test_speech_bounds_trim_silence_and_refuse_digital_silence():
    second = SAMPLING_RATE
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(second) / second)
    audio = np.concatenate([np.zeros(second // 2), tone, 1e-3 * np.ones(second // 4) * 0, np.zeros(second // 3)])
    start, end = speech_bounds(audio.astype(np.float32))
    assert start == pytest.approx(0.5, abs=0.021) and end == pytest.approx(1.5, abs=0.021)
    assert speech_bounds(np.zeros(second, np.float32)) is None
    assert speech_bounds(np.zeros(10, np.float32)) is None


def test_choices_depend_on_the_seed_and_the_sample_alone_and_follow_the_probabilities():
    settings = TargetSettings(timestamp_probability=0.2, prompt_probability=0.1, no_speech_probability=0.05, seed=3)
    choices = [choose(settings, (0, row)) for row in range(8000)]
    assert choices == [choose(settings, (0, row)) for row in range(8000)]
    assert choices != [choose(TargetSettings(0.2, 0.1, 0.05, seed=4), (0, row)) for row in range(8000)]
    no_speech = sum(c.no_speech is not None for c in choices) / len(choices)
    speech = [c for c in choices if c.no_speech is None]
    assert no_speech == pytest.approx(0.05, abs=0.01)
    assert sum(c.timestamps for c in speech) / len(speech) == pytest.approx(0.2, abs=0.015)
    assert sum(c.prompt for c in speech) / len(speech) == pytest.approx(0.1, abs=0.015)
    assert {c.no_speech for c in choices if c.no_speech} == set(NO_SPEECH_KINDS)
    assert not TargetSettings().enabled and not any(choose(TargetSettings(), (0, r)) != choose(TargetSettings(),
                                                                                              (1, r)) for r in range(50))


@pytest.mark.parametrize("kind", NO_SPEECH_KINDS)
def test_no_speech_audio_is_silence_or_quiet_noise_of_the_clip_length(kind):
    audio = no_speech_audio(kind, 3 * SAMPLING_RATE, seed=1)
    assert audio.dtype == np.float32 and len(audio) == 3 * SAMPLING_RATE
    rms = float(np.sqrt(np.mean(audio ** 2)))
    assert rms == 0 if kind == "silence" else 10 ** (-61 / 20) < rms < 10 ** (-29 / 20)
    assert np.array_equal(audio, no_speech_audio(kind, 3 * SAMPLING_RATE, seed=1))


def test_previous_text_comes_from_the_row_before_of_the_same_dataset_or_the_rows_prompt_column():
    previous = PreviousText()
    rows = [{"dataset": "cv", "text": "a"}, {"dataset": "cv", "text": "b"}, {"dataset": "fleurs", "text": "c"},
            {"dataset": "fleurs", "text": None}, {"dataset": "fleurs", "text": "e"},
            {"dataset": "fleurs", "text": "f", "prompt": "Karolinska"}, {"dataset": "fleurs", "text": "g", "prompt": ""}]
    assert [previous(row)["previous_text"] for row in rows] == ["", "a", "", "c", "", "Karolinska", "f"]


TARGET_FLAGS = ["--timestamp_probability", "0.5", "--prompt_probability", "0.5", "--no_speech_probability", "0.2"]


def test_training_with_every_target_option_runs_and_resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch,
                                                                     caplog):
    log = resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch, caplog, 6, *TARGET_FLAGS)
    for kind in ("timestamps", "previous-text prompt", "no speech"):
        assert f"with {kind}" in log, kind


def test_the_targets_are_refused_with_the_feature_cache(tiny_model_dir, corpus, tmp_path):
    with pytest.raises(ValueError, match="feature cache"):
        train_script.main(arguments(tiny_model_dir, corpus, tmp_path / "run", "--do_train", "--max_steps", "1",
                                    "--feature_cache_dir", str(tmp_path / "cache"), "--timestamp_probability", "0.2"))


def test_replay_labels_get_their_language_token_after_a_prompt(processor, corpus):
    from types import SimpleNamespace

    from datasets import IterableDataset

    from whisper_finetuning.data.mixing import parse_dataset_specs
    from whisper_finetuning.training.stream import with_replay

    tokenizer = processor.tokenizer
    tokenizer.set_prefix_tokens(language="sv", task="transcribe")
    guard = SimpleNamespace(replay_probability=0.5, replay_dataset_name=str(corpus / "common_voice"),
                            replay_dataset_config_name="en", replay_split_name="train", replay_text_column_name=None,
                            replay_language="en")
    specs = parse_dataset_specs(str(corpus / "common_voice"), "sv-SE", "train", None)
    specs, probabilities, relabel = with_replay(specs, None, guard, tokenizer)
    replay_name = specs[-1].label
    examples = [{"dataset": replay_name, "labels": build_labels(tokenizer, "hello", prompt="before")},
                {"dataset": replay_name, "labels": build_labels(tokenizer, "hello")},
                {"dataset": specs[0].label, "labels": build_labels(tokenizer, "hej", prompt="innan")}]
    relabelled = list(relabel(IterableDataset.from_generator(lambda: iter(examples))))
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    languages = [tokens(tokenizer, [e["labels"][e["labels"].index(start) + 1]])[0] for e in relabelled]
    assert languages == ["<|en|>", "<|en|>", "<|sv|>"] and probabilities == [0.5, 0.5]
    assert relabelled[0]["labels"][:3] == examples[0]["labels"][:3]  # the prompt itself is untouched


def test_language_identification_is_whispers_own_detection(tiny_model_dir, corpus, tmp_path):
    """The forgetting guard's language-ID accuracy equals counting model.detect_language's answers by hand."""
    from whisper_finetuning.training.retention import warn_on_forgetting

    out = tmp_path / "run"
    retention = ["--retention_dataset_name", str(corpus / "common_voice"), "--retention_dataset_config_name", "en",
                 "--retention_language", "en", "--max_retention_samples", "4"]
    metrics = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_eval", *retention))
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from whisper_finetuning.data.audio import decode_row_audio
    from whisper_finetuning.data.sources import load_source
    from whisper_finetuning.features.log_mel import LogMelExtractor

    model = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    extract = LogMelExtractor(WhisperProcessor.from_pretrained(tiny_model_dir).feature_extractor)
    rows = list(load_source(str(corpus / "common_voice"), "en", "test"))[:4]
    features = torch.stack([torch.as_tensor(extract(decode_row_audio(row["audio"]))) for row in rows])
    with torch.inference_mode():
        detected = model.detect_language(input_features=features)
    by_hand = 100 * float((detected.flatten() == 50259).float().mean())
    assert metrics["eval_retention_en_language_accuracy"] == pytest.approx(by_hand)
    assert warn_on_forgetting({"eval_retention_en_language_accuracy": 40.0},
                              {"eval_retention_en_language_accuracy": 100.0}, 5.0)
    assert not warn_on_forgetting({"eval_retention_en_language_accuracy": 97.0},
                                  {"eval_retention_en_language_accuracy": 100.0}, 5.0)
