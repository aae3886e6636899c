"""Integration tests on the real pretrained weights, converted from their PyPI packages (run: pytest -m integration)."""

import json

import jiwer
import numpy as np
import pytest
import torch
from ct2_writer import ct2_variables
from safetensors.torch import load_file
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.english_normalizer import BasicTextNormalizer

from whisper_finetuning.data.audio import to_model_rate
from whisper_finetuning.offline.ct2_reader import read_ct2_model
from whisper_finetuning.offline.resolver import offline_model_dir, resolve_model
from whisper_finetuning.synthetic.corpus import read_sentences
from whisper_finetuning.synthetic.tts import synthesize


# Clean espeak-ng speech of everyday sentences: whisper-base hears the English ones within a word each.
ENGLISH = ["Please open the window.", "My brother lives in London.", "The children are playing in the garden.",
           "Where is the nearest bank?", "I like to read books in the evening."]
# espeak's German is hard for whisper-base ("Heute" heard as "Hoyt"), and which sentences come out right depends on
# the CPU's floating-point rounding (one that was exact here lost 4 words on another machine's CPU). So German is
# checked over the whole German sentence list: 48 % WER measured here with 1 and 2 threads; the same clips decoded
# with a wrong language token gave 103 % (<|sv|>) and 123 % (<|en|>).
GERMAN_MAX_WER = 0.65

@pytest.fixture(scope="module")
def base_dir():
    return offline_model_dir("openai/whisper-base")


def load(directory):
    return WhisperForConditionalGeneration.from_pretrained(directory).eval(), WhisperProcessor.from_pretrained(directory)


def transcribe(model, processor, sentences, voice, **generate_kwargs):
    audio = [to_model_rate(*synthesize(sentence, voice, rate=130)) for sentence in sentences]
    features = processor(audio, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        return processor.batch_decode(model.generate(features, **generate_kwargs), skip_special_tokens=True)


def word_errors(reference, hypothesis):
    normalize = BasicTextNormalizer()
    out = jiwer.process_words(normalize(reference), normalize(hypothesis))
    return out.substitutions + out.deletions + out.insertions


def test_converted_base_weights_equal_the_packaged_tensors(base_dir, base_source):
    packaged = read_ct2_model(b"".join(part.locate().read_bytes() for part in base_source.model_bin)).variables
    converted = load_file(str(base_dir / "model.safetensors"))
    assert all(t.dtype == torch.float32 for t in converted.values())
    rebuilt = ct2_variables(converted, 8, 8, dtype=np.float32)  # fuse back the way CTranslate2 lays them out
    float_names = [n for n, a in packaged.items() if a.dtype == np.float16 and n != "decoder/projection/weight"]
    assert set(float_names) == {n for n, a in rebuilt.items() if a.ndim > 0}  # every tensor, none left over
    assert len(float_names) == 203
    for name in float_names:
        np.testing.assert_array_equal(rebuilt[name], packaged[name].astype(np.float32), err_msg=name)


def test_resolve_uses_the_offline_copy_when_the_hub_is_unreachable(base_dir):
    assert resolve_model("openai/whisper-base") == str(base_dir)


def test_base_transcribes_english_within_one_word_and_german(base_dir):
    model, processor = load(base_dir)
    hypotheses = transcribe(model, processor, ENGLISH, "en", language="en", task="transcribe")
    for reference, hypothesis in zip(ENGLISH, hypotheses):
        assert word_errors(reference, hypothesis) <= 1, (reference, hypothesis)
    german = read_sentences("corpus_de")
    hypotheses = transcribe(model, processor, german, "de", language="de", task="transcribe")
    errors = sum(word_errors(r, h) for r, h in zip(german, hypotheses))
    wer = errors / sum(len(BasicTextNormalizer()(r).split()) for r in german)
    assert wer <= GERMAN_MAX_WER, (wer, list(zip(german, hypotheses)))


def test_base_detects_the_language_when_not_forced(base_dir):
    model, processor = load(base_dir)
    hypotheses = transcribe(model, processor, ENGLISH[:2], "en")  # no language, no task
    for reference, hypothesis in zip(ENGLISH, hypotheses):
        assert word_errors(reference, hypothesis) <= 1, (reference, hypothesis)


def test_tiny_en_transcribes_english():
    model, processor = load(offline_model_dir("openai/whisper-tiny.en"))
    assert not model.generation_config.is_multilingual
    hypotheses = transcribe(model, processor, ENGLISH, "en")
    assert sum(word_errors(r, h) for r, h in zip(ENGLISH, hypotheses)) <= 2, hypotheses


def test_quickstart_writes_its_report(tmp_path, monkeypatch):
    from whisper_finetuning import quickstart

    out = tmp_path / "quickstart"
    monkeypatch.setattr("sys.argv", ["quickstart", "--output_dir", str(out), "--models", "openai/whisper-tiny.en",
                                     "--languages", "en", "sv"])
    quickstart.main()
    results = json.loads((out / "results.json").read_text())
    assert [(r["model"], r["language"]) for r in results] == [("openai/whisper-tiny.en", "en")]  # .en skips sv
    assert results[0]["metric"] == "wer" and results[0]["value"] <= 0.1 and results[0]["num_scored"] == 5
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(r["reference_normalized"] for r in rows)
    assert len(list((out / "clips" / "sv").glob("*.wav"))) == 5
    assert "| openai/whisper-tiny.en | en | 5 | WER |" in (out / "results.md").read_text()
