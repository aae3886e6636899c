"""run_eval.py end to end on the synthetic Common Voice and FLEURS layouts, with the real tiny.en model."""

import json
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

import run_eval
from local_paths import assert_nothing_local, folder_files
from whisper_finetuning.data.audio import to_model_rate
from whisper_finetuning.evaluation.reports import merge_into_card, predictions_file
from whisper_finetuning.data.rows import DataSourceError
from whisper_finetuning.loading import choose_dtype
from whisper_finetuning.offline.resolver import resolve_model
from whisper_finetuning.synthetic.corpus import generate
from whisper_finetuning.synthetic.tts import synthesize



@pytest.fixture(scope="module")
def english_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("english")
    generate(root, ["en"], ["common_voice", "fleurs"], num_speakers=4)
    return root


@pytest.fixture(scope="module")
def evaluated(english_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    results = run_eval.main([
        "--model_name_or_path", "openai/whisper-tiny.en", "--language", "en", "--batch_size", "4",
        "--common_voice_dir", str(english_corpus / "common_voice"), "--fleurs_dir", str(english_corpus / "fleurs"),
        "--output_dir", str(out)])
    return out, results


def test_evaluates_common_voice_and_fleurs_test_sets(evaluated):
    out, results = evaluated
    assert [(r["dataset_type"], r["config"], r["split"]) for r in results] == [
        ("mozilla-foundation/common_voice_17_0", "en", "test"), ("google/fleurs", "en_us", "test")]
    for result in results:
        assert result["samples"] == 6 and result["skipped"] == 0 and result["audio_hours"] > 0
        assert result["wer"] < 60 and result["rtfx"] > 0  # varied accents and pitches: far from perfect
        assert result["substitutions"] + result["deletions"] + result["hits"] > 30
        assert result["dtype"] == str(choose_dtype("auto")).removeprefix("torch.")


def test_reported_wer_equals_an_independent_jiwer_computation(evaluated):
    out, results = evaluated
    assert sorted(predictions_file(r) for r in results) == sorted(p.name for p in out.glob("predictions_*.jsonl"))
    for result in results:
        rows = [json.loads(line) for line in (out / predictions_file(result)).read_text().splitlines()]
        assert {"id", "duration", "reference", "prediction", "reference_normalized", "prediction_normalized"} <= set(rows[0])
        wer = 100 * jiwer.wer([r["reference_normalized"] for r in rows], [r["prediction_normalized"] for r in rows])
        assert result["wer"] == pytest.approx(wer)
        orthographic = 100 * jiwer.wer([r["reference"] for r in rows], [r["prediction"] for r in rows])
        assert result["wer_orthographic"] == pytest.approx(orthographic)


def test_model_index_is_leaderboard_ready(evaluated):
    out, results = evaluated
    metadata = yaml.safe_load((out / "model_index.yaml").read_text())
    name, entries = model_index_to_eval_results(metadata["model-index"])
    assert name == "openai/whisper-tiny.en" and metadata["language"] == "en"
    assert [(e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) for e in entries] == [
        ("mozilla-foundation/common_voice_17_0", "en", "test", "wer"), ("google/fleurs", "en_us", "test", "wer")]
    assert entries[0].metric_value == round(results[0]["wer"], 2)  # percent, as the leaderboard expects


def test_the_reports_hold_no_local_path(evaluated, english_corpus):
    out, _ = evaluated
    local = [english_corpus]
    model = Path(resolve_model("openai/whisper-tiny.en"))
    if model.is_dir():  # the offline copy (else the Hub id itself, which the reports name)
        local.append(model)
    shared = {name: content for name, content in folder_files(out).items() if not name.startswith("_")}
    assert {"results.json", "results.md", "model_index.yaml"} <= set(shared)
    assert_nothing_local(shared, local, what="run_eval's reports")


def test_results_merge_into_an_existing_model_card(evaluated):
    _, results = evaluated
    card = ModelCard("---\nlanguage: en\nmodel-index:\n- name: m\n  results:\n  - task: {type: automatic-speech-recognition}\n"
                     "    dataset: {type: google/fleurs, name: FLEURS, config: en_us, split: test}\n"
                     "    metrics: [{type: wer, value: 99.0}]\n  - task: {type: automatic-speech-recognition}\n"
                     "    dataset: {type: other/set, name: Other, config: x, split: test}\n"
                     "    metrics: [{type: wer, value: 5.0}]\n---\n# m\n")
    merged = merge_into_card(card, results, "m")
    values = {(e.dataset_type, e.dataset_config): e.metric_value for e in merged.data.eval_results}
    assert values[("other/set", "x")] == 5.0  # kept
    assert values[("google/fleurs", "en_us")] == round(results[1]["wer"], 2)  # replaced, not duplicated
    assert len(merged.data.eval_results) == 3


def test_long_audio_is_transcribed_in_full(tmp_path):
    sentences = ["The train to the city leaves at seven.", "She bought fresh bread at the market.",
                 "We walked along the river after dinner.", "The library is closed on Sundays.",
                 "He forgot his umbrella at the office.", "The children painted a picture of the sea.",
                 "Please turn off the lights when you leave.", "The museum opens at ten in the morning.",
                 "I drink a cup of tea every afternoon.", "The weather was cold and windy yesterday.",
                 "Remember to water the plants on Friday."]
    pieces = []
    for sentence in sentences:
        pieces += [to_model_rate(*synthesize(sentence, "en-us", rate=120)), np.zeros(8000, np.float32)]
    audio = np.concatenate(pieces)
    assert len(audio) / 16000 > 35
    soundfile.write(tmp_path / "long.wav", audio, 16000)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "long.wav", "transcription": " ".join(sentences)}))
    results = run_eval.main(["--model_name_or_path", "openai/whisper-tiny.en", "--language", "en",
                             "--dataset_name", str(tmp_path), "--output_dir", str(tmp_path / "out")])
    rows = [json.loads(l) for l in next((tmp_path / "out").glob("predictions_*.jsonl")).read_text().splitlines()]
    assert rows[0]["duration"] > 35
    assert "windy yesterday remember to" in rows[0]["prediction_normalized"]  # the end, past the first 30 s
    assert results[0]["wer"] < 25


def test_clear_errors(english_corpus, tmp_path):
    with pytest.raises(ValueError, match="Unknown language 'xx'.*Whisper language code"):
        run_eval.main(["--model_name_or_path", "openai/whisper-tiny.en", "--language", "xx"])
    with pytest.raises(DataSourceError, match="no split 'holdout'.*available: .*test"):
        run_eval.main(["--model_name_or_path", "openai/whisper-tiny.en", "--language", "en", "--split", "holdout",
                       "--common_voice_dir", str(english_corpus / "common_voice"), "--output_dir", str(tmp_path)])
    with pytest.raises(DataSourceError, match="no column 'transcript'.*raw_transcription"):
        run_eval.main(["--model_name_or_path", "openai/whisper-tiny.en", "--language", "en",
                       "--dataset_name", str(english_corpus / "fleurs"), "--dataset_config_name", "en_us",
                       "--text_column_name", "transcript", "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="English-only model"):
        run_eval.main(["--model_name_or_path", "openai/whisper-tiny.en", "--language", "sv",
                       "--dataset_name", str(english_corpus / "fleurs"), "--dataset_config_name", "en_us",
                       "--output_dir", str(tmp_path)])
