"""The synthetic corpus: the demo's sentence lists."""

import re

from whisper_finetuning.synthetic.corpus import sentence_splits


def test_demo_test_sentences_are_new_sentences_with_new_words():
    splits = sentence_splits("sv", seed=0, sentence_set="demo")
    train_words = {w for s in splits["train"] for w in re.findall(r"\w+", s.lower())}
    assert len(splits["train"]) == 100 and len(splits["test"]) == 20
    assert not set(splits["test"]) & set(splits["train"]) and not set(splits["dev"]) & set(splits["train"])
    for sentence in splits["test"]:
        unseen = set(re.findall(r"\w+", sentence.lower())) - train_words
        assert len(unseen) >= 3, sentence  # not memorisation: every test sentence has words never trained on
