"""The paired bootstrap of a WER difference (evaluation/paired.py): the difference is the one run_eval's WERs give,
the interval excludes zero only when one model is better clip after clip, and it is the plain index bootstrap."""

import json

import numpy as np
import pytest

from whisper_finetuning.evaluation.paired import (PairedError, paired_difference, paired_differences, paired_table,
                                                  word_errors)
from whisper_finetuning.metrics import error_rate

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "we go home now", "it is raining again today",
             "she reads a long book", "they play chess at night", "he drinks black coffee", "birds sing in spring"]


def rows(predictions: list[str], references: list[str] = SENTENCES, dataset: str = "test.jsonl:test") -> list[dict]:
    return [{"id": f"clip{i}", "dataset": dataset, "reference_normalized": r, "prediction_normalized": p}
            for i, (r, p) in enumerate(zip(references, predictions))]


def one_word_wrong(sentence: str) -> str:
    return " ".join(["zzz"] + sentence.split()[1:])


def test_a_model_better_on_every_clip_is_clearly_better():
    worse = rows([one_word_wrong(s) for s in SENTENCES])
    better = rows(SENTENCES)
    difference = paired_difference(worse, better)
    words = sum(len(s.split()) for s in SENTENCES)
    assert difference.clips == 8 and (difference.better, difference.worse) == (8, 0)
    assert difference.reference_wer == pytest.approx(100 * 8 / words) and difference.other_wer == 0
    assert difference.difference == pytest.approx(-100 * 8 / words)
    assert difference.low <= difference.difference <= difference.high < 0
    assert difference.verdict == "lower"
    assert paired_difference(better, worse).verdict == "higher"


def test_the_wers_are_run_evals_corpus_wers():
    """Errors summed over the clips over the reference words, as metrics.error_rate (run_eval's number) counts."""
    predictions = ["the cat sat on mat", "a dog ran in the the park", "", "it is raining again today",
                   "she reads book", "they play chess at night", "he drinks black coffee", "bird sings in spring"]
    other = ["the cat sat on the mat", "a dog in park", "we go home", "it raining today", "she reads a long book",
             "they play chess at night", "he drink black coffee", "birds sing in spring"]
    difference = paired_difference(rows(predictions), rows(other))
    assert difference.reference_wer == pytest.approx(error_rate(SENTENCES, predictions).percent)
    assert difference.other_wer == pytest.approx(error_rate(SENTENCES, other).percent)


def test_identical_predictions_differ_by_nothing():
    same = rows([one_word_wrong(s) if i % 2 else s for i, s in enumerate(SENTENCES)])
    difference = paired_difference(same, same)
    assert (difference.difference, difference.low, difference.high) == (0, 0, 0)
    assert (difference.better, difference.worse, difference.verdict) == (0, 0, "no clear difference")


def test_a_model_better_on_some_clips_and_worse_on_others_is_not_clearly_better():
    reference = rows([one_word_wrong(s) if i < 3 else s for i, s in enumerate(SENTENCES)])
    other = rows([one_word_wrong(s) if 2 <= i < 4 else s for i, s in enumerate(SENTENCES)])  # one error fewer
    difference = paired_difference(reference, other)
    assert difference.difference < 0 and (difference.better, difference.worse) == (2, 1)
    assert difference.low < 0 < difference.high and difference.verdict == "no clear difference"


def test_the_interval_is_the_index_bootstrap_and_seeded():
    """The per-clip counts the resamples are drawn as give the interval that drawing clip indices gives."""
    rng = np.random.default_rng(1)
    references = [" ".join(f"w{j}" for j in range(rng.integers(3, 12))) for _ in range(300)]
    predictions_a = [" ".join(w if rng.random() > 0.3 else "x" for w in r.split()) for r in references]
    predictions_b = [" ".join(w if rng.random() > 0.25 else "x" for w in r.split()) for r in references]
    a, b = rows(predictions_a, references), rows(predictions_b, references)
    difference = paired_difference(a, b, resamples=20_000, seed=5)
    assert paired_difference(a, b, resamples=20_000, seed=5) == difference

    errors_a, errors_b = word_errors(a), word_errors(b)
    keys = sorted(errors_a)
    e_a, e_b = (np.array([errors[k][0] for k in keys]) for errors in (errors_a, errors_b))
    words = np.array([errors_a[k][1] for k in keys])
    picks = np.random.default_rng(9).integers(0, len(keys), size=(20_000, len(keys)))
    naive = 100 * (e_b[picks].sum(1) - e_a[picks].sum(1)) / words[picks].sum(1)
    low, high = np.percentile(naive, [2.5, 97.5])
    assert difference.low == pytest.approx(low, abs=0.4) and difference.high == pytest.approx(high, abs=0.4)
    assert difference.high - difference.low > 1  # 300 clips still leave an interval of some width


def test_only_clips_both_models_scored_are_compared():
    reference = rows([one_word_wrong(s) for s in SENTENCES])
    other = rows(SENTENCES)[2:]  # the other run skipped two clips
    difference = paired_difference(reference, other)
    assert difference.clips == 6
    assert difference.reference_wer == pytest.approx(100 * 6 / sum(len(s.split()) for s in SENTENCES[2:]))
    with pytest.raises(PairedError, match="share no scored clip"):
        paired_difference(reference, rows(SENTENCES, dataset="another.jsonl:test"))
    with pytest.raises(PairedError, match="different references for clip 'clip0'"):
        paired_difference(reference, rows(SENTENCES, [s + " extra" for s in SENTENCES]))
    # Another sentence of the same length is another reference too.
    swapped = [" ".join(reversed(s.split())) for s in SENTENCES]
    with pytest.raises(PairedError, match="different references"):
        paired_difference(reference, rows(SENTENCES, swapped))


def test_empty_references_are_left_out_as_run_eval_leaves_them_out():
    references = SENTENCES[:3] + [""]
    difference = paired_difference(rows(SENTENCES[:3] + ["something"], references), rows(SENTENCES[:4], references))
    assert difference.clips == 3 and difference.difference == 0


def test_the_table_reads_the_predictions_files(tmp_path):
    labels = ["clean", "10 dB"]
    models = {}
    for name, wrong in (("plain", {0, 1, 2, 3, 4, 5, 6, 7}), ("noise", set())):
        models[name] = {}
        for label in labels:
            path = tmp_path / f"{name}_{label}.jsonl"
            path.write_text("\n".join(json.dumps(r) for r in rows(
                [one_word_wrong(s) if i in wrong and label == "10 dB" else s for i, s in enumerate(SENTENCES)])))
            models[name][label] = {"wer": 0.0, "predictions": str(path)}
    differences = paired_differences(models, labels, "plain")
    assert differences["reference"] == "plain" and list(differences["models"]) == ["noise"]
    assert differences["models"]["noise"]["clean"]["verdict"] == "no clear difference"
    assert differences["models"]["noise"]["10 dB"]["verdict"] == "lower"
    json.dumps(differences)  # goes into results.json as it is
    table = "\n".join(paired_table(differences, labels))
    assert "| model | clean | 10 dB |" in table
    assert "| noise | +0.0 (+0.0 to +0.0), 0 clips better, 0 worse | -20.5 (" in table  # 8 of 39 words
    assert "8 clips better, 0 worse |" in table
