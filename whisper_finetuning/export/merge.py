"""Merge a LoRA adapter into its base model and write a plain Hugging Face checkpoint.

    python -m whisper_finetuning.export.merge --model_name_or_path output/whisper-small-sv-lora --output_dir whisper-small-sv

The folder written loads with `WhisperForConditionalGeneration.from_pretrained` alone (no peft), with the adapter's
generation config (language, task), processor and preprocessor_config.json (the mel-bin count for other tools).
"""

import argparse
import logging
from pathlib import Path

import torch

from ..args import add_model_arguments
from ..loading import is_adapter, load_whisper


def merge_adapter(adapter_dir: str, output_dir: Path, **hub_kwargs) -> Path:
    if not is_adapter(adapter_dir):
        raise ValueError(f"{adapter_dir} is not a LoRA adapter folder (no adapter_config.json)")
    model, processor = load_whisper(adapter_dir, dtype=torch.float32, **hub_kwargs)
    model.config.use_cache = True
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    processor.feature_extractor.save_pretrained(output_dir)  # preprocessor_config.json
    return output_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, "the adapter folder (training with --use_peft saves one)", dtype=False)
    parser.add_argument("--output_dir", type=Path, required=True, help="where the merged checkpoint goes")
    parser.add_argument("--revision", default=None, help="Hub revision of the base model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    merge_adapter(args.model_name_or_path, args.output_dir, revision=args.revision)
    print(f"Wrote the merged model to {args.output_dir}")


if __name__ == "__main__":
    main()
