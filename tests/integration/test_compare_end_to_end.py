"""python -m whisper_finetuning.compare end to end with the tiny model and the tone corpus: two variants trained,
every model evaluated on the test sets and the noisy clips, the report's numbers are run_eval.py's; the same command
again reuses every evaluation, and a failing step stops it with no report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def compare(*arguments, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whisper_finetuning.compare", *map(str, arguments)], cwd=cwd,
                          capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def results_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["results"]


def test_compare_trains_evaluates_and_reports_what_run_eval_measured(tiny_model_dir, corpus, tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text(yaml.safe_dump({
        "model_name_or_path": str(tiny_model_dir), "language": "sv", "dataset_name": str(corpus / "common_voice"),
        "dataset_config_name": "sv-SE", "max_steps": 2, "save_steps": 2, "per_device_train_batch_size": 2,
        "logging_steps": 1, "learning_rate": 1e-3, "do_train": True, "report_to": "none", "use_cpu": True,
        "seed": 3, "shuffle_buffer_size": 8}))
    variants = tmp_path / "variants.yaml"
    variants.write_text("plain: {}\nfast: {learning_rate: 1.0e-2}\nbroken: {learning_rate: not_a_number}\n")
    eval_config = tmp_path / "eval.yaml"
    eval_config.write_text("generation_max_length: 8\nbatch_size: 8\n")  # the random model would babble 448 tokens
    out = tmp_path / "out"
    command = [config, "--variants_file", variants, "--variants", "plain", "fast", "--output_dir", out,
               "--fleurs_dir", corpus / "fleurs", "--snr", "clean", "5", "--max_eval_samples", "3",
               "--eval_config", eval_config]
    run = compare(*command)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    report = out / "report"
    for name in ("results.md", "results.json", "comparison_wer.png", "robustness_wer_vs_snr.png"):
        assert (report / name).is_file(), name
    for name in ("plain", "fast"):
        assert (report / f"model_card_{name}.md").read_text() == (out / "models" / name / "README.md").read_text()
    summary = json.loads((report / "results.json").read_text())
    assert list(summary["models"]) == ["base", "plain", "fast"]
    assert summary["test_sets"] == ["Common Voice 17.0 sv-SE test", "FLEURS sv_se test"]
    assert summary["robustness"]["snr"] == ["clean", "5 dB"] and summary["robustness"]["clips"] == 3
    text = (report / "results.md").read_text()
    for name, model in summary["models"].items():
        evals = out / "evals" / name
        assert model["model"] == (str(tiny_model_dir) if name == "base" else str(out / "models" / name))
        measured = results_of(evals / "test_sets" / "results.json")
        assert [r["samples"] for r in measured] == [3, 3]
        assert model["test_sets"] == {f"{r['dataset_name']} {r['config']} {r['split']}": {
            "wer": r["wer"], "cer": r["cer"], "metric": r["metric"], "samples": r["samples"]} for r in measured}
        noisy = results_of(evals / "robustness" / "results.json")
        assert [Path(r["source"]).name for r in noisy] == ["clean.jsonl", "snr_5db.jsonl"]
        assert [model["robustness"][label]["wer"] for label in ("clean", "5 dB")] == [r["wer"] for r in noisy]
        assert all(r["samples"] == 3 for r in noisy)
        row = f"| {name} | " + " | ".join(f"{r['wer']:.1f} | {r['cer']:.1f}" for r in measured) + " |"
        assert row in text
    # fast against plain, clip by clip, from the predictions files of their robustness evaluations
    paired = summary["robustness"]["paired"]
    assert paired["reference"] == "plain" and list(paired["models"]) == ["fast"]
    for label in ("clean", "5 dB"):
        difference = paired["models"]["fast"][label]
        assert difference["clips"] == 3
        assert difference["reference_wer"] == pytest.approx(summary["models"]["plain"]["robustness"][label]["wer"])
        assert difference["other_wer"] == pytest.approx(summary["models"]["fast"]["robustness"][label]["wer"])
    assert "WER difference from **plain**" in text
    # the two fine-tunes are different models (the learning rates differ): their evaluations are their own
    assert (out / "models" / "plain" / "model.safetensors").read_bytes() != (
        out / "models" / "fast" / "model.safetensors").read_bytes()

    # The same command again, with a variant whose training fails: the evaluations done are reused (not run
    # again), the failing step is named, and no report is left from the run that failed
    stamps = {path: path.stat().st_mtime_ns for path in (out / "evals").rglob("results.json")}
    command[4:6] = ["plain", "broken"]
    again = compare(*command)
    assert again.returncode != 0
    assert "error: step 'training broken' failed" in again.stderr, again.stderr[-3000:]
    assert again.stdout.count("] reusing ") == 4, again.stdout[-3000:]  # base's two and plain's (trained again)
    assert {path: path.stat().st_mtime_ns for path in (out / "evals").rglob("results.json")} == stamps
    assert not report.exists()
