"""The export with real weights on eSpeak speech: whisper-base (multilingual) and whisper-tiny.en (English-only) to
CTranslate2 and whisper.cpp, each checked by the command's own parity check against the transformers model, and the
CTranslate2 folder transcribed by faster-whisper as a user would load it."""

import json

import pytest
from faster_whisper import WhisperModel

import run_eval
from normalizers import get_normalizer
from whisper_finetuning.data.audio import decode_row_audio
from whisper_finetuning.data.mixing import load_mixture, parse_dataset_specs
from whisper_finetuning.export.__main__ import main as export_main
from whisper_finetuning.metrics import error_rate


def check_arguments(spoken_corpus) -> list[str]:
    """The 12 English test clips of the corpus: Common Voice en + FLEURS en_us."""
    return ["--check", f"{spoken_corpus}/common_voice+{spoken_corpus}/fleurs", "--dataset_config_name", "en+en_us",
            "--language", "en", "--batch_size", "6"]


# The 12 clips hold about 98 words, so one word is about 1 WER point: a lossy export (int8, 16-bit, q8_0) may change
# two words here, which the default tolerances (1 for 16-bit, 2 for 8-bit: meant for real test sets) would count as a
# failure. float32 keeps the default 0.5.
LOSSY_TOLERANCE = 2.5
UNDERSTOOD = 50  # WER % below which a model understands these voices (one that does not scores near 100 or more)


def export_and_check(model, to, quantization, output_dir, spoken_corpus) -> dict:
    tolerance = [] if quantization == "float32" else ["--tolerance", str(LOSSY_TOLERANCE)]
    export_main(["--model", model, "--to", to, "--quantization", quantization, "--output_dir", str(output_dir),
                 *check_arguments(spoken_corpus), *tolerance])
    report = json.loads((output_dir / "parity.json").read_text())
    assert report["samples"] == 12 and report["passed"]
    # Real speech: the trained model transcribes it (whisper-base: 24 % WER on these voices, whisper-tiny.en 37-42 %
    # in different environments), so the comparison is not between two failures; the export is within the tolerance.
    assert report["trained"]["wer"] < UNDERSTOOD, report
    assert report["exported"]["wer"] <= report["trained"]["wer"] + report["tolerance"], report
    assert "# Export parity: passed" in (output_dir / "parity.md").read_text()
    return report


@pytest.mark.parametrize("model, quantization, tolerance", [("openai/whisper-base", "float32", 0.5),
                                                            ("openai/whisper-tiny.en", "int8", LOSSY_TOLERANCE)])
def test_ctranslate2_export_transcribes_like_the_trained_model(model, quantization, tolerance, spoken_corpus,
                                                                tmp_path):
    out = tmp_path / "ct2"
    report = export_and_check(model, "ctranslate2", quantization, out, spoken_corpus)
    # A CPU runs int8 weights as int8_float32.
    assert report["tolerance"] == tolerance and report["compute_type"].startswith(quantization)
    if quantization == "float32":  # the same computation up to the order of float operations
        assert report["identical_normalized"] >= 0.9, report["differences"]

    # faster-whisper, as a user runs it on the folder alone, understands the speech too.
    specs = parse_dataset_specs(str(spoken_corpus / "fleurs"), "en_us", "test", None)
    rows = list(load_mixture(specs))
    fw = WhisperModel(str(out), device="cpu", compute_type=quantization)
    heard = [" ".join(s.text for s in fw.transcribe(decode_row_audio(row["audio"]), language="en", beam_size=1,
                                                     without_timestamps=True)[0]) for row in rows]
    wer = error_rate([row["text"] for row in rows], heard, normalize=get_normalizer("en")).percent
    assert len(rows) == 6 and wer < UNDERSTOOD, list(zip(heard, [row["text"] for row in rows]))

    # run_eval.py --backend ctranslate2 on the export scores like the default backend on the trained model.
    def evaluate(name: str, *backend: str) -> dict:
        [result] = run_eval.main(["--model_name_or_path", name, *backend, "--language", "en",
                                  "--dataset_name", str(spoken_corpus / "fleurs"), "--dataset_config_name", "en_us",
                                  "--batch_size", "6", "--dtype", "float32", "--output_dir",
                                  str(tmp_path / f"eval-{len(backend)}")])
        return result

    default, exported = evaluate(model), evaluate(str(out), "--backend", "ctranslate2")
    assert exported["backend"] == "ctranslate2" and exported["dtype"].startswith(quantization)
    assert default["samples"] == exported["samples"] == 6
    assert default["wer"] < UNDERSTOOD and exported["wer"] < UNDERSTOOD, (default, exported)
    if quantization == "float32":  # the same WER (issue: within 0.5); int8 on 49 words moves by a word or two
        assert abs(exported["wer"] - default["wer"]) <= 0.5, (default, exported)
        check_live_captions_of_the_export(model, out, rows)
        check_the_prompt_on_both_backends(model, out, spoken_corpus, tmp_path)


