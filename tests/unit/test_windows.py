"""Long-form training windows (features/windows.py, --long_form_probability): which rows are packed together, how
they are laid out, what the Preprocessor makes of a window, and a training run with windows and "+" mixing that
resumes exactly."""

import json

import numpy as np
import pytest
from training_runs import arguments, resumes_exactly

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.data.audio import SAMPLING_RATE, decode_row_audio
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features.preprocessing import FilterSettings, Preprocessor, prepare
from whisper_finetuning.features.targets import TargetSettings, speech_bounds, starts_window, timed_labels
from whisper_finetuning.features.windows import (LEADING_PAUSE_SECONDS, MAX_WINDOW_SECONDS, PAUSE_SECONDS,
                                                 lay_out, pack_windows)

ALWAYS = TargetSettings(long_form_probability=1.0, seed=3)


def row(index: int, dataset: str = "cv", duration: float = 5.0, text: str = "ord", error: str = "") -> dict:
    return {"id": f"{dataset}-{index}", "pass": 0, "row": index, "dataset": dataset, "duration": duration,
            "text": text, "error": error, "previous_text": f"before {index}"}


def members(items) -> list[list[int]]:
    return [[r["row"] for r in item["window"]] if "window" in item else [item["row"]] for item in items]


def test_a_window_takes_the_next_rows_of_its_dataset_while_they_fit_in_30_seconds():
    rows = [row(0), row(1), row(2), row(3), row(4), row(5, "fleurs"), row(6, "fleurs"), row(7, error="bad"),
            row(8, text=" "), row(9, duration=20.0), row(10, duration=-1.0)]
    items = list(pack_windows(rows, ALWAYS))
    # 1 s leading pause + 4 x 5 s + 3 x 2 s pauses = 27 s; a fifth row would need 34 s.
    assert members(items) == [[0, 1, 2, 3], [4], [5, 6], [7], [8], [9, 10]]
    window = items[0]
    assert window["row"] == 3 and window["pass"] == 0 and window["dataset"] == "cv"  # the last row: the position
    assert window["previous_text"] == "before 0"  # the first row's: the prompt of the window
    assert items[3] is rows[7] and items[4] is rows[8]  # broken and empty rows go through alone, as before


def test_without_windows_the_rows_are_untouched():
    rows = [row(i) for i in range(20)]
    assert list(pack_windows(rows, TargetSettings(timestamp_probability=0.5))) == rows


def test_the_share_of_windows_follows_the_probability_and_the_seed():
    settings = TargetSettings(long_form_probability=0.3, seed=5)
    heads = [starts_window(settings, (2, r)) for r in range(6000)]
    assert sum(heads) / len(heads) == pytest.approx(0.3, abs=0.02)
    assert heads == [starts_window(settings, (2, r)) for r in range(6000)]
    assert heads != [starts_window(TargetSettings(long_form_probability=0.3, seed=6), (2, r)) for r in range(6000)]


def test_packing_resumed_after_any_window_gives_the_same_windows():
    """A resumed run reads from the row after the last trained sample: packing from there repeats the rest."""
    settings = TargetSettings(long_form_probability=0.4, seed=1)
    rows = [row(i, "cv" if i % 7 < 4 else "fleurs", duration=2.0 + i % 5) for i in range(200)]
    straight = members(pack_windows(rows, settings))
    assert any(len(m) > 2 for m in straight) and any(len(m) == 1 for m in straight)
    for done in range(1, len(straight)):
        next_row = straight[done - 1][-1] + 1
        assert members(pack_windows(rows[next_row:], settings)) == straight[done:]


