#!/usr/bin/env python
"""Evaluate a Whisper model on the Common Voice and FLEURS test sets of a language, or on any dataset.

    python run_eval.py --model_name_or_path openai/whisper-small --language sv
    python run_eval.py --model_name_or_path ./my-model --language sv \\
        --common_voice_dir data/cv-corpus-17.0-2024-03-15 --fleurs_dir data/fleurs
    python run_eval.py --model_name_or_path M --language sv --dataset_name "a+b" --dataset_config_name "x+y" \\
        --split "test+test" --text_column_name "sentence+transcription"

Writes results.json, results.md, model_index.yaml and predictions_<dataset>.jsonl to --output_dir.
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser

from normalizers import get_normalizer
from whisper_finetuning.arguments import parse_config_and_flags
from whisper_finetuning.evaluation import (
    COMMON_VOICE_HUB, FLEURS_HUB, Throughput, Transcriber, default_targets, evaluate_rows, identify,
)
from whisper_finetuning.mixing import count_samples, load_mixture, parse_dataset_specs
from whisper_finetuning.reports import markdown_table, merge_into_card, write_reports
from whisper_finetuning.transcription import language_kwargs, load_whisper

logger = logging.getLogger("run_eval")


@dataclass
class EvalArguments:
    model_name_or_path: str = field(metadata={"help": "Hub id or local directory of the model to evaluate"})
    language: str | None = field(default=None, metadata={"help": "Whisper language code or name, e.g. sv"})
    task: str = field(default="transcribe", metadata={"help": "transcribe or translate"})
    detect_language: bool = field(default=False, metadata={"help": "let the model detect the language"})
    dataset_name: str | None = field(default=None, metadata={"help": "datasets to evaluate on, '+'-separated "
                                                                     "(default: Common Voice and FLEURS)"})
    dataset_config_name: str | None = field(default=None)
    split: str = field(default="test")
    text_column_name: str | None = field(default=None)
    common_voice_dir: str | None = field(default=None, metadata={"help": "local Common Voice release folder"})
    fleurs_dir: str | None = field(default=None, metadata={"help": "local FLEURS folder (one folder per config)"})
    common_voice_dataset: str = field(default=COMMON_VOICE_HUB)
    fleurs_dataset: str = field(default=FLEURS_HUB)
    streaming: bool = field(default=True, metadata={"help": "stream Hub datasets (--streaming false downloads)"})
    max_eval_samples: int | None = field(default=None)
    batch_size: int = field(default=16)
    dtype: str = field(default="auto", metadata={"help": "auto (float16 on GPU, bfloat16 on CPUs with native "
                                                          "bfloat16, else float32), float32, float16 or bfloat16"})
    attn_implementation: str = field(default="sdpa")
    num_beams: int = field(default=1)
    return_timestamps: bool = field(default=False)
    output_dir: str = field(default="eval_results")
    push_to_hub: bool = field(default=False, metadata={"help": "write the results into the model's Hub card"})
    hub_model_id: str | None = field(default=None, metadata={"help": "repo whose card to update "
                                                                     "(default: model_name_or_path)"})
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one, if any)"})


def cpu_has_native_bfloat16() -> bool:
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def choose_dtype(name: str) -> torch.dtype:
    """auto: float16 on GPU; bfloat16 on CPUs that compute in it natively (about twice as fast as float32, same WER
    within noise: see the README); float32 elsewhere."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32
    return getattr(torch, name)


def main(argv=None) -> list[dict]:
    (args,) = parse_config_and_flags(HfArgumentParser(EvalArguments), sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    normalization = get_normalizer(args.language)  # fails early, with the options, on an unknown language
    if args.dataset_name:
        specs = parse_dataset_specs(args.dataset_name, args.dataset_config_name, args.split, args.text_column_name)
        targets = [identify(spec) for spec in specs]
    else:
        if not args.language:
            raise SystemExit("error: give --language (to evaluate on Common Voice and FLEURS) or --dataset_name")
        targets = default_targets(args.language, args.split, args.common_voice_dir, args.fleurs_dir,
                                  args.common_voice_dataset, args.fleurs_dataset)

    model, processor = load_whisper(args.model_name_or_path, dtype=choose_dtype(args.dtype), token=args.token,
                                    attn_implementation=args.attn_implementation)
    if torch.cuda.is_available():
        model = model.cuda()
    generate_kwargs = {"num_beams": args.num_beams, "return_timestamps": args.return_timestamps}
    generate_kwargs.update(language_kwargs(model, None if args.detect_language else args.language, args.task))

    transcriber = Transcriber(model, processor, generate_kwargs, batch_size=args.batch_size)
    results, predictions = [], {}
    for target in targets:
        spec = target.spec
        rows = load_mixture([spec], streaming=args.streaming, token=args.token)
        transcriber.throughput = Throughput()  # RTFx per dataset
        label = f"{target.pretty_name} {spec.config or ''} {spec.split}".replace("  ", " ")
        scores, rows_out = evaluate_rows(transcriber, rows, normalization, total=count_samples(spec), description=label,
                                         max_samples=args.max_eval_samples)
        results.append({"dataset_name": target.pretty_name, "dataset_type": target.dataset_type,
                        "source": spec.name, "config": spec.config, "split": spec.split,
                        "language": normalization.language.code if args.language else None,
                        "rtfx": transcriber.throughput.rtfx, "dtype": str(model.dtype).removeprefix("torch."),
                        **scores})
        predictions[label] = rows_out

    write_reports(Path(args.output_dir), args.model_name_or_path, results, predictions, args.language)
    print(markdown_table(results))
    print(f"\nWrote results.json, results.md, model_index.yaml and predictions to {args.output_dir}")
    if args.push_to_hub:
        push_results(args.hub_model_id or args.model_name_or_path, results, args.token)
    return results


def push_results(repo_id: str, results: list[dict], token: str | None) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(repo_id, token=token)
    merge_into_card(card, results, repo_id).push_to_hub(repo_id, token=token,
                                                        commit_message="Add evaluation results (run_eval.py)")
    logger.info("Updated the model card of %s", repo_id)


if __name__ == "__main__":
    main()
