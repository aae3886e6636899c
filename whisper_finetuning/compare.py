"""Fine-tune several variants of one training config and compare them, in one command.

    python -m whisper_finetuning.compare configs/single_gpu_small.yaml \\
        --variants_file configs/compare/course.yaml --variants baseline augmented skewed --output_dir compare_output

For each variant (its training arguments on top of the base config, see configs/compare/course.yaml):
1. run_speech_recognition_seq2seq_streaming.py BASE_CONFIG --<variant flags> --output_dir OUT/models/<variant>;
2. run_eval.py on the dataset's test split (default: the config's datasets, split "test") and on FLEURS;
3. the robustness curve: the first clips of the test split with noise added at each --snr (written once, see
   evaluation/robustness.py), transcribed by the base model (the config's model_name_or_path) and every fine-tuned
   model, all on the same noisy clips; each variant's WER difference from the first variant at each SNR, with a
   paired-bootstrap interval over the clips that says whether the difference is clear (evaluation/paired.py).
OUT/report holds results.md (the tables), comparison_wer.png, robustness_wer_vs_snr.png, each variant's model card
(model_card_<variant>.md) and results.json with every number (each taken from a run_eval.py results.json under
OUT/evals/<model>/).

Everything runs through the entry points a participant uses. Run the same command again after a failure or an
interruption: training resumes by itself and evaluations already done for the same model weights, data and
arguments are reused. A step that fails stops the command with an error naming it, and no report is written.
"""

import argparse
import hashlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .args import config_to_flags, read_config
from .cards import FLEURS_HUB, identify, public_name
from .data.mixing import DatasetSpec, load_mixture, parse_dataset_specs
from .evaluation.paired import paired_differences, paired_table
from .evaluation.reports import RESULTS, OutputDirError, earlier_model, predictions_file, same_model
from .evaluation.robustness import (DEFAULT_SNRS, NOISE_COLORS, NoisySets, RobustnessError, parse_snrs,
                                    plot_robustness, robustness_table, snr_label, write_noisy_sets)
from .entry_points import EVAL_SCRIPT, REPO, TRAIN_SCRIPT
from .figures import pyplot, save_png
from .files import write_json_atomic, write_text_atomic

DEFAULT_VARIANTS = REPO / "configs" / "compare" / "course.yaml"
BASE = "base"  # the results' name for the base model (not fine-tuned); no variant may have it
REQUEST = "compare_request.json"  # beside an evaluation's results.json: what it evaluated, to reuse it
# Set by this command for every run: a variant or --eval_config may not set them.
TRAINING_OWNED = ("output_dir",)
EVAL_OWNED = ("model_name_or_path", "output_dir", "dataset_name", "dataset_config_name", "split", "text_column_name",
              "language", "common_voice_dir", "fleurs_dir", "max_eval_samples")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class CompareError(SystemExit):
    """Stops the command with a message saying what is wrong and what to do."""

    def __init__(self, message: str):
        super().__init__(f"error: {message}")


# --- steps ----------------------------------------------------------------------------------------------------

def run_step(step: str, command: list[str], cwd: Path | None = None) -> None:
    """Run one step (an entry point, as a participant runs it); a failure stops everything, naming the step."""
    print(f"\n[{step}]\n$ {shlex.join(command)}", flush=True)
    try:
        subprocess.run(command, check=True, cwd=cwd)
    except subprocess.CalledProcessError as error:
        how = (f"was killed by signal {-error.returncode}" if error.returncode < 0
               else f"exited with status {error.returncode}")
        raise CompareError(f"step '{step}' failed: {shlex.join(command)} {how} (its output is above). Fix the "
                           "cause and run the same command again: finished steps are reused") from None


# --- variants ---------------------------------------------------------------------------------------------------

def load_variants(path: Path) -> dict[str, dict]:
    """A variants file: variant name -> training arguments on top of the base config ({} or empty: none)."""
    path = Path(path)
    if not path.is_file():
        raise CompareError(f"no variants file {path}; pass --variants_file with a YAML file that maps variant names "
                           f"to training arguments (see {DEFAULT_VARIANTS.relative_to(REPO)})")
    variants = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(variants, dict) or not variants:
        raise CompareError(f"{path} must map variant names to training arguments, e.g. 'baseline: {{}}'")
    for name, settings in variants.items():
        if not isinstance(settings, (dict, type(None))):
            raise CompareError(f"variant {name!r} in {path} must be a mapping of training arguments (or {{}}), not "
                               f"{settings!r}")
    return {str(name): settings or {} for name, settings in variants.items()}


