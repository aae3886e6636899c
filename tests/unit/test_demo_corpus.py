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
