"""The whole loop in one command: evaluate whisper-base on Swedish, fine-tune it, evaluate again, report.

    python -m whisper_finetuning.demo [--output_dir demo_output] [--quick]

1. a synthetic Swedish corpus in the Common Voice and FLEURS layouts (data/sentences/demo_sv_*.txt: the test
   sentences are disjoint from the training sentences and every one has words that never occur in training);
2. run_eval.py on both test splits with the pretrained model;
3. run_speech_recognition_seq2seq_streaming.py with configs/demo_sv.yaml on the "+"-interleaved train splits;
4. run_eval.py on both test splits with the fine-tuned model;
5. a report: WER before/after, loss and WER curves, throughput, the model card, per-sample predictions.
Everything runs through the entry points a participant uses; re-running resumes or reuses what is done.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import WhisperConfig

from .data.sources import load_source
from .synthetic.corpus import generate
from .training.flops import training_flops_per_sample

REPO = Path(__file__).resolve().parents[1]
BASE_MODEL = "openai/whisper-base"


def run(command: list[str]) -> None:
    print(f"\n$ {' '.join(command)}", flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def evaluate(model: str, corpus: Path, output_dir: Path, max_samples: int | None) -> list[dict]:
    command = [sys.executable, "run_eval.py", "--model_name_or_path", model, "--language", "sv",
               "--common_voice_dir", str(corpus / "common_voice"), "--fleurs_dir", str(corpus / "fleurs"),
               "--output_dir", str(output_dir)]
    if max_samples:
        command += ["--max_eval_samples", str(max_samples)]
    run(command)
    return json.loads((output_dir / "results.json").read_text())["results"]


def matmul_peak_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """This machine's matrix-multiply throughput in `dtype`, the yardstick for training efficiency (a bfloat16 run
    is compared with the bfloat16 peak, a float32 run with the float32 one)."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    points = {}
    for events in sorted(log_dir.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        if tag in accumulator.Tags().get("scalars", []):
            points.update({e.step: e.value for e in accumulator.Scalars(tag)})
    return sorted(points.items())


def plot_curves(model_dir: Path, report: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for tag, name, label in [("train/loss", "training_loss.png", "training loss"),
                             ("eval/wer", "eval_wer.png", "WER on the dev split (%)")]:
        points = scalars(model_dir / "runs", tag)
        if not points:
            continue
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot([s for s, _ in points], [v for _, v in points], marker="o")
        axis.set_xlabel("optimizer step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(report / name, dpi=120)
        plt.close(figure)
        written.append(name)
    return written


def mean_label_length(model_dir: Path, corpus: Path) -> float:
    """Average label length (prefix tokens, text, end of text) of the training sentences."""
    from transformers import WhisperTokenizer

    tokenizer = WhisperTokenizer.from_pretrained(model_dir)
    sentences = [row["text"] for row in load_source(str(corpus / "common_voice"), "sv-SE", "train")]
    return sum(len(tokenizer(s).input_ids) for s in sentences) / len(sentences)


def training_dtype(model_dir: Path) -> torch.dtype:
    """The precision the run trained in (after the training script's checks), from its saved arguments."""
    arguments = torch.load(model_dir / "training_args.bin", weights_only=False)
    return torch.bfloat16 if arguments.bf16 else torch.float16 if arguments.fp16 else torch.float32


def write_report(report: Path, before: list[dict], after: list[dict], model_dir: Path, corpus: Path,
                 base_eval: Path, tuned_eval: Path, seconds: dict) -> str:
    report.mkdir(parents=True, exist_ok=True)
    rows = ["| test set | samples | WER before | WER after | CER before | CER after |", "|---|---|---|---|---|---|"]
    for b, a in zip(before, after):
        rows.append(f"| {b['dataset_name']} {b['config']} {b['split']} | {a['samples']} | {b['wer']:.1f} | "
                    f"{a['wer']:.1f} | {b['cer']:.1f} | {a['cer']:.1f} |")
    train = json.loads((model_dir / "train_results.json").read_text())
    per_sample = training_flops_per_sample(WhisperConfig.from_pretrained(model_dir), mean_label_length(model_dir, corpus))
    achieved = per_sample * train["train_samples_per_second"]
    dtype = training_dtype(model_dir)
    peak = matmul_peak_flops(dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    lines = [
        "# Demo: whisper-base fine-tuned on synthetic Swedish", "", *rows, "",
        f"Training ({dtype_name}): {train['train_samples_per_second']:.2f} samples/s x {per_sample / 1e9:.0f} GFLOP "
        f"per sample = {achieved / 1e9:.0f} GFLOP/s, {100 * achieved / peak:.0f}% of this machine's {dtype_name} "
        f"matrix-multiply peak measured in the same run ({peak / 1e9:.0f} GFLOP/s).", "",
        "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()), "",
    ]
    for name in plot_curves(model_dir, report):
        lines += [f"![{name}]({name})", ""]
    (report / "results.md").write_text("\n".join(lines))
    shutil.copy(model_dir / "README.md", report / "model_card.md")
    for label, folder in (("before", base_eval), ("after", tuned_eval)):
        for predictions in folder.glob("predictions_*.jsonl"):
            shutil.copy(predictions, report / f"{label}_{predictions.name}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("demo_output"))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 6 steps, 8 clips per test set")
    args = parser.parse_args()
    out = args.output_dir.resolve()
    corpus, model_dir = out / "data", out / "whisper-base-sv"
    seconds, start = {}, time.perf_counter()

    if not (corpus / "fleurs" / "sv_se" / "test.tsv").is_file():
        generate(corpus, ["sv"], ["common_voice", "fleurs"], num_speakers=6, sentence_set="demo")
    seconds["corpus"] = time.perf_counter() - start
    max_samples = 8 if args.quick else None
    before = evaluate(BASE_MODEL, corpus, out / "eval_base", max_samples)
    seconds["evaluation before"] = time.perf_counter() - start - sum(seconds.values())

    train = [sys.executable, "run_speech_recognition_seq2seq_streaming.py", "configs/demo_sv.yaml",
             "--dataset_name", f"{corpus}/common_voice+{corpus}/fleurs", "--eval_dataset_name", f"{corpus}/fleurs",
             "--output_dir", str(model_dir)]
    if args.quick:
        train += ["--max_steps", "6", "--eval_steps", "3", "--save_steps", "3", "--max_eval_samples", "8"]
    run(train)
    seconds["fine-tuning"] = time.perf_counter() - start - sum(seconds.values())
    after = evaluate(str(model_dir), corpus, out / "eval_finetuned", max_samples)
    seconds["evaluation after"] = time.perf_counter() - start - sum(seconds.values())

    table = write_report(out / "report", before, after, model_dir, corpus, out / "eval_base", out / "eval_finetuned",
                         seconds)
    print(f"\n{table}\n\nReport: {out / 'report' / 'results.md'} ({(time.perf_counter() - start) / 60:.1f} min)")


if __name__ == "__main__":
    main()
