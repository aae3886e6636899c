"""The synthetic corpus: the demo's sentence lists, joined sentence sets and held-out test voices."""

import csv
import re

import pytest

from tiny_models import tone_voice
from whisper_finetuning.synthetic import corpus as corpus_module
from whisper_finetuning.synthetic.corpus import generate, sentence_splits, speakers_for


def test_demo_test_sentences_are_new_sentences_with_new_words():
    splits = sentence_splits("sv", seed=0, sentence_set="demo")
    train_words = {w for s in splits["train"] for w in re.findall(r"\w+", s.lower())}
    assert len(splits["train"]) == 100 and len(splits["test"]) == 20
    assert not set(splits["test"]) & set(splits["train"]) and not set(splits["dev"]) & set(splits["train"])
    for sentence in splits["test"]:
        unseen = set(re.findall(r"\w+", sentence.lower())) - train_words
        assert len(unseen) >= 3, sentence  # not memorisation: every test sentence has words never trained on


def tsv_column(path, column: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle, delimiter="\t")]


def test_held_out_test_voices_are_voices_no_other_split_uses(tmp_path):
    generate(tmp_path / "shared", ["sv"], ["common_voice"], num_speakers=6, sentence_set="demo",
             synthesize=tone_voice)
    generate(tmp_path / "held_out", ["sv"], ["common_voice", "fleurs"], num_speakers=6, sentence_set="demo",
             synthesize=tone_voice, held_out_test_voices=4)
    shared, held_out = tmp_path / "shared/common_voice/sv-SE", tmp_path / "held_out/common_voice/sv-SE"
    # The default corpus speaks its test sentences with the training voices ...
    assert set(tsv_column(shared / "test.tsv", "client_id")) <= set(tsv_column(shared / "train.tsv", "client_id"))
    # ... held out, the test split has 4 voices of its own; train and dev are unchanged, clip for clip.
    test_voices = set(tsv_column(held_out / "test.tsv", "client_id"))
    assert len(test_voices) == 4
    for split in ("train", "dev"):
        assert (held_out / f"{split}.tsv").read_text() == (shared / f"{split}.tsv").read_text()
        assert not test_voices & set(tsv_column(held_out / f"{split}.tsv", "client_id"))
    assert tsv_column(held_out / "test.tsv", "sentence") == sentence_splits("sv", 0, "demo")["test"]
    # The FLEURS copy of each test sentence is spoken by another held-out voice than the Common Voice copy (the
    # held-out voices alternate male and female, so the next voice is the other gender).
    fleurs_test = (tmp_path / "held_out/fleurs/sv_se/test.tsv").read_text().splitlines()
    fleurs_genders = [line.split("\t")[-1].lower() for line in fleurs_test]
    common_voice_genders = [g.split("_")[0] for g in tsv_column(held_out / "test.tsv", "gender")]
    assert len(fleurs_genders) == 20 and set(fleurs_genders) == {"male", "female"}
    assert all(f != c for f, c in zip(fleurs_genders, common_voice_genders))


def test_held_out_speakers_differ_in_variant_rate_and_pitch():
    training = speakers_for("sv", 6, seed=0)
    held_out = speakers_for("sv", 4, seed=0, held_out=True)
    assert not {s.voice for s in held_out} & {s.voice for s in training}
    assert [s.gender for s in held_out] == ["male", "female", "male", "female"]
    assert not {s.client_id for s in held_out} & {s.client_id for s in training}
    with pytest.raises(ValueError, match="at most"):
        speakers_for("sv", 9, seed=0, held_out=True)


def test_joined_sentence_sets_add_up_split_by_split():
    demo, more = sentence_splits("sv", 0, "demo"), sentence_splits("sv", 0, "more")
    joined = sentence_splits("sv", 0, "demo+more")
    for split in ("train", "dev", "test"):
        assert joined[split] == demo[split] + more[split]
    assert (len(joined["train"]), len(joined["test"])) == (400, 40)
    train = set(joined["train"])
    assert not train & set(joined["test"]) and not train & set(joined["dev"])


def test_a_sentence_in_two_splits_is_refused(monkeypatch):
    def overlapping(language, seed, name):
        return {"train": ["Hej på dig."], "dev": [], "test": ["Hej på dig."] if name == "b" else []}

    monkeypatch.setattr(corpus_module, "one_set_splits", overlapping)
    with pytest.raises(ValueError, match="'Hej på dig.' in both train and test"):
        sentence_splits("sv", 0, "a+b")
