"""The forgetting guard's long-form check (training/long_form_guard.py, evaluation/long_form.py): its metrics at each evaluation are the
long-form evaluation of the model as saved, the base model's are kept, the card shows both, and it warns when
timestamps or the quiet on silence are lost."""

import json

import pytest
from training_runs import arguments

import run_speech_recognition_seq2seq_streaming as train_script
from normalizers import get_normalizer
from whisper_finetuning.evaluation.long_form import long_form_check
from whisper_finetuning.training.long_form_guard import CUE_START_DRIFT_SECONDS, QUIET_SECONDS, long_form_warnings

METRICS = ["eval_long_form_wer", "eval_long_form_cue_start_error_median_s", "eval_long_form_cue_start_error_p90_s",
           "eval_long_form_utterances_missed", "eval_long_form_cues_outside_audio",
           "eval_long_form_words_on_silence", "eval_long_form_words_on_noise"]


def test_the_check_scores_the_trained_model_as_run_eval_does(tiny_model_dir, corpus, tmp_path):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from whisper_finetuning.backends.transformers_backend import TransformersBackend
    from whisper_finetuning.data.mixing import parse_dataset_specs
    from whisper_finetuning.evaluation.long_form import evaluate_long_form

    out = tmp_path / "run"
    metrics = train_script.main(arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "2",
                                          "--save_steps", "100", "--long_form_eval_clips", "5"))
    found = {key: metrics[key] for key in METRICS}
    assert isinstance(found["eval_long_form_wer"], float) and found["eval_long_form_words_on_noise"] is not None

    # The same measurement by hand: the saved model, the evaluation set's first 5 clips, run_eval's long-form path.
    specs = parse_dataset_specs(str(corpus / "fleurs"), "sv_se", "test", None)
    check = long_form_check(specs, 5, "sv", get_normalizer("sv"))
    assert len(check.clips) == 5 and check.description == "5 evaluation clips joined into 1 recording"
    model = WhisperForConditionalGeneration.from_pretrained(out).eval()
    backend = TransformersBackend(model, WhisperProcessor.from_pretrained(out))
    by_hand = evaluate_long_form(backend, check.clips, backend.generate_kwargs("sv"), get_normalizer("sv"),
                                 quiet_seconds=QUIET_SECONDS)
    assert found == {f"eval_long_form_{key.removeprefix('long_form_')}": by_hand[key] for key in
                     ("long_form_wer", "cue_start_error_median_s", "cue_start_error_p90_s", "utterances_missed",
                      "cues_outside_audio", "words_on_silence", "words_on_noise")}

    # The base model's scores are kept for the comparison, and the card shows both.
    baseline = json.loads((out / "baseline_results.json").read_text())
    assert all(key in baseline for key in METRICS)
    card = (out / "README.md").read_text()
    assert "| target, long-form: 5 evaluation clips joined into 1 recording | cue-start error, 90th percentile s |" \
        in card
    assert f"words on {QUIET_SECONDS:g} s of noise" in card


def test_warnings_for_drifting_cue_starts_and_words_on_silence():
    base = {"eval_long_form_cue_start_error_p90_s": 0.4, "eval_long_form_words_on_silence": 0,
            "eval_long_form_words_on_noise": 2}
    kept = {"eval_long_form_cue_start_error_p90_s": 0.4 + CUE_START_DRIFT_SECONDS - 0.01,
            "eval_long_form_words_on_silence": 0, "eval_long_form_words_on_noise": 1}
    assert long_form_warnings(kept, base) == []
    lost = {"eval_long_form_cue_start_error_p90_s": 3.2, "eval_long_form_words_on_silence": 6,
            "eval_long_form_words_on_noise": 2}
    warnings = long_form_warnings(lost, base)
    assert len(warnings) == 2
    assert "0.40 to 3.20 s" in warnings[0] and "--timestamp_probability" in warnings[0]
    assert "6 words on 30 s of silence" in warnings[1] and "--no_speech_probability" in warnings[1]
    # No cue matched (p90 None): nothing to compare, no warning made up.
    assert long_form_warnings({"eval_long_form_cue_start_error_p90_s": None}, base) == []


def test_too_few_clips_is_an_error(corpus):
    from whisper_finetuning.data.mixing import parse_dataset_specs

    specs = parse_dataset_specs(str(corpus / "fleurs"), "sv_se", "test", None)
    assert long_form_check(specs, 0, "sv", str.strip) is None
    with pytest.raises(ValueError, match="at least 2"):
        long_form_check(specs, 1, "sv", str.strip)