# Whisper follows a prompt's style: after this one it leaves out the full stops it writes on every clip without it.
NO_PUNCTUATION = "this is a sentence without capitals or punctuation and so is the next one"


def check_the_prompt_on_both_backends(model: str, export_dir, spoken_corpus, tmp_path) -> None:
    """run_eval.py --prompt reaches the decoder of both backends the same way: without it whisper-base ends each of
    the six English clips with a full stop; with it, most of them lose it (6 of 6 and 5 of 6 on two corpora of
    these voices), the transformers model and the CTranslate2 export word for word alike, and results.json records
    the prompt."""
    def predictions(name: str, *extra: str) -> tuple[dict, list[str]]:
        out = tmp_path / f"prompt-{len(list(tmp_path.glob('prompt-*')))}"
        [result] = run_eval.main(["--model_name_or_path", name, "--language", "en", "--dataset_name",
                                  str(spoken_corpus / "fleurs"), "--dataset_config_name", "en_us", "--batch_size", "6",
                                  "--dtype", "float32", "--output_dir", str(out), *extra])
        (path,) = out.glob("predictions_*.jsonl")
        return result, [json.loads(line)["prediction"] for line in path.read_text().splitlines()]

    _, plain = predictions(model)
    result, prompted = predictions(model, "--prompt", NO_PUNCTUATION)
    exported_result, exported = predictions(str(export_dir), "--prompt", NO_PUNCTUATION)
    assert all(text.endswith(".") for text in plain), plain
    assert sum(not text.endswith(".") for text in prompted) >= 4, prompted
    assert exported == prompted and exported_result["backend"] == "ctranslate2"
    assert result["prompt"] == exported_result["prompt"] == NO_PUNCTUATION


def check_live_captions_of_the_export(model: str, export_dir, rows: list[dict]) -> None:
    """The app and the stream command on the float32 export: a live-caption window of the six clips one after the
    other gives the trained model's words at the trained model's times (the alignment once covered only the first
    half of the window when it was given encoder positions instead of log-mel frames: every later word got one
    time, and live captions repeated sentences)."""
    import numpy as np

    from whisper_finetuning.inference.agreement import word_key
    from whisper_finetuning.backends.load import load_backend
    from whisper_finetuning.inference.streaming import ModelWindows

    audio = np.concatenate([decode_row_audio(row["audio"]) for row in rows]).astype(np.float32)
    assert 15 < len(audio) / 16000 < 30
    windows = {name: ModelWindows(load_backend(name, dtype="float32"), "en")(audio, prompt="")
               for name in (model, str(export_dir))}
    trained, exported = windows[model].words, windows[str(export_dir)].words
    assert [word_key(w.text) for w in exported] == [word_key(w.text) for w in trained]
    for ours, theirs in zip(exported, trained):
        assert abs(ours.start - theirs.start) <= 0.06 and abs(ours.end - theirs.end) <= 0.5, (ours, theirs)
    assert exported[-1].end > len(audio) / 16000 - 3  # the last word is timed near the end, not in the middle

    # A live prompt (the app's live tabs, live_captions --prompt) reaches both backends' windows: the full stops that
    # whisper-base writes after the six sentences mostly go.
    for name in (model, str(export_dir)):
        prompted = ModelWindows(load_backend(name, dtype="float32"), "en", prompt=NO_PUNCTUATION)(audio, prompt="")
        assert windows[name].text.count(".") >= 4 and prompted.text.count(".") <= 2, (name, prompted.text)

    # A shortened encoder input (StreamSettings.encoder_seconds, whisper.cpp's audio_ctx): the first two clips
    # (under 10 s, the buffer of a live caption) encoded as 10 s instead of the padded 30 s are still understood,
    # every word timed inside the audio. (Not the same words: on these clips one phrase came out differently, as
    # the replay benchmark's 1.5 WER points predict.)
    export = load_backend(str(export_dir))
    two_clips = np.concatenate([decode_row_audio(row["audio"]) for row in rows[:2]]).astype(np.float32)
    assert len(two_clips) / 16000 < 10
    short = ModelWindows(export, "en", encoder_seconds=10)(two_clips, prompt="")
    reference = " ".join(row["text"] for row in rows[:2])
    assert error_rate([reference], [short.text], normalize=get_normalizer("en")).percent < UNDERSTOOD, short.text
    assert all(0 <= w.start <= w.end <= len(two_clips) / 16000 + 0.02 for w in short.words), short.words


@pytest.mark.parametrize("model, quantization", [("openai/whisper-tiny.en", "float16"),
                                                 ("openai/whisper-base", "q8_0")])
def test_ggml_export_transcribes_like_the_trained_model(model, quantization, spoken_corpus, tmp_path):
    out = tmp_path / "ggml"
    report = export_and_check(model, "ggml", quantization, out, spoken_corpus)
    assert (out / "ggml-model.bin").is_file() and report["format"] == "ggml"
    assert report["identical_normalized"] >= 0.75, report["differences"]
