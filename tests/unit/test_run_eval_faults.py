"""run_eval.py never reports success for a failed evaluation: each fault gives a non-zero exit (an exception or
SystemExit) with a message naming the problem and the fix, and no file says otherwise (no model_index.yaml, results
marked incomplete). Tiny random model (generation limited to 8 tokens), tone clips."""

import json
import math
import os
import shutil
import signal
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from transformers import WhisperForConditionalGeneration, WhisperProcessor
from transformers.models.whisper.generation_whisper import WhisperGenerationMixin

import run_eval
from local_paths import assert_nothing_local, folder_files
from tiny_models import tone_voice
from whisper_finetuning import loading
from whisper_finetuning.backends.transformers_backend import TransformersBackend
from whisper_finetuning.evaluation.reports import OutputDirError, predictions_file
from whisper_finetuning.data.rows import DataSourceError
from whisper_finetuning.evaluation.scoring import ScoringError, check_scores
from whisper_finetuning.evaluation.transcriber import drop_digital_silence

SENTENCES = ["The train leaves at seven.", "She bought fresh bread.", "We walked along the river.",
             "The library is closed on Sundays."]


def audiofolder(folder, clips) -> str:
    """An audiofolder dataset; clips are (file name, samples or raw bytes, transcription)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for file_name, audio, text in clips:
        if isinstance(audio, bytes):
            (folder / file_name).write_bytes(audio)
        else:
            soundfile.write(folder / file_name, audio, 16_000, subtype="FLOAT")
        lines.append(json.dumps({"file_name": file_name, "transcription": text}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder)


def tone_clips(count=4):
    return [(f"{i}.wav", tone_voice(text)[0], text) for i, text in enumerate(SENTENCES[:count])]


@pytest.fixture(autouse=True)
def load_each_processor_once(monkeypatch):
    """The real processor, loaded once per folder and arguments for this module: building the Whisper tokenizer
    takes ~3 s, most of a run_eval.main call on the tiny model. Processors are not changed by run_eval."""
    def from_pretrained(path, **kwargs):
        key = (os.path.realpath(path), tuple(sorted(kwargs.items())))
        if key not in PROCESSORS:
            PROCESSORS[key] = WhisperProcessor.from_pretrained(path, **kwargs)
        return PROCESSORS[key]

    monkeypatch.setattr(loading, "WhisperProcessor", SimpleNamespace(from_pretrained=from_pretrained))


PROCESSORS = {}


def evaluate(model, dataset, out, *flags):
    return run_eval.main(["--model_name_or_path", str(model), "--dataset_name", str(dataset), "--output_dir", str(out),
                          "--generation_max_length", "8", *flags])


def read_results(out) -> dict:
    return json.loads((out / "results.json").read_text())


def predictions(out) -> list[dict]:
    (path,) = out.glob("predictions_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_unwritable_output_dir_fails_before_the_model_or_data_is_touched(tmp_path):
    (tmp_path / "a_file").write_text("")
    # The model and the dataset do not exist: the output folder is checked before either is looked at.
    with pytest.raises(OutputDirError, match=r"cannot write to --output_dir .*a_file/out: Not a directory\. "
                                             "Choose a folder you can write to"):
        evaluate(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "a_file" / "out")


def test_a_dataset_whose_clips_all_fail_to_decode_fails_with_the_reason(tiny_model_dir, tmp_path):
    data = audiofolder(tmp_path / "data", [("a.wav", b"not audio", "one"), ("b.wav", b"", "two"),
                                           ("c.wav", b"RIFF1234", "three")])
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_index.yaml").write_text("model-index: [] # from an earlier run of the same model\n")
    (out / "results.json").write_text(json.dumps({"model": str(tiny_model_dir), "results": []}))
    with pytest.raises(ScoringError, match=r"data test: 0 of 3 clips could be transcribed \(3 unreadable audio\); "
                                           r"first failures: a\.wav: cannot decode audio file .*a\.wav.*To fix: check "
                                           "that the audio files exist"):
        evaluate(tiny_model_dir, data, out)
    results = read_results(out)
    assert results["complete"] is False and results["problem"].startswith("data test: 0 of 3 clips")
    (result,) = results["results"]
    assert result["samples"] == 0 and result["skipped"] == 3 and result["wer"] is None  # NaN is written as null
    assert [s["id"] for s in result["skipped_samples"]] == ["a.wav", "b.wav", "c.wav"]
    assert not (out / "model_index.yaml").exists()  # the earlier run's model-index does not survive a failed run


def test_nothing_run_eval_writes_holds_a_local_path(tiny_model_dir, tmp_path):
    """results.json, results.md, the predictions and model_index.yaml are written to be shared (a leaderboard, a
    model card): the model and the data are named by their folder names, a clip by its path inside the data folder,
    also in the errors of skipped clips and of a failed run. Only the local record (a leading "_") keeps the path."""
    data = audiofolder(tmp_path / "my-data", tone_clips(2) + [("broken.wav", b"not audio", "Broken.")])
    out = tmp_path / "out"
    evaluate(tiny_model_dir, data, out)
    results = read_results(out)
    (result,) = results["results"]
    assert result["samples"] == 2 and result["skipped_samples"][0]["path"] == "my-data/broken.wav"
    assert results["model"] == tiny_model_dir.name and result["source"] == "my-data"
    assert {p["dataset"] for p in predictions(out)} == {"my-data:test"}
    written = folder_files(out)
    assert {"results.json", "results.md", "model_index.yaml", predictions_file(result)} <= set(written)
    shared = {name: content for name, content in written.items() if not name.startswith("_")}
    assert set(written) - set(shared) == {"_evaluated_model.json"}
    assert_nothing_local(shared, [tiny_model_dir, data], what="run_eval's files")

    # A failed run (every clip unreadable) writes the failures into results.json's problem: no path there either
    broken = audiofolder(tmp_path / "broken-data", [("a.wav", b"not audio", "one")])
    with pytest.raises(ScoringError, match="0 of 1 clips could be transcribed"):
        evaluate(tiny_model_dir, broken, out)
    assert "broken-data/a.wav" in read_results(out)["problem"]
    shared = {name: content for name, content in folder_files(out).items() if not name.startswith("_")}
    assert_nothing_local(shared, [tiny_model_dir, data, broken], what="run_eval's files after a failed run")


def test_a_dataset_that_cannot_be_read_fails_before_the_model_is_loaded(tmp_path):
    good = audiofolder(tmp_path / "good", tone_clips(1))
    empty = tmp_path / "empty.csv"
    empty.write_text("file_name,transcription\n")
    out = tmp_path / "out"
    # The model does not exist: every dataset is opened before it is looked for, and nothing is written
    with pytest.raises(DataSourceError, match=r"empty\.csv lists no samples"):
        evaluate(tmp_path / "no-model", f"{good}+{empty}", out)
    assert list(out.iterdir()) == []


def test_a_dataset_with_no_rows_is_an_error():  # a Hub split can be empty; local sources refuse it (test above)
    scores = {"rows": 0, "samples": 0, "skipped": 0, "skipped_by_reason": {}, "skipped_samples": []}
    with pytest.raises(ScoringError, match="cv en test: the dataset has no rows. Check --split"):
        check_scores(scores, "cv en test")


def test_empty_references_fail_instead_of_a_nan_score(tiny_model_dir, tmp_path):
    clips = [(name, audio, "  ") for name, audio, _ in tone_clips(2)]
    out = tmp_path / "out"
    with pytest.raises(ScoringError, match=r"wer, wer_orthographic, cer is not a number: the references of all 2 "
                                           "transcribed clips are empty after normalization.*--text_column_name"):
        evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), out)
    assert read_results(out)["complete"] is False and not (out / "model_index.yaml").exists()
    assert "NaN" not in (out / "results.json").read_text()


def test_a_clip_with_nan_samples_is_counted_as_unreadable(tiny_model_dir, tmp_path):
    clips = tone_clips(2)
    broken = clips[1][1].copy()
    broken[100:200] = np.nan
    clips[1] = ("1.wav", broken, clips[1][2])
    out = tmp_path / "out"
    (result,) = evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), out)
    assert result["samples"] == 1 and result["skipped_by_reason"] == {"unreadable audio": 1}
    assert "non-finite samples" in result["skipped_samples"][0]["error"]
    assert [p["id"] for p in predictions(out)] == ["0.wav"]


def test_malformed_rows_are_skipped_counted_and_listed(tiny_model_dir, corpus, tmp_path):
    common_voice = tmp_path / "cv"
    shutil.copytree(corpus / "common_voice" / "en", common_voice / "en")
    tsv = common_voice / "en" / "test.tsv"
    lines = tsv.read_text().splitlines()
    good = len(lines) - 1
    columns = lines[1].split("\t")
    columns[lines[0].split("\t").index("sentence")] += "\twith a tab inside"  # one column too many
    tsv.write_text("\n".join(lines + ["\t".join(columns)]) + "\n")
    out = tmp_path / "out"
    (result,) = evaluate(tiny_model_dir, common_voice, out, "--dataset_config_name", "en")
    assert result["rows"] == good + 1 and result["samples"] == good
    assert result["skipped_by_reason"] == {"malformed row": 1}
    assert f"test.tsv line {good + 2}" in result["skipped_samples"][0]["error"]
    assert read_results(out)["complete"] is True and (out / "model_index.yaml").is_file()


@pytest.mark.parametrize("flag, value, message", [
    ("--batch_size", "0", "--batch_size must be at least 1, not 0"),
    ("--num_beams", "0", "--num_beams must be at least 1"),
    ("--max_eval_samples", "0", "--max_eval_samples must be at least 1"),
    ("--generation_max_length", "-1", "--generation_max_length must be at least 1"),
    ("--max_duration_in_seconds", "0", "--max_duration_in_seconds must be more than 0"),
    ("--max_duration_in_seconds", "nan", "--max_duration_in_seconds must be more than 0, not nan"),
    ("--temperature", "-0.2", "--temperature needs one or more finite values of 0 or more"),
    ("--temperature", "inf", "--temperature needs one or more finite values"),
    ("--compression_ratio_threshold", "0", r"--compression_ratio_threshold must be more than 0 \(inf: off\)"),
    ("--logprob_threshold", "0.5", r"--logprob_threshold must be 0 or less \(-inf: off\)"),
    ("--no_speech_threshold", "1.5", "--no_speech_threshold is a probability between 0 and 1"),
    ("--no_speech_threshold", "nan", "--no_speech_threshold is a probability"),
])
def test_numeric_flags_are_checked_when_parsed(flag, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):  # before the (missing) model or data is looked at
        evaluate(tmp_path / "no-model", tmp_path / "no-data", tmp_path / "out", flag, value)
    assert not (tmp_path / "out").exists()


def test_generation_max_length_beyond_the_model_is_refused(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--generation_max_length 449 is more than the 448 tokens"):
        run_eval.main(["--model_name_or_path", str(tiny_model_dir), "--dataset_name",
                       audiofolder(tmp_path / "data", tone_clips(1)), "--output_dir", str(out),
                       "--generation_max_length", "449"])
    assert list(out.iterdir()) == []


def test_revision_reaches_from_pretrained_and_the_results(tiny_model_dir, tmp_path, monkeypatch):
    seen = []
    for cls in (WhisperForConditionalGeneration, WhisperProcessor):
        original = cls.from_pretrained.__func__

        def recording(klass, path, *args, _original=original, **kwargs):
            seen.append((klass.__name__, kwargs.get("revision")))
            return _original(klass, path, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(recording))
    out = tmp_path / "out"
    evaluate(tiny_model_dir, audiofolder(tmp_path / "data", tone_clips(1)), out, "--revision", "v1.0")
    assert ("WhisperForConditionalGeneration", "v1.0") in seen and ("WhisperProcessor", "v1.0") in seen
    assert read_results(out)["revision"] == "v1.0"


def test_clips_over_the_maximum_duration_are_skipped_and_counted(tiny_model_dir, tmp_path):
    clips = tone_clips(2)
    limit = min(len(audio) / 16_000 for _, audio, _ in clips) + 0.01  # the shortest stays
    out = tmp_path / "out"
    (result,) = evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), out, "--max_duration_in_seconds",
                         str(limit))
    assert result["samples"] == 1 and result["skipped_by_reason"] == {"longer than --max_duration_in_seconds": 1}
    assert "raise it to transcribe such clips" in result["skipped_samples"][0]["error"]
    with pytest.raises(ScoringError, match=r"0 of 2 clips could be transcribed \(2 longer than "
                                           r"--max_duration_in_seconds\).*To fix: raise --max_duration_in_seconds"):
        evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), out, "--max_duration_in_seconds", "0.1")


def test_the_long_form_guards_reach_generate_for_clips_over_30_s_only(tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    generate = TransformersBackend._generate

    def recording(self, features, generate_kwargs, **extra):
        calls.append((features.shape[-1], extra))
        return generate(self, features, generate_kwargs, **extra)

    monkeypatch.setattr(TransformersBackend, "_generate", recording)
    long = np.tile(tone_voice(SENTENCES[0])[0], 20)[:16_000 * 35]
    clips = [("long.wav", long, "tones"), *tone_clips(1)]
    evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), tmp_path / "out", "--temperature", "0", "0.5",
             "--no_speech_threshold", "0.5", "--logprob_threshold", "-2", "--compression_ratio_threshold", "2",
             "--condition_on_prev_tokens", "true")
    (short_frames, short_extra), (long_frames, long_extra) = calls[1:]  # calls[0]: the warm-up
    assert short_frames == 3000 and short_extra == {}  # clips up to 30 s: as the leaderboard decodes them
    assert long_frames == 3500 and callable(long_extra.pop("monitor_progress"))
    assert long_extra.pop("attention_mask").shape == (1, 3500)
    assert long_extra == {"return_timestamps": True, "return_segments": True, "temperature": (0.0, 0.5),
                          "compression_ratio_threshold": 2.0, "logprob_threshold": -2.0, "no_speech_threshold": 0.5,
                          "condition_on_prev_tokens": True}


def test_digital_silence_is_dropped_before_long_form_decoding():
    sound = tone_voice("a short sentence")[0]
    silence = np.zeros(16_000 * 40, np.float32)
    kept = drop_digital_silence(np.concatenate([silence, sound, silence, sound, silence]))
    assert len(kept) == 2 * len(sound) + 4 * 0.2 * 16_000  # 0.2 s kept on each side of each sound
    assert len(drop_digital_silence(silence)) == 0
    pauses = np.concatenate([sound, np.zeros(12_000, np.float32), sound])  # a 0.75 s pause is not dropped
    assert len(drop_digital_silence(pauses)) == len(pauses)
    room_tone = np.random.default_rng(0).normal(0, 1e-3, 16_000 * 40).astype(np.float32)  # -60 dBFS: not digital
    assert len(drop_digital_silence(room_tone)) == len(room_tone)


def test_a_long_clip_of_digital_silence_is_transcribed_as_nothing(tiny_model_dir, tmp_path):
    clips = [("silence.wav", np.zeros(16_000 * 65, np.float32), "nothing said"), *tone_clips(1)]
    out = tmp_path / "out"
    (result,) = evaluate(tiny_model_dir, audiofolder(tmp_path / "data", clips), out)
    by_id = {p["id"]: p for p in predictions(out)}
    assert by_id["silence.wav"]["prediction"] == "" and by_id["silence.wav"]["duration"] == 65.0
    assert by_id["0.wav"]["prediction"] != ""  # the random model says something about a tone


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_after_the_current_batch_and_keeps_what_was_done(signum, tiny_model_dir, tmp_path,
                                                                        monkeypatch):
    transcribe = TransformersBackend.transcribe_batch
    calls = []

    def transcribe_then_signal(self, features, generate_kwargs):
        texts = transcribe(self, features, generate_kwargs)
        calls.append(len(texts))
        if len(calls) == 2:  # the first batch after the warm-up
            os.kill(os.getpid(), signum)
        return texts

    monkeypatch.setattr(TransformersBackend, "transcribe_batch", transcribe_then_signal)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    out = tmp_path / "out"
    (out).mkdir()
    (out / "model_index.yaml").write_text("model-index: []\n")  # an earlier complete run of the same model
    with pytest.raises(SystemExit) as exit_:
        evaluate(tiny_model_dir, audiofolder(tmp_path / "data", tone_clips(4)), out, "--batch_size", "1")
    assert exit_.value.code == 128 + signum
    assert len(calls) == 2  # no batch after the signal
    results = read_results(out)
    assert results["complete"] is False and results["problem"].startswith(f"stopped by {signum.name} during data")
    assert results["results"][0]["samples"] == 1 and results["results"][0]["complete"] is False
    assert len(predictions(out)) == 1 and not (out / "model_index.yaml").exists()
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_a_signal_stops_a_long_form_clip_at_the_next_window(tiny_model_dir, tmp_path, monkeypatch):
    windows = []
    original = WhisperGenerationMixin.generate_with_fallback

    def window_then_signal(self, *args, **kwargs):
        if not kwargs["is_shortform"]:  # not the warm-up (a short clip, before the handler is installed)
            windows.append(1)
            if len(windows) == 1:
                os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(WhisperGenerationMixin, "generate_with_fallback", window_then_signal)
    tone = np.tile(tone_voice(SENTENCES[0])[0], 60)[:16_000 * 95]  # 95 s: four windows
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        evaluate(tiny_model_dir, audiofolder(tmp_path / "data", [("long.wav", tone, "tones")]), out,
                 "--temperature", "0")
    assert exit_.value.code == 128 + signal.SIGTERM
    assert len(windows) == 1  # the window during which the signal came; the next one was not started
    assert predictions(out) == [] and read_results(out)["complete"] is False


def test_results_of_another_model_or_revision_are_not_overwritten(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"model": "openai/whisper-small", "revision": "main", "results": []}))
    # Refused before the (missing) model is loaded
    with pytest.raises(OutputDirError, match=r"holds the results of openai/whisper-small \(revision main\); this run "
                                             r"evaluates .*no-model \(revision main\)\. Choose another --output_dir, "
                                             "or pass --overwrite_output_dir"):
        evaluate(tmp_path / "no-model", tmp_path / "no-data", out)
    (out / "results.json").write_text(json.dumps({"model": "M", "revision": "main", "results": []}))
    with pytest.raises(OutputDirError, match=r"holds the results of M \(revision main\); this run evaluates M "
                                             r"\(revision v2\)"):
        run_eval.main(["--model_name_or_path", "M", "--revision", "v2", "--dataset_name", "x", "--output_dir",
                       str(out)])
    (out / "results.json").write_text("{not json")
    with pytest.raises(OutputDirError, match="holds a results.json that run_eval did not write"):
        evaluate(tmp_path / "no-model", tmp_path / "no-data", out)


def test_the_same_model_replaces_its_results_and_overwrite_replaces_another(tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    first = audiofolder(tmp_path / "first", tone_clips(1))
    evaluate(tiny_model_dir, first, out)
    assert [p.name for p in out.glob("predictions_*.jsonl")] == ["predictions_first_test.jsonl"]
    # The same model (named by another path to the same folder) on another dataset: replaced, nothing stale left
    relative = os.path.relpath(tiny_model_dir)
    evaluate(relative, audiofolder(tmp_path / "second", tone_clips(1)), out)
    assert [p.name for p in out.glob("predictions_*.jsonl")] == ["predictions_second_test.jsonl"]
    assert read_results(out)["results"][0]["dataset_name"] == "second"
    assert predictions_file(read_results(out)["results"][0]) == "predictions_second_test.jsonl"
    # Another model's results: only with --overwrite_output_dir
    (out / "results.json").write_text(json.dumps({"model": "openai/whisper-small", "revision": "main"}))
    (result,) = evaluate(tiny_model_dir, first, out, "--overwrite_output_dir")
    assert read_results(out)["model"] == tiny_model_dir.name and math.isfinite(result["wer"])
    assert (out / "model_index.yaml").is_file()
