"""The one-command demo: a --quick run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.heavy  # about 12 min alone on 2 cores: `bash configs/test.sh -m heavy`
def test_quick_demo_produces_the_report_and_lowers_wer(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.demo", "--quick", "--output_dir", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=2400)  # a hang guard, not a speed test
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
