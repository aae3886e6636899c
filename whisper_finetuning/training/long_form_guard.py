"""The forgetting guard's long-form check: whether the fine-tune keeps Whisper's timestamps and its quiet on silence,
which clip-by-clip WER does not see (a fine-tune can lose them within 100-200 steps: docs/training.md).

At every evaluation, and once with the base model before training, the first clips of the evaluation set are joined
into recordings (with pauses, one of 8 s) and decoded long-form as the app's File tab decodes them, with a stretch
of silence and one of noise (`evaluation.long_form.LongFormCheck`, made by the training script: training comes
before the backends and the evaluation in the package's stages). Its metrics, compared here with the base model's:
eval_long_form_wer, eval_long_form_cue_start_error_median_s and _p90_s, eval_long_form_utterances_missed,
eval_long_form_cues_outside_audio, eval_long_form_words_on_silence and _on_noise.
"""

PREFIX = "eval_long_form_"
CLIPS_PER_RECORDING = 12  # as run_eval.py --long_form
QUIET_SECONDS = 30.0  # one window each of silence and of noise: words made up there show, at little cost
# The guard warns when the cue-start p90 rises more than this above the base model's: subtitles then start (or end)
# visibly off the speech.
CUE_START_DRIFT_SECONDS = 0.5
# Rows of the model card's forgetting table: (measure, metric).
CARD_ROWS = [("long-form WER %", "eval_long_form_wer"),
             ("cue-start error, median s", "eval_long_form_cue_start_error_median_s"),
             ("cue-start error, 90th percentile s", "eval_long_form_cue_start_error_p90_s"),
             ("utterances without a cue", "eval_long_form_utterances_missed"),
             (f"words on {QUIET_SECONDS:g} s of silence", "eval_long_form_words_on_silence"),
             (f"words on {QUIET_SECONDS:g} s of noise", "eval_long_form_words_on_noise")]


def long_form_rows(description: str, baseline: dict, final: dict) -> list[dict]:
    """The card's rows of the long-form check (`description`: which clips, LongFormCheck.description)."""
    return [{"set": f"target, long-form: {description}", "metric": metric, "before": baseline.get(key),
             "after": final.get(key)} for metric, key in CARD_ROWS]


def long_form_warnings(metrics: dict, baseline: dict) -> list[str]:
    """Warnings for cue starts that drifted from the speech, and for words written on silence or noise, beyond the
    base model's."""
    warnings = []
    p90 = PREFIX + "cue_start_error_p90_s"
    if metrics.get(p90) is not None and baseline.get(p90) is not None:
        if metrics[p90] - baseline[p90] > CUE_START_DRIFT_SECONDS:
            warnings.append(f"{p90} rose from {baseline[p90]:.2f} to {metrics[p90]:.2f} s (more than "
                            f"{CUE_START_DRIFT_SECONDS} s): the model is losing Whisper's timestamps; consider "
                            "--timestamp_probability 0.2 --long_form_probability 0.2 (docs/training.md)")
    for quiet in ("silence", "noise"):
        key = f"{PREFIX}words_on_{quiet}"
        if metrics.get(key) is not None and baseline.get(key) is not None and metrics[key] > baseline[key]:
            warnings.append(f"{key}: the model wrote {metrics[key]} words on {QUIET_SECONDS:g} s of {quiet} (the base "
                            f"model {baseline[key]}); consider --no_speech_probability 0.05 (docs/training.md)")
    return warnings