def test_the_layout_puts_pauses_between_the_clips_and_a_segment_on_each_speech():
    second = SAMPLING_RATE
    clip = np.zeros(3 * second, np.float32)
    clip[second // 2: 2 * second] = 0.3 * np.sin(np.arange(3 * second // 2) / 5)  # speech from 0.5 to 2.0 s
    clips = [("ett", clip), ("två", clip), ("tre", clip)]
    audio, segments = lay_out(clips, (0, 7), seed=3)
    assert [text for _, _, text in segments] == ["ett", "två", "tre"]
    starts = [start for start, _, _ in segments]
    assert LEADING_PAUSE_SECONDS[0] + 0.5 <= starts[0] <= LEADING_PAUSE_SECONDS[1] + 0.5
    for (start, end, _), (next_start, _, _) in zip(segments, segments[1:]):
        assert end - start == pytest.approx(1.5, abs=0.021)
        # the previous clip's 1 s of trailing silence, a drawn pause, the next clip's 0.5 s of leading silence
        assert 1.5 + PAUSE_SECONDS[0] - 0.001 <= next_start - end <= 1.5 + PAUSE_SECONDS[1] + 0.021
    for start, end, _ in segments:  # each segment is where the audio has speech
        found = speech_bounds(audio[int(start * second) - second // 4: int(end * second) + second // 4])
        assert found[1] - found[0] == pytest.approx(end - start, abs=0.041)
    assert len(audio) == pytest.approx((segments[-1][1] + 1.0) * second, abs=0.02 * second)
    again, same = lay_out(clips, (0, 7), seed=3)
    assert np.array_equal(again, audio) and same == segments
    assert lay_out(clips[:2], (0, 7), seed=3)[1] == segments[:2]  # the first clips are placed the same
    assert lay_out(clips, (0, 8), seed=3)[1] != segments
    # Clips past 30 s are left out.
    long_clips = [("lång", np.full(12 * second, 0.1, np.float32))] * 3
    audio, segments = lay_out(long_clips, (0, 1), seed=0)
    assert len(segments) == 2 and len(audio) <= MAX_WINDOW_SECONDS * second


@pytest.fixture
def sv_rows(corpus) -> list[dict]:
    rows = list(load_source(str(corpus / "common_voice"), "sv-SE", "train"))[:6]
    return [{**r, "pass": 0, "row": index, "previous_text": ""} for index, r in enumerate(rows)]


def test_a_window_becomes_one_sample_with_a_timestamp_pair_per_utterance(processor, sv_rows):
    tokenizer = processor.tokenizer
    tokenizer.set_prefix_tokens(language="sv", task="transcribe")
    preprocessor = Preprocessor(processor, targets=ALWAYS)
    rows = [*sv_rows[:3], {**sv_rows[3], "audio": {"path": "/nowhere/missing.mp3", "bytes": None}}]
    window = next(pack_windows(rows, ALWAYS))
    assert [r["row"] for r in window["window"]] == [0, 1, 2, 3]
    example, = prepare([window], preprocessor)
    clips = [(r["text"], decode_row_audio(r["audio"])) for r in sv_rows[:3]]
    audio, segments = lay_out(clips, (0, 3), ALWAYS.seed)
    assert example["labels"] == timed_labels(tokenizer, segments) and len(segments) == 3
    assert example["input_length"] == pytest.approx(len(audio) / SAMPLING_RATE)
    assert np.allclose(example["input_features"], preprocessor.log_mel(audio))
    assert preprocessor.stats.skipped["unreadable audio"] == 1  # the broken row is counted and left out
    assert preprocessor.stats.targets["long-form window"] == 1
    assert preprocessor.stats.targets["utterance in a long-form window"] == 3


def test_labels_longer_than_the_decoder_leave_the_last_utterances_out(processor, sv_rows):
    tokenizer = processor.tokenizer
    tokenizer.set_prefix_tokens(language="sv", task="transcribe")
    window = next(pack_windows(sv_rows[:4], ALWAYS))
    full, = prepare([window], Preprocessor(processor, targets=ALWAYS))
    assert len(window["window"]) == 4
    limit = len(full["labels"]) - 1
    preprocessor = Preprocessor(processor, FilterSettings(max_label_length=limit), targets=ALWAYS)
    cut, = prepare([window], preprocessor)
    clips = [(r["text"], decode_row_audio(r["audio"])) for r in sv_rows[:3]]
    audio, segments = lay_out(clips, (0, 3), ALWAYS.seed)
    assert len(cut["labels"]) <= limit and cut["labels"] == timed_labels(tokenizer, segments)
    assert cut["input_length"] == pytest.approx(len(audio) / SAMPLING_RATE)
    assert cut["input_length"] < full["input_length"]
    assert sum(count for reason, count in preprocessor.stats.skipped.items() if "long-form window" in reason) == 1


def test_training_with_windows_and_mixing_resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch, caplog):
    mixed = ["--dataset_name", f"{corpus / 'common_voice'}+{corpus / 'fleurs'}", "--dataset_config_name",
             "sv-SE+sv_se"]
    log = resumes_exactly(tiny_model_dir, corpus, tmp_path, monkeypatch, caplog, 6, *mixed,
                          "--long_form_probability", "0.5", "--timestamp_probability", "0.2",
                          "--prompt_probability", "0.3", "--no_speech_probability", "0.1")
    assert "samples with long-form window" in log and "utterance in a long-form window" in log


def test_a_model_trained_with_windows_runs_long_form_on_both_backends(tiny_model_dir, corpus, tmp_path):
    """The fine-tuned tiny model (every target option on), as saved and as a CTranslate2 export: the app's long-form
    decoding with timestamps and a prompt runs on both, every cue inside the recording; run_eval.py --long_form
    --prompt writes the long-form scores and the prompt into results.json and results.md."""
    import run_eval
    from whisper_finetuning.backends.load import load_backend
    from whisper_finetuning.export.checkpoint import load_for_export
    from whisper_finetuning.export.ctranslate2 import convert_to_ctranslate2
    from whisper_finetuning.inference.long_audio import transcribe_long

    trained = tmp_path / "trained"
    train_script.main(arguments(tiny_model_dir, corpus, trained, "--do_train", "--max_steps", "2",
                                "--long_form_probability", "0.5", "--timestamp_probability", "0.3",
                                "--prompt_probability", "0.3", "--no_speech_probability", "0.1"))
    # A random model rambles up to the token limit in every window: 8 tokens keep the test fast.
    generation = json.loads((trained / "generation_config.json").read_text())
    (trained / "generation_config.json").write_text(json.dumps({**generation, "max_length": 8}))
    model, processor = load_for_export(str(trained))
    exported = convert_to_ctranslate2(model, processor, tmp_path / "ct2", "float32")
    rows = list(load_source(str(corpus / "fleurs"), "sv_se", "test"))[:3]
    audio = np.concatenate([decode_row_audio(row["audio"]) for row in rows])
    for name in (trained, exported):
        backend = load_backend(str(name))
        cues = transcribe_long(backend, audio, backend.generate_kwargs("sv", prompt="Hej"))
        assert all(0 <= cue.start <= cue.end <= len(audio) / SAMPLING_RATE for cue in cues), (name, cues)

    out = tmp_path / "eval"
    [result] = run_eval.main(["--model_name_or_path", str(trained), "--language", "sv", "--dataset_name",
                              str(corpus / "fleurs"), "--dataset_config_name", "sv_se", "--max_eval_samples", "4",
                              "--long_form", "--long_form_max_clips", "4", "--clips_per_recording", "2",
                              "--prompt", "Hej", "--output_dir", str(out)])
    long_form = json.loads((out / "results.json").read_text())["results"][0]["long_form"]
    assert long_form == result["long_form"] and long_form["recordings"] == 2 and result["prompt"] == "Hej"
    assert long_form["long_form_wer"] >= 0 and long_form["words_on_silence"] is not None
    assert "| long-form WER |" in (out / "results.md").read_text()