def select_variants(variants: dict[str, dict], names: list[str] | None, path: Path) -> dict[str, dict]:
    """The variants asked for (all when `names` is None), checked: known, given once, usable as folder names."""
    names = list(variants) if names is None else names
    unknown = [name for name in names if name not in variants]
    if unknown:
        raise CompareError(f"no variant {', '.join(map(repr, unknown))} in {path}; known: {', '.join(variants)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CompareError(f"--variants names {', '.join(repeated)} more than once")
    for name in names:
        if name == BASE or not NAME.match(name):
            raise CompareError(f"variant name {name!r} in {path}: use letters, digits, '_', '-' or '.', and not "
                               f"{BASE!r} (the name of the model before fine-tuning)")
        owned = [key for key in variants[name] if key in TRAINING_OWNED]
        if owned:
            raise CompareError(f"variant {name!r} in {path} sets {', '.join(owned)}: this command sets it (each "
                               "variant trains into OUT/models/<variant>)")
    return {name: variants[name] for name in names}


def variant_flags(settings: dict, substitutions: dict[str, str] | None = None) -> list[str]:
    """A variant's training arguments as command-line flags; "{key}" in a text value becomes substitutions[key]."""
    if substitutions:
        settings = {key: value.format(**substitutions) if isinstance(value, str) else value
                    for key, value in settings.items()}
    return config_to_flags(settings)


def check_referenced_files(name: str, settings: dict, cwd: Path) -> None:
    """A config file a variant points to (augmentation_config: configs/augmentation/noise.yaml) must exist, so a
    typo stops the command before hours of training rather than after."""
    for key, value in settings.items():
        if isinstance(value, str) and value.endswith((".yaml", ".yml", ".json")) and not (cwd / value).is_file():
            raise CompareError(f"variant {name!r}: {key} {value} does not exist (relative paths are read from "
                               f"{cwd})")


# --- evaluations --------------------------------------------------------------------------------------------------

def weights_fingerprint(model: str) -> str:
    """What identifies a model's weights: a digest of a local folder's weight files, else the Hub id."""
    folder = Path(model)
    if not folder.is_dir():
        return model
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def reusable(output_dir: Path, model: str, request: dict) -> list[dict] | None:
    """The results of an earlier evaluation of the same request (model weights, data, arguments), if complete."""
    try:
        earlier = json.loads((output_dir / REQUEST).read_text())
        results = json.loads((output_dir / RESULTS).read_text())
        evaluated = earlier_model(output_dir, results.get("model", ""))  # results.json names a local model by name
    except (FileNotFoundError, ValueError, OutputDirError):
        return None
    if earlier != request or not results.get("complete") or not same_model(evaluated, model):
        return None
    return results["results"]


def run_evaluation(step: str, model: str, dataset_flags: list[str], output_dir: Path,
                   max_samples: int | None = None, eval_config: Path | None = None, cwd: Path | None = None,
                   extra: dict | None = None) -> list[dict]:
    """run_eval.py on `model` (its results list); reused when done before for the same weights and request.
    `extra`: anything else the results depend on (the noisy clips' fingerprint)."""
    command = [sys.executable, str(EVAL_SCRIPT), *([str(eval_config)] if eval_config else []),
               "--model_name_or_path", model, *dataset_flags, "--output_dir", str(output_dir)]
    if max_samples:
        command += ["--max_eval_samples", str(max_samples)]
    request = {"arguments": command[2:], "weights": weights_fingerprint(model),
               "eval_config": read_config(str(eval_config)) if eval_config else {}, **(extra or {})}
    results = reusable(output_dir, model, request)
    if results is not None:
        print(f"\n[{step}] reusing {output_dir / RESULTS} (same model weights and arguments)", flush=True)
        return results
    (output_dir / REQUEST).unlink(missing_ok=True)
    run_step(step, command, cwd)
    write_json_atomic(output_dir / REQUEST, request)
    return json.loads((output_dir / RESULTS).read_text())["results"]


def dataset_flags(specs: list[DatasetSpec]) -> list[str]:
    """run_eval.py's "+"-separated dataset options for these datasets (each scored on its own)."""
    def joined(values):
        return "+".join(value or "" for value in values)

    flags = ["--dataset_name", joined(s.name for s in specs), "--split", joined(s.split for s in specs)]
    if any(s.config for s in specs):
        flags += ["--dataset_config_name", joined(s.config for s in specs)]
    if any(s.text_column for s in specs):
        flags += ["--text_column_name", joined(s.text_column for s in specs)]
    return flags


def result_label(result: dict) -> str:
    """A test set's name in the tables: "Common Voice 17.0 sv-SE test", "FLEURS sv_se test"."""
    return " ".join(part for part in (result["dataset_name"], result["config"], result["split"]) if part)


def scores(result: dict) -> dict:
    return {"wer": result["wer"], "cer": result["cer"], "metric": result["metric"], "samples": result["samples"]}


def robustness_scores(results: list[dict], noisy: NoisySets, output_dir: Path) -> dict[str, dict]:
    """SNR label -> scores and the per-clip predictions file (for the paired comparison), matched by the manifest
    each result was read from; `output_dir`: where run_eval wrote them."""
    by_source = {public_name(result["source"]): result for result in results}  # run_eval names a file by its name
    curve = {}
    for noisy_set in noisy.sets:
        result = by_source[public_name(str(noisy_set.manifest))]
        curve[noisy_set.label] = {**scores(result), "predictions": str(output_dir / predictions_file(result))}
    return curve


def robustness_flags(noisy: NoisySets) -> list[str]:
    return dataset_flags([DatasetSpec(str(s.manifest), None, "test", "text") for s in noisy.sets])


# --- report ---------------------------------------------------------------------------------------------------------

def comparison_table(summary: dict) -> list[str]:
    """One row per model, WER % and CER % per test set."""
    labels = summary["test_sets"]
    lines = ["| model | " + " | ".join(f"WER % {label} | CER % {label}" for label in labels) + " |",
             "|---|" + "---|---|" * len(labels)]
    for name, model in summary["models"].items():
        cells = [f"{model['test_sets'][label]['wer']:.1f} | {model['test_sets'][label]['cer']:.1f}" for label in labels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot_comparison(summary: dict, path: Path) -> Path:
    """WER per test set, one bar per model."""
    plt = pyplot()

    labels, models = summary["test_sets"], summary["models"]
    width = 0.8 / len(models)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.0 + len(labels) * (0.5 + 0.35 * len(models))), 3.8))
    for index, (name, model) in enumerate(models.items()):
        positions = [p - 0.4 + width * (index + 0.5) for p in range(len(labels))]
        axis.bar(positions, [model["test_sets"][label]["wer"] for label in labels], width=width, label=name)
    axis.set_xticks(list(range(len(labels))), labels)
    axis.set_title("WER per test set")
    axis.set_ylabel("WER (%)")
    axis.grid(axis="y", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_png(figure, path)
    return path


def write_report(report: Path, summary: dict, model_cards: dict[str, Path]) -> None:
    """results.md, results.json, the two plots and the model cards, from `summary` (see `main`)."""
    report.mkdir(parents=True, exist_ok=True)
    snrs = summary["robustness"]["snr"]
    robustness = {name: model["robustness"] for name, model in summary["models"].items()}
    lines = [f"# Comparison of {', '.join(summary['variants'])}", "",
             f"Base config: `{summary['base_config']}`; variants: `{summary['variants_file']}`; "
             f"{BASE} = {summary['base_model']} before fine-tuning.", "",
             "## Test sets", "", *comparison_table(summary), "",
             f"![comparison]({plot_comparison(summary, report / 'comparison_wer.png').name})", "",
             "## Robustness: WER against added noise", "",
             f"{summary['robustness']['clips']} clips of {summary['robustness']['source']}, with "
             f"{summary['robustness']['color']} noise added at each SNR (the clip's power over the noise's; seed "
             f"{summary['robustness']['seed']}); the same clips for every model.", "",
             *robustness_table(robustness, snrs), "",
             f"![robustness]({plot_robustness(robustness, snrs, report / 'robustness_wer_vs_snr.png').name})", "",
             *([*paired_table(summary["robustness"]["paired"], snrs), ""] if "paired" in summary["robustness"] else []),
             "## Variants", ""]
    for name, variant in summary["variants"].items():
        flags = shlex.join(variant["flags"]) or "(the base config as it is)"
        lines += [f"- **{name}**: `{flags}`; model `{variant['model']}`; card: [model_card_{name}.md]"
                  f"(model_card_{name}.md)"]
        shutil.copyfile(model_cards[name], report / f"model_card_{name}.md")
    lines += ["", "Every number is in results.json, each from the run_eval.py results.json it names."]
    write_json_atomic(report / "results.json", summary)
    write_text_atomic(report / "results.md", "\n".join(lines) + "\n")


# --- the command ----------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m whisper_finetuning.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path, help="the base training config (YAML or JSON) every variant starts from")
    parser.add_argument("--variants_file", type=Path, default=DEFAULT_VARIANTS,
                        help="YAML file mapping variant names to training arguments added to the base config "
                             "(default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="the variants to train and compare, from --variants_file (default: all of them)")
    parser.add_argument("--output_dir", type=Path, default=Path("compare_output"),
                        help="where the models (models/<variant>), the evaluations (evals/), the noisy test clips "
                             "(robustness/) and the report (report/) go")
    parser.add_argument("--language", default=None,
                        help="language of the test sets, as run_eval.py takes it (default: the config's language)")
    parser.add_argument("--test_dataset_name", default=None,
                        help="the test set(s), '+'-separated, as run_eval.py's --dataset_name (default: the config's "
                             "dataset_name, with its dataset_config_name and text_column_name)")
    parser.add_argument("--test_dataset_config_name", default=None,
                        help="'+'-separated configs of --test_dataset_name (a Common Voice locale, a FLEURS config)")
    parser.add_argument("--test_split", default="test", help="'+'-separated split(s) of the test set(s)")
    parser.add_argument("--test_text_column_name", default=None,
                        help="'+'-separated transcript columns of the test set(s) (default per layout)")
    parser.add_argument("--fleurs_dir", default=None,
                        help="local FLEURS folder (one folder per config) instead of the Hub")
    parser.add_argument("--fleurs_dataset", default=FLEURS_HUB, help="FLEURS on the Hub (default: %(default)s)")
    parser.add_argument("--no_fleurs", action="store_true",
                        help="evaluate on the test set(s) only (a language FLEURS does not have)")
    parser.add_argument("--max_eval_samples", type=int, default=None,
                        help="evaluate on the first N clips of each test set only")
    parser.add_argument("--snr", nargs="+", default=list(DEFAULT_SNRS),
                        help="robustness curve: 'clean' and signal-to-noise ratios in dB of the noise added to the "
                             "test clips (default: clean 20 10 5 0)")
    parser.add_argument("--robustness_max_samples", type=int, default=None,
                        help="how many test clips the robustness curve uses (default: --max_eval_samples, else all)")
    parser.add_argument("--noise_color", choices=NOISE_COLORS, default="white",
                        help="the color of the added noise (default: %(default)s)")
    parser.add_argument("--noise_seed", type=int, default=0, help="seed of the added noise (each clip its own)")
    parser.add_argument("--eval_config", type=Path, default=None,
                        help="YAML file of run_eval.py arguments for every evaluation (batch_size, num_beams, "
                             "generation_max_length, dtype...); this command sets the model, data and output ones")
    args = parser.parse_args(argv)
    for name in ("max_eval_samples", "robustness_max_samples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def test_specs(args, settings: dict) -> list[DatasetSpec]:
    """The test set(s): the flags, else the config's datasets (each with its config and text column)."""
    if args.test_dataset_name:
        names, configs, columns = args.test_dataset_name, args.test_dataset_config_name, args.test_text_column_name
    else:
        if not settings.get("dataset_name"):
            raise CompareError(f"{args.config} has no dataset_name: pass --test_dataset_name")
        names = settings["dataset_name"]
        configs = args.test_dataset_config_name or settings.get("dataset_config_name")
        columns = args.test_text_column_name or settings.get("text_column_name")
    try:
        return parse_dataset_specs(names, configs, args.test_split, columns)
    except ValueError as error:
        raise CompareError(f"the test set: {error}") from None


def fleurs_spec(args, language: str, tests: list[DatasetSpec]) -> DatasetSpec | None:
    """FLEURS's test split of the language; None with --no_fleurs or when a test set is that FLEURS already."""
    from normalizers import get_language

    if args.no_fleurs:
        return None
    config = get_language(language).fleurs
    if not config:
        raise CompareError(f"FLEURS has no {get_language(language).name}: pass --no_fleurs")
    spec = DatasetSpec(args.fleurs_dir or args.fleurs_dataset, config, "test", "raw_transcription")
    if any(identify(t).dataset_type == FLEURS_HUB and t.config == config and t.split == "test" for t in tests):
        return None
    return spec


def main(argv=None) -> dict:
    args = parse_args(argv)
    cwd = Path.cwd()
    if not args.config.is_file():
        raise CompareError(f"no training config {args.config}")
    settings = read_config(str(args.config))
    base_model = settings.get("model_name_or_path")
    if not base_model:
        raise CompareError(f"{args.config} has no model_name_or_path (the model every variant fine-tunes)")
    language = args.language or settings.get("language")
    if not language:
        raise CompareError(f"give --language ({args.config} has no language)")
    variants = select_variants(load_variants(args.variants_file), args.variants, args.variants_file)
    for name, variant in variants.items():
        check_referenced_files(name, variant, cwd)
    eval_config = args.eval_config.resolve() if args.eval_config else None
    if eval_config:
        if not eval_config.is_file():
            raise CompareError(f"no --eval_config {args.eval_config}")
        owned = [key for key in read_config(str(eval_config)) if key in EVAL_OWNED]
        if owned:
            raise CompareError(f"--eval_config {args.eval_config} sets {', '.join(owned)}: this command sets those")
    try:
        snrs = parse_snrs(args.snr)
    except RobustnessError as error:
        raise CompareError(str(error)) from None
    tests = test_specs(args, settings)
    fleurs = fleurs_spec(args, language, tests)
    out = args.output_dir.resolve()
    report = out / "report"
    shutil.rmtree(report, ignore_errors=True)  # a report exists only after a run that finished
    config = str(args.config.resolve())

    # 1. The noisy test clips, written once (this also checks that the test set can be read)
    robustness_samples = args.robustness_max_samples or args.max_eval_samples
    source = " + ".join(spec.label for spec in tests)
    print(f"\n[noisy test clips] {source}, SNR {', '.join(map(snr_label, snrs))}", flush=True)
    try:
        noisy = write_noisy_sets(load_mixture(tests), source, out / "robustness", snrs, robustness_samples,
                                 args.noise_seed, args.noise_color)
    except (RobustnessError, ValueError, FileNotFoundError) as error:
        raise CompareError(f"step 'noisy test clips' failed: {error}") from None

    def evaluate(name: str, model: str) -> dict:
        evals = out / "evals" / name
        test_results = run_evaluation(f"evaluation of {name} on the test sets", model,
                                      ["--language", language, *dataset_flags(tests + ([fleurs] if fleurs else []))],
                                      evals / "test_sets", args.max_eval_samples, eval_config, cwd)
        noisy_results = run_evaluation(f"robustness of {name}", model,
                                       ["--language", language, *robustness_flags(noisy)], evals / "robustness",
                                       None, eval_config, cwd, {"noisy_clips": noisy.fingerprint})
        return {"model": model, "test_sets": {result_label(r): scores(r) for r in test_results},
                "robustness": robustness_scores(noisy_results, noisy, evals / "robustness"),
                "results_json": {"test_sets": str(evals / "test_sets" / RESULTS),
                                 "robustness": str(evals / "robustness" / RESULTS)}}

    # 2. The base model, then each variant: train (resumes by itself), evaluate
    models = {BASE: evaluate(BASE, base_model)}
    summary_variants, cards = {}, {}
    for name, variant in variants.items():
        model_dir = out / "models" / name
        flags = variant_flags(variant)
        run_step(f"training {name}", [sys.executable, str(TRAIN_SCRIPT), config, *flags, "--output_dir",
                                      str(model_dir)], cwd)
        cards[name] = model_dir / "README.md"
        if not cards[name].is_file():
            raise CompareError(f"step 'training {name}' wrote no model card ({cards[name]}): did the config turn "
                               "off do_train or saving?")
        models[name] = evaluate(name, str(model_dir))
        summary_variants[name] = {"flags": flags, "model": str(model_dir)}

    # 3. The report
    labels = list(models[BASE]["test_sets"])
    summary = {"base_config": config, "variants_file": str(args.variants_file.resolve()), "base_model": base_model,
               "language": language, "variants": summary_variants, "test_sets": labels,
               "robustness": {"snr": [s.label for s in noisy.sets], "source": source,
                              "clips": noisy.description["clips"], "color": args.noise_color, "seed": args.noise_seed,
                              "folder": str(out / "robustness")},
               "models": models}
    if len(summary_variants) > 1:  # each variant against the first (the baseline), clip by clip
        summary["robustness"]["paired"] = paired_differences({name: models[name]["robustness"]
                                                              for name in summary_variants},
                                                             summary["robustness"]["snr"], next(iter(summary_variants)))
    write_report(report, summary, cards)
    print("\n" + "\n".join(comparison_table(summary)) + "\n\n" +
          "\n".join(robustness_table({n: m["robustness"] for n, m in models.items()}, summary["robustness"]["snr"])) +
          f"\n\nReport: {report / 'results.md'}")
    return summary


if __name__ == "__main__":
    main()
