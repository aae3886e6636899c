"""Export a fine-tuned Whisper (a checkpoint folder, a LoRA adapter folder, or a Hub id) for deployment, and check
that the export transcribes like the trained model.

    python -m whisper_finetuning.export --model_name_or_path output/whisper-small-sv --to ctranslate2 --quantization int8 \\
        --output_dir whisper-small-sv-ct2 --check data/fleurs --dataset_config_name sv_se --language sv

--to ctranslate2 writes a folder faster-whisper loads as it is: `WhisperModel("whisper-small-sv-ct2")`.
--check transcribes the clips of a dataset (the kit's "+" syntax, a local folder or a Hub id) with the trained model
(transformers, float32) and with the export, writes parity.json and parity.md into the export folder, and exits
with status 1 when the export's WER is worse by more than --tolerance.
"""

import argparse
import logging
import shutil
import sys
from itertools import islice
from pathlib import Path

import torch

from normalizers import get_language, get_normalizer

from ..args import add_model_arguments
from ..backends.cpu_attention import enable_fast_cpu_attention
from ..backends.load import load_backend
from ..backends.transformers_backend import TransformersBackend
from ..cards import public_name
from ..data.mixing import load_mixture, parse_dataset_specs
from ..data.sources import dataset_label
from ..evaluation.scoring import ScoringError
from ..evaluation.transcriber import Transcriber
from ..loading import language_kwargs
from .checkpoint import ExportError, load_for_export
from .ctranslate2 import QUANTIZATIONS as CT2_QUANTIZATIONS
from .ctranslate2 import convert_to_ctranslate2
from .ggml import QUANTIZATIONS as GGML_QUANTIZATIONS
from .ggml import WhisperCppTranscriber, convert_to_ggml, load_whisper_cpp
from .parity import ParityError, check_parity, default_tolerance, verdict, write_report

logger = logging.getLogger("whisper_finetuning.export")

FORMATS = {"ctranslate2": (convert_to_ctranslate2, CT2_QUANTIZATIONS), "ggml": (convert_to_ggml, GGML_QUANTIZATIONS)}


def parse_arguments(argv):
    parser = argparse.ArgumentParser(prog="python -m whisper_finetuning.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, "the model to export: a training run's output_dir or checkpoint-N folder, a LoRA "
                        "adapter folder (merged onto its base first), or a Hub id", dtype=False)
    parser.add_argument("--to", choices=tuple(FORMATS), default="ctranslate2", help="ctranslate2: the format of "
                        "faster-whisper and CTranslate2 (a folder); ggml: whisper.cpp's (ggml-model.bin)")
    parser.add_argument("--quantization", default="float16", help="weight type of the export. ctranslate2: "
                        f"{', '.join(CT2_QUANTIZATIONS)}; ggml: {', '.join(GGML_QUANTIZATIONS)}. float16 (the "
                        "default) is half the size and exact on GPUs (a CPU runs it in float32); int8 and q8_0 "
                        "a quarter, fastest on CPUs, at some cost in accuracy")
    parser.add_argument("--output_dir", type=Path, required=True, help="the folder to write (must not exist, "
                        "unless --overwrite_output_dir)")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace an existing --output_dir")
    parser.add_argument("--revision", default=None, help="Hub revision of the model (or of an adapter's base)")
    check = parser.add_argument_group("parity check (--check)")
    check.add_argument("--check", metavar="DATASET", default=None, help="transcribe this dataset's clips with the "
                       "trained and the exported model and compare: '+'-separated Hub ids, Common Voice or FLEURS "
                       "folders, audiofolders or manifest files, as --dataset_name of run_eval.py")
    check.add_argument("--dataset_config_name", default=None, help="'+'-separated configs of --check (sv-SE, sv_se)")
    check.add_argument("--split", default="test", help="'+'-separated split(s) of --check")
    check.add_argument("--text_column_name", default=None, help="'+'-separated transcript columns of --check")
    check.add_argument("--language", default=None, help="language to transcribe in (code, name or token; default: "
                       "the model's generation config, else detected per clip); also picks the normalizer")
    check.add_argument("--task", choices=("transcribe", "translate"), default="transcribe", help="transcribe or "
                       "translate")
    check.add_argument("--max_samples", type=int, default=200, help="clips to compare (the first N)")
    check.add_argument("--batch_size", type=int, default=16, help="clips per generate() call, both models")
    check.add_argument("--tolerance", type=float, default=None, help="how many WER points (absolute) the export "
                       "may be worse before the check fails (default: 0.5 for float32, 1 for 16-bit types, 2 for "
                       "int8 ones)")
    args = parser.parse_args(argv)
    if args.max_samples < 1 or args.batch_size < 1:
        parser.error("--max_samples and --batch_size must be at least 1")
    if args.tolerance is not None and not args.tolerance >= 0:
        parser.error(f"--tolerance must be 0 or more, not {args.tolerance}")
    if args.quantization not in FORMATS[args.to][1]:
        parser.error(f"unknown quantization {args.quantization!r} for --to {args.to}; choose one of "
                     f"{', '.join(FORMATS[args.to][1])}")
    if args.language is not None:
        try:
            args.language = get_language(args.language).code
        except ValueError as error:
            parser.error(str(error))
    return args


