"""The whole loop in one command: evaluate whisper-base on Swedish, fine-tune it, evaluate again, report.

    python -m whisper_finetuning.demo [--output_dir demo_output] [--quick] [--variants replay_light plain ...]
        [--snr clean 10 5] [--corpus small|large]

1. a synthetic corpus in the Common Voice and FLEURS layouts: Swedish (synthetic/sentences/demo_sv_*.txt: the test
   sentences are disjoint from the training sentences and every one has words that never occur in training) and
   English (what whisper-base knew before: the forgetting guard's retention set, and replay data). --corpus large
   adds more_sv_*.txt (400 training sentences, 40 test sentences) and speaks the test split with voices that no
   training clip uses;
2. run_eval.py on the Swedish test splits and the English test set with the pretrained model;
3. run_speech_recognition_seq2seq_streaming.py with configs/demo_sv.yaml on the "+"-interleaved Swedish train
   splits, scoring English retention at every evaluation; once per variant of configs/demo/variants.yaml;
4. run_eval.py on the same test sets with each fine-tuned model;
5. with --snr, a robustness curve: whisper-base and each variant on the Swedish test clips with noise added at each
   signal-to-noise ratio (evaluation/robustness.py, as `python -m whisper_finetuning.compare` does), and each
   variant's WER difference from the first one with a paired-bootstrap interval (evaluation/paired.py);
6. a report: WER before/after (Swedish and English) per variant, loss and WER curves, throughput, the model card,
   per-sample predictions, the robustness table and curve.
Everything runs through the entry points a participant uses; re-running resumes training and reuses evaluations
done before for the same model weights and arguments.
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import WhisperConfig

from .compare import (CompareError, check_referenced_files, load_variants, robustness_flags, robustness_scores,
                      run_evaluation, run_step, select_variants, variant_flags)
from .data.mixing import DatasetSpec, load_mixture
from .data.sources import load_source
from .evaluation.paired import paired_differences, paired_table
from .evaluation.robustness import (NoisySets, RobustnessError, parse_snrs, plot_robustness, robustness_table,
                                    write_noisy_sets)
from .entry_points import REPO, TRAIN_SCRIPT
from .figures import pyplot, save_png
from .files import write_json_atomic
from .synthetic.corpus import generate
from .training.flops import training_flops_per_sample

BASE_MODEL = "openai/whisper-base"
VARIANTS = REPO / "configs" / "demo" / "variants.yaml"
# English test clips: the retention set (what whisper-base knew before fine-tuning on Swedish).
ENGLISH_TEST = {"dataset_name": "{corpus}/fleurs+{corpus}/common_voice", "dataset_config_name": "en_us+en",
                "split": "test"}


# The demo's Swedish corpora: sentence sets (synthetic/sentences/) and how many voices only the test split uses.
CORPORA = {"small": {"sentence_set": "demo", "held_out_test_voices": 0},
           "large": {"sentence_set": "demo+more", "held_out_test_voices": 4}}
CORPUS_MARKER = "corpus.json"  # which of them a demo folder holds
# The Swedish test clips (both layouts) that the robustness curve adds noise to.
SWEDISH_TEST = [("common_voice", "sv-SE"), ("fleurs", "sv_se")]


def prepare_corpus(corpus: Path, name: str) -> None:
    """Synthesize the named corpus into `corpus` once; refuse a folder that holds the other one (its models and
    evaluations would be mixed into this run's report)."""
    if (corpus / "fleurs" / "sv_se" / "test.tsv").is_file():
        found = recorded_corpus(corpus)["corpus"]
        if found != name:
            raise SystemExit(f"{corpus} holds the demo's {found!r} corpus, not {name!r}: give another --output_dir "
                             f"(or --corpus {found})")
    else:
        corpus.mkdir(parents=True, exist_ok=True)
        # Written before the clips: an interrupted run finds no test.tsv and redoes them.
        write_json_atomic(corpus / CORPUS_MARKER, {"corpus": name, **CORPORA[name]})
        generate(corpus, ["sv"], ["common_voice", "fleurs"], num_speakers=6, **CORPORA[name])
    if not (corpus / "fleurs" / "en_us" / "test.tsv").is_file():
        generate(corpus, ["en"], ["common_voice", "fleurs"], num_speakers=6)


def recorded_corpus(corpus: Path) -> dict:
    """The settings prepare_corpus recorded in the folder; a folder from before the record holds the small corpus."""
    marker = corpus / CORPUS_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else {"corpus": "small", **CORPORA["small"]}


def describe_corpus(corpus: Path) -> str:
    settings = recorded_corpus(corpus)
    voices = (f"{settings['held_out_test_voices']} voices not in training" if settings["held_out_test_voices"]
              else "the training voices")
    return (f"Corpus: {settings['corpus']} (synthetic/sentences/ {settings['sentence_set']}); test sentences are "
            f"not in training, spoken by {voices}.")


def evaluate(model: str, corpus: Path, output_dir: Path, max_samples: int | None, long_form: bool = False
             ) -> list[dict]:
    """The Swedish Common Voice and FLEURS test sets, as a participant evaluates; with `long_form`, their long-form
    scores too (run_eval.py --long_form: the test clips joined into recordings of 10)."""
    return run_eval(["--language", "sv", "--common_voice_dir", str(corpus / "common_voice"),
                     "--fleurs_dir", str(corpus / "fleurs"),
                     *(["--long_form", "--clips_per_recording", "10"] if long_form else [])],
                    model, output_dir, max_samples)


def evaluate_english(model: str, corpus: Path, output_dir: Path, max_samples: int | None) -> float:
    """WER on the English test clips (FLEURS and Common Voice layouts together): what the model still knows."""
    results = run_eval(["--language", "en", "--dataset_name", ENGLISH_TEST["dataset_name"].format(corpus=corpus),
                        "--dataset_config_name", ENGLISH_TEST["dataset_config_name"], "--split", "test"],
                       model, output_dir, max_samples)
    errors = sum(r["substitutions"] + r["deletions"] + r["insertions"] for r in results)
    return 100 * errors / sum(r["substitutions"] + r["deletions"] + r["hits"] for r in results)


def run_eval(arguments: list[str], model: str, output_dir: Path, max_samples: int | None) -> list[dict]:
    """run_eval.py, or the results of the same evaluation done before (see compare.run_evaluation)."""
    return run_evaluation(f"evaluation into {output_dir.name}", model, arguments, output_dir, max_samples, cwd=REPO)


def noisy_swedish_test(corpus: Path, out: Path, snrs: list, max_samples: int | None) -> NoisySets:
    """The Swedish test clips (Common Voice and FLEURS layouts, interleaved) with noise at each SNR, written once."""
    specs = [DatasetSpec(str(corpus / layout), config, "test", None) for layout, config in SWEDISH_TEST]
    try:
        return write_noisy_sets(load_mixture(specs), " + ".join(s.label for s in specs), out / "robustness", snrs,
                                max_samples)
    except RobustnessError as error:
        raise CompareError(f"step 'noisy test clips' failed: {error}") from None


def evaluate_robustness(model: str, noisy: NoisySets, output_dir: Path) -> dict[str, dict]:
    """SNR label -> scores of `model` on the noisy Swedish test clips."""
    results = run_evaluation(f"robustness into {output_dir.name}", model,
                             ["--language", "sv", *robustness_flags(noisy)], output_dir, cwd=REPO,
                             extra={"noisy_clips": noisy.fingerprint})
    return robustness_scores(results, noisy, output_dir)


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
    plt = pyplot()

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
        save_png(figure, report / name)
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


def flops_line(model_dir: Path, corpus: Path) -> str:
    """Training FLOP/s of a full fine-tune against this machine's matmul peak in the dtype it trained in."""
    train = json.loads((model_dir / "train_results.json").read_text())
    per_sample = training_flops_per_sample(WhisperConfig.from_pretrained(model_dir), mean_label_length(model_dir, corpus))
    achieved = per_sample * train["train_samples_per_second"]
    dtype = training_dtype(model_dir)
    peak = matmul_peak_flops(dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    return (f"Training ({dtype_name}): {train['train_samples_per_second']:.2f} samples/s x {per_sample / 1e9:.0f} GFLOP "
            f"per sample = {achieved / 1e9:.0f} GFLOP/s, {100 * achieved / peak:.0f}% of this machine's {dtype_name} "
            f"matrix-multiply peak measured in the same run ({peak / 1e9:.0f} GFLOP/s).")


def variants_table(base: dict, variants: dict[str, dict]) -> list[str]:
    """One row per model: Swedish WER per test set, English WER (retention), training speed and memory."""
    names = [f"{r['dataset_name']} {r['config']}" for r in base["swedish"]]
    lines = [f"| model | {' | '.join(f'WER % {n}' for n in names)} | WER % English | samples/s | peak memory GB |",
             "|---|" + "---|" * (len(names) + 3)]
    for name, scores in {"whisper-base (before)": base, **variants}.items():
        train = scores.get("train", {})
        speed = f"{train['train_samples_per_second']:.2f}" if "train_samples_per_second" in train else "-"
        memory = f"{train['train_peak_memory_gb']:.1f}" if "train_peak_memory_gb" in train else "-"
        wers = " | ".join(f"{r['wer']:.1f}" for r in scores["swedish"])
        lines.append(f"| {name} | {wers} | {scores['english']:.1f} | {speed} | {memory} |")
    return lines


def long_form_table(base: dict, variants: dict[str, dict]) -> list[str]:
    """One row per model and test set: clip and long-form WER, cue-start error, words on silence and noise."""
    lines = ["| model | test set | clip WER | long-form WER | cue start median / p90 s | missed | words on silence / "
             "noise |", "|---|---|---|---|---|---|---|"]
    for name, scores in {"whisper-base (before)": base, **variants}.items():
        for r in scores["swedish"]:
            f = r["long_form"]
            lines.append(f"| {name} | {r['dataset_name']} {r['config']} | {r['wer']:.1f} | {f['long_form_wer']:.1f} | "
                         f"{f['cue_start_error_median_s']} / {f['cue_start_error_p90_s']} | {f['utterances_missed']} | "
                         f"{f['words_on_silence']} / {f['words_on_noise']} |")
    return lines


def plot_variants(base: dict, variants: dict[str, dict], report: Path) -> str:
    plt = pyplot()

    models = {"whisper-base": base, **variants}
    swedish = [sum(r["wer"] for r in s["swedish"]) / len(s["swedish"]) for s in models.values()]
    english = [s["english"] for s in models.values()]
    figure, axis = plt.subplots(figsize=(1.6 * len(models) + 2, 3.5))
    positions = range(len(models))
    axis.bar([p - 0.2 for p in positions], swedish, width=0.4, label="Swedish test sets (mean)")
    axis.bar([p + 0.2 for p in positions], english, width=0.4, label="English (what the base model knew)")
    axis.set_xticks(list(positions), list(models))
    axis.set_ylabel("WER (%)")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    save_png(figure, report / "variants_wer.png")
    return "variants_wer.png"


def write_report(report: Path, base: dict, variants: dict[str, dict], corpus: Path, out: Path,
                 seconds: dict, noisy: NoisySets | None = None) -> str:
    """results.md and its plots, the model card and the predictions; with `noisy`, the robustness curve of the
    base model and every variant (their "robustness" scores) on the noisy Swedish test clips."""
    report.mkdir(parents=True, exist_ok=True)
    first, scores = next(iter(variants.items()))
    rows = ["| test set | samples | WER before | WER after | CER before | CER after |", "|---|---|---|---|---|---|"]
    for b, a in zip(base["swedish"], scores["swedish"]):
        rows.append(f"| {b['dataset_name']} {b['config']} {b['split']} | {a['samples']} | {b['wer']:.1f} | "
                    f"{a['wer']:.1f} | {b['cer']:.1f} | {a['cer']:.1f} |")
    rows.append(f"| English (FLEURS + Common Voice layouts) test | - | {base['english']:.1f} | "
                f"{scores['english']:.1f} | - | - |")
    model_dir = scores["model_dir"]
    lines = [f"# Demo: whisper-base fine-tuned on synthetic Swedish ({first})", "", describe_corpus(corpus), "",
             *rows, ""]
    if (model_dir / "config.json").is_file():  # a full model (a LoRA adapter has no architecture of its own)
        lines += [flops_line(model_dir, corpus), ""]
    lines += ["## Variants (configs/demo/variants.yaml)", "", *variants_table(base, variants), "",
              f"![variants]({plot_variants(base, variants, report)})", ""]
    if "long_form" in base["swedish"][0]:
        lines += ["## Long-form skills (--long_form)", "",
                  "The test clips joined into recordings of 10 (pauses of 0.3-1.5 s and one of 8 s), decoded as the "
                  "app's File tab decodes, cue starts as the model gives them; 60 s of silence and of pink noise "
                  "should get no words (docs/evaluation.md in the kit).", "", *long_form_table(base, variants), ""]
    robustness = []
    if noisy is not None:
        labels = [s.label for s in noisy.sets]
        models = {"whisper-base (before)": base["robustness"], **{n: v["robustness"] for n, v in variants.items()}}
        plot = plot_robustness(models, labels, report / "robustness_wer_vs_snr.png")
        robustness = robustness_table(models, labels)
        lines += ["## Robustness: WER against added noise", "",
                  f"The {noisy.description['clips']} Swedish test clips with {noisy.description['settings']['color']} "
                  "noise added at each signal-to-noise ratio (the clip's power over the noise's), the same clips for "
                  "every model.", "", *robustness, "", f"![robustness]({plot.name})", ""]
        if len(variants) > 1:  # is a variant clearly better or worse than the first one, clip by clip?
            paired = paired_table(paired_differences({n: v["robustness"] for n, v in variants.items()}, labels, first),
                                  labels)
            lines += [*paired, ""]
            robustness += ["", *paired]
    lines += ["Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()), ""]
    for name in plot_curves(model_dir, report):
        lines += [f"![{name}]({name})", ""]
    (report / "results.md").write_text("\n".join(lines))
    shutil.copy(model_dir / "README.md", report / "model_card.md")
    for label, folder in (("before", out / "eval_base"), ("after", scores["eval_dir"])):
        for predictions in folder.glob("predictions_*.jsonl"):
            shutil.copy(predictions, report / f"{label}_{predictions.name}")
    return "\n".join(rows + [""] + variants_table(base, variants) + [""] + robustness)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=Path("demo_output"),
                        help="where the corpus, the models, the evaluations and the report go")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 6 steps, 8 clips per test set")
    parser.add_argument("--variants", nargs="+", default=["replay_light"],
                        help=f"fine-tunes to run and compare, from {VARIANTS.relative_to(REPO)}; default: "
                             "replay_light, the fine-tune with a tenth of its samples English (the forgetting guard, "
                             "as in the GPU configs); plain is the same without replay")
    parser.add_argument("--snr", nargs="+", default=None,
                        help="add a robustness curve: WER of whisper-base and each variant on the Swedish test clips "
                             "with noise at these signal-to-noise ratios in dB ('clean': none), e.g. clean 10 5")
    parser.add_argument("--long_form", action="store_true",
                        help="also score each model's long-form skills (run_eval.py --long_form): long-form WER, "
                             "cue-start error and words on silence and noise, in the report's own table")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="small",
                        help="small: 100 training sentences, test clips by the training voices; large: 400 training "
                             "sentences, 40 test sentences spoken by 4 voices not in training (give it its own "
                             "--output_dir)")
    args = parser.parse_args()
    variants_settings = select_variants(load_variants(VARIANTS), args.variants, VARIANTS)
    for name, settings in variants_settings.items():
        check_referenced_files(name, settings, REPO)
    try:
        snrs = parse_snrs(args.snr) if args.snr else None
    except RobustnessError as error:
        parser.error(str(error))
    out = args.output_dir.resolve()
    corpus = out / "data"
    seconds, start = {}, time.perf_counter()

    def lap(name: str) -> None:  # the wall time since the previous lap
        seconds[name] = time.perf_counter() - start - sum(seconds.values())

    prepare_corpus(corpus, args.corpus)
    lap("corpus")
    max_samples = 8 if args.quick else None
    noisy = noisy_swedish_test(corpus, out, snrs, max_samples) if snrs else None
    base = {"swedish": evaluate(BASE_MODEL, corpus, out / "eval_base", max_samples, args.long_form),
            "english": evaluate_english(BASE_MODEL, corpus, out / "eval_base_en", max_samples)}
    if noisy:
        base["robustness"] = evaluate_robustness(BASE_MODEL, noisy, out / "eval_base_robustness")
    lap("evaluation before")

    variants = {}
    for name in args.variants:
        suffix = "" if name == "plain" else f"-{name}"
        model_dir, eval_dir = out / f"whisper-base-sv{suffix}", out / f"eval_finetuned{suffix}"
        train = [sys.executable, str(TRAIN_SCRIPT), "configs/demo_sv.yaml",
                 "--dataset_name", f"{corpus}/common_voice+{corpus}/fleurs", "--eval_dataset_name", f"{corpus}/fleurs",
                 "--output_dir", str(model_dir),
                 "--retention_dataset_name", ENGLISH_TEST["dataset_name"].format(corpus=corpus),
                 "--retention_dataset_config_name", ENGLISH_TEST["dataset_config_name"],
                 "--retention_split_name", "test", "--retention_language", "en",
                 *variant_flags(variants_settings[name], {"corpus": str(corpus)})]
        if args.quick:
            train += ["--max_steps", "6", "--eval_steps", "3", "--save_steps", "3", "--max_eval_samples", "8",
                      "--max_retention_samples", "4"]
        run_step(f"fine-tuning ({name})", train, REPO)
        lap(f"fine-tuning ({name})")
        variants[name] = {"swedish": evaluate(str(model_dir), corpus, eval_dir, max_samples, args.long_form),
                          "english": evaluate_english(str(model_dir), corpus, Path(f"{eval_dir}_en"), max_samples),
                          "train": json.loads((model_dir / "train_results.json").read_text()),
                          "model_dir": model_dir, "eval_dir": eval_dir}
        if noisy:
            variants[name]["robustness"] = evaluate_robustness(str(model_dir), noisy, Path(f"{eval_dir}_robustness"))
        lap(f"evaluation ({name})")

    table = write_report(out / "report", base, variants, corpus, out, seconds, noisy)
    print(f"\n{table}\n\nReport: {out / 'report' / 'results.md'} ({(time.perf_counter() - start) / 60:.1f} min)")


if __name__ == "__main__":
    main()
