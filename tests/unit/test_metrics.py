import math

import jiwer
import pytest

from normalizers import get_normalizer
from whisper_finetuning.metrics import error_rate


def test_wer_matches_jiwer_on_the_scored_pairs():
    references = ["the cat sat on the mat", "hello world", "a b c d"]
    predictions = ["the cat sat on a mat", "hello", "a b x d e"]
    result = error_rate(references, predictions, "wer")
    assert result.value == pytest.approx(jiwer.wer(references, predictions))
    assert (result.substitutions, result.deletions, result.insertions) == (2, 1, 1)
    assert result.num_scored == 3 and result.num_empty_references == 0


def test_empty_references_after_normalization_are_dropped_and_counted():
    normalize = get_normalizer("en")
    result = error_rate(["Hello world.", "[music]", "(laughs)"], ["hello world", "la la", ""], "wer", normalize)
    assert result.value == 0.0 and result.num_scored == 1 and result.num_empty_references == 2


def test_no_reference_left_gives_nan_not_a_crash():
    result = error_rate(["", "  "], ["a", ""], "wer")
    assert math.isnan(result.value) and result.num_empty_references == 2


def test_empty_predictions_count_as_deletions():
    result = error_rate(["one two three"], [""], "wer")
    assert result.value == 1.0 and result.deletions == 3


def test_cer_ignores_spaces_for_languages_without_word_spacing():
    normalization = get_normalizer("zh")
    result = error_rate(["你好，世界。"], ["你好 世界"], normalization.metric, normalization)
    assert normalization.metric == "cer" and result.value == 0.0
    result = error_rate(["你好世界"], ["你们好世界"], "cer")
    assert result.value == pytest.approx(1 / 4) and result.insertions == 1


def test_mismatched_lengths_and_unknown_metrics_are_errors():
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        error_rate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="'wer' or 'cer'"):
        error_rate(["a"], ["a"], "bleu")
