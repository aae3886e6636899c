"""The demo's --corpus: each output folder holds one corpus, and a run never mixes the other one's clips in."""

import json

import pytest

from whisper_finetuning import demo


@pytest.fixture
def generated(monkeypatch):
    """Record the demo's corpus generation instead of synthesizing (the corpus tests synthesize)."""
    calls = []

    def fake_generate(output_dir, languages, layouts, num_speakers=6, **settings):
        calls.append((languages[0], settings))
        config = {"sv": "sv_se", "en": "en_us"}[languages[0]]
        (output_dir / "fleurs" / config).mkdir(parents=True, exist_ok=True)
        (output_dir / "fleurs" / config / "test.tsv").write_text("")

    monkeypatch.setattr(demo, "generate", fake_generate)
    return calls


def test_large_corpus_joins_the_sentence_sets_and_holds_test_voices_out(tmp_path, generated):
    demo.prepare_corpus(tmp_path / "data", "large")
    assert generated == [("sv", {"sentence_set": "demo+more", "held_out_test_voices": 4}), ("en", {})]
    assert json.loads((tmp_path / "data" / "corpus.json").read_text())["corpus"] == "large"
    assert "4 voices not in training" in demo.describe_corpus(tmp_path / "data")
    demo.prepare_corpus(tmp_path / "data", "large")  # a rerun reuses the clips
    assert len(generated) == 2


def test_a_folder_holding_the_other_corpus_is_refused(tmp_path, generated):
    demo.prepare_corpus(tmp_path / "data", "small")
    with pytest.raises(SystemExit, match="holds the demo's 'small' corpus, not 'large'"):
        demo.prepare_corpus(tmp_path / "data", "large")


def test_a_folder_from_before_the_marker_counts_as_the_small_corpus(tmp_path, generated):
    (tmp_path / "data" / "fleurs" / "sv_se").mkdir(parents=True)
    (tmp_path / "data" / "fleurs" / "sv_se" / "test.tsv").write_text("")
    with pytest.raises(SystemExit, match="'small' corpus, not 'large'"):
        demo.prepare_corpus(tmp_path / "data", "large")
    demo.prepare_corpus(tmp_path / "data", "small")
    assert generated == [("en", {})]  # only the missing English clips
    assert "spoken by the training voices" in demo.describe_corpus(tmp_path / "data")


def test_the_demo_report_has_a_long_form_row_per_model_and_test_set():
    from whisper_finetuning.demo import long_form_table

    def scores(wer: float, long_form_wer: float) -> dict:
        long_form = {"long_form_wer": long_form_wer, "cue_start_error_median_s": 0.12, "cue_start_error_p90_s": 0.9,
                     "utterances_missed": 1, "words_on_silence": 0, "words_on_noise": 3}
        return {"swedish": [{"dataset_name": name, "config": config, "wer": wer, "long_form": long_form}
                            for name, config in (("Common Voice", "sv-SE"), ("FLEURS", "sv_se"))]}

    lines = long_form_table(scores(60.0, 70.25), {"plain_200": scores(20.0, 31.5)})
    assert len(lines) == 2 + 4
    assert lines[2] == "| whisper-base (before) | Common Voice sv-SE | 60.0 | 70.2 | 0.12 / 0.9 | 1 | 0 / 3 |"
    assert lines[5] == "| plain_200 | FLEURS sv_se | 20.0 | 31.5 | 0.12 / 0.9 | 1 | 0 / 3 |"