def prepare_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and any(output_dir.iterdir()):
        if not overwrite:
            raise ExportError(f"{output_dir} exists and is not empty; choose another --output_dir or pass "
                              "--overwrite_output_dir to replace it")
        shutil.rmtree(output_dir)
    elif output_dir.exists():
        output_dir.rmdir()


def run_check(args, model, processor) -> dict:
    """Parity of the export in args.output_dir with the trained model (already loaded, float32)."""
    specs = parse_dataset_specs(args.check, args.dataset_config_name, args.split, args.text_column_name)
    rows = list(islice(iter(load_mixture(specs)), args.max_samples))
    language = args.language or getattr(model.generation_config, "language", None)
    language = get_language(language).code if language else None
    generate_kwargs = {"num_beams": 1, "return_timestamps": False,
                       **language_kwargs(model, language, args.task)}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    enable_fast_cpu_attention(model.to(device))
    trained = Transcriber(TransformersBackend(model, processor), generate_kwargs, batch_size=args.batch_size)
    if args.to == "ctranslate2":
        export = load_backend(str(args.output_dir), device=device)
        exported = Transcriber(export, generate_kwargs, batch_size=args.batch_size)
        compute_type = export.compute_type
    else:
        exported = WhisperCppTranscriber(load_whisper_cpp(str(args.output_dir)), generate_kwargs=generate_kwargs)
        compute_type = args.quantization
    # Names without local paths: the report travels with the export, maybe to the Hub.
    settings = {"model": public_name(args.model_name_or_path), "format": args.to, "quantization": args.quantization,
                "compute_type": compute_type, "device": device, "language": language,
                "dataset": " + ".join(dataset_label(public_name(s.name), s.config, s.split) for s in specs)}
    tolerance = default_tolerance(args.quantization) if args.tolerance is None else args.tolerance
    report = check_parity(trained, exported, rows, get_normalizer(language), tolerance, settings)
    write_report(args.output_dir, report)
    return report


def main(argv=None) -> None:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        prepare_output_dir(args.output_dir, args.overwrite_output_dir)
        model, processor = load_for_export(args.model_name_or_path, revision=args.revision)
        convert, _ = FORMATS[args.to]
        convert(model, processor, args.output_dir, args.quantization)
        print(f"Wrote the {args.to} {args.quantization} export of {args.model_name_or_path} to {args.output_dir}")
        if args.check:
            report = run_check(args, model, processor)
            print(f"Parity {'passed' if report['passed'] else 'FAILED'}: {verdict(report)}. "
                  f"Report: {args.output_dir / 'parity.md'}")
            if not report["passed"]:
                raise ParityError(f"the export transcribes worse than the trained model: {verdict(report)}. See "
                                  f"{args.output_dir / 'parity.md'}; a float32 export or a higher --tolerance may be "
                                  "what you need")
    except (ExportError, ParityError, ScoringError) as error:
        raise SystemExit(f"error: {error}")


if __name__ == "__main__":
    main()
