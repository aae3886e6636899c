"""The one-command demo: its sentence lists, and a --quick run end to end."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from whisper_finetuning.synthetic_corpus import sentence_splits

REPO = Path(__file__).resolve().parents[1]


def test_demo_test_sentences_are_new_sentences_with_new_words():
    splits = sentence_splits("sv", seed=0, sentence_set="demo")
    train_words = {w for s in splits["train"] for w in re.findall(r"\w+", s.lower())}
    assert len(splits["train"]) == 100 and len(splits["test"]) == 20
    assert not set(splits["test"]) & set(splits["train"]) and not set(splits["dev"]) & set(splits["train"])
    for sentence in splits["test"]:
        unseen = set(re.findall(r"\w+", sentence.lower())) - train_words
        assert len(unseen) >= 3, sentence  # not memorisation: every test sentence has words never trained on


@pytest.mark.integration
def test_quick_demo_produces_the_report_and_lowers_wer(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.demo", "--quick", "--output_dir", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out / "report"
    for name in ("results.md", "model_card.md", "training_loss.png", "eval_wer.png"):
        assert (report / name).is_file(), name
    assert len(list(report.glob("before_predictions_*.jsonl"))) == len(list(report.glob("after_predictions_*.jsonl"))) == 2
    before = json.loads((out / "eval_base" / "results.json").read_text())["results"]
    after = json.loads((out / "eval_finetuned" / "results.json").read_text())["results"]
    assert [r["dataset_type"] for r in after] == ["mozilla-foundation/common_voice_17_0", "google/fleurs"]
    for b, a in zip(before, after):
        assert a["wer"] < b["wer"], (b["wer"], a["wer"])
    assert "| test set | samples | WER before | WER after |" in run.stdout
    assert "GFLOP per sample" in (report / "results.md").read_text()
