"""The arguments every entry point shares, declared once, and the `[CONFIG.yaml] [--flag value ...]` parser.

Names follow the Hugging Face Whisper event script and the transformers speech examples. Each stage adds its own:
training/arguments.py (fine-tuning and its data), evaluation/arguments.py (run_eval.py), features/cache.py. The
argparse commands (the app, live captions, export, merge) take the same model, language and dtype flags from
`add_model_arguments`.
"""

import argparse
import json
from dataclasses import dataclass, field

import yaml
from transformers import HfArgumentParser

from normalizers import get_language

TASKS = ("transcribe", "translate")
DTYPE_HELP = ("auto (float16 on a GPU, bfloat16 on CPUs with native bfloat16, else float32), float32, float16 or "
              "bfloat16; a CTranslate2 export runs in the type it was exported in")


def add_model_arguments(parser: argparse.ArgumentParser, model_help: str, language_help: str | None = None,
                        dtype: bool = True) -> None:
    """The model flag of an argparse command, named as in training and evaluation (--model_name_or_path, with --model
    kept as its alias), and, when asked, --language (a code, name or token) and --dtype."""
    parser.add_argument("--model_name_or_path", "--model", dest="model_name_or_path", required=True, help=model_help)
    if language_help:
        parser.add_argument("--language", help=language_help)
    if dtype:
        parser.add_argument("--dtype", default="auto", help=DTYPE_HELP)


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Hub id (openai/whisper-small) or local folder of the Whisper "
                                                      "checkpoint"})
    model_revision: str = field(default="main", metadata={
        "aliases": ["--revision"], "help": "Hub branch, tag or commit of the model (ignored for local folders)"})
    cache_dir: str | None = field(default=None, metadata={"help": "where to store models downloaded from the Hub"})
    token: str | None = field(default=None, metadata={
        "help": "Hub token for private models (default: the one saved by `huggingface-cli login` or HF_TOKEN)"})
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or flash_attention_2"})


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={
        "help": "datasets, '+'-separated: Hub ids, Common Voice or FLEURS release folders, audiofolders or manifest "
                "files (.jsonl/.csv/.tsv/.parquet)"})
    dataset_config_name: str | None = field(default=None, metadata={
        "help": "'+'-separated, one per dataset or one for all: a Common Voice locale (sv-SE), a FLEURS config "
                "(sv_se), a Hub config"})
    text_column_name: str | None = field(default=None, metadata={
        "help": "'+'-separated transcript columns (default per layout: sentence, raw_transcription, "
                "transcription, text)"})
    language: str | None = field(default=None, metadata={
        "help": "Whisper language as code (sv), name (swedish) or token (<|sv|>); stored as its code. Omit for "
                "English-only models"})
    task: str = field(default="transcribe", metadata={"help": "transcribe, or translate (to English)"})
    streaming: bool = field(default=True, metadata={
        "help": "stream Hub datasets instead of downloading them first (local folders always stream)"})

    def __post_init__(self):
        # The one place where a language name or token becomes its code: everything after parsing sees "sv".
        if self.language is not None:
            self.language = get_language(self.language).code
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, not {self.task!r}")


@dataclass
class PreprocessingArguments:
    """How rows become training samples; the feature cache records these and training checks them."""

    min_duration_in_seconds: float = field(default=0.0, metadata={"help": "skip (and count) shorter clips"})
    max_duration_in_seconds: float = field(default=30.0, metadata={
        "help": "skip (and count) longer clips; Whisper sees 30 s windows, longer clips would be cut"})
    do_lower_case: bool = field(default=False, metadata={"help": "lower-case the training targets"})
    do_remove_punctuation: bool = field(default=False, metadata={
        "help": "remove punctuation from the training targets (word-internal apostrophes, hyphens and number "
                "separators stay)"})

    def __post_init__(self):
        if not 0 <= self.min_duration_in_seconds < self.max_duration_in_seconds:
            raise ValueError(f"need 0 <= --min_duration_in_seconds ({self.min_duration_in_seconds}) < "
                             f"--max_duration_in_seconds ({self.max_duration_in_seconds})")


def config_to_flags(settings: dict) -> list[str]:
    """A config file's settings as command-line flags: lists give one value each, dicts go as JSON (the form the
    Trainer's dict arguments accept), None means "not set"."""
    flags = []
    for key, value in settings.items():
        if value is None:
            continue
        if isinstance(value, dict):
            flags += [f"--{key}", json.dumps(value)]
        elif isinstance(value, list):
            flags += [f"--{key}", *(json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in value)]
        else:
            flags += [f"--{key}", str(value)]
    return flags


def read_config(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        settings = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    if not isinstance(settings, (dict, type(None))):
        raise ValueError(f"{path} must hold a mapping of argument names to values")
    return settings or {}


def parse_config_and_flags(parser: HfArgumentParser, argv: list[str]):
    """Parse `[CONFIG.yaml|CONFIG.json] [--flag value ...]`: the file's settings, then the flags on top.

    The config file is the first argument that is not a `--key=value` flag (the `deepspeed` launcher puts
    `--local_rank=N` before it)."""
    argv = list(argv)
    first = next((i for i, arg in enumerate(argv) if not (arg.startswith("--") and "=" in arg)), None)
    if first is not None and argv[first].endswith((".yaml", ".yml", ".json")):
        argv = config_to_flags(read_config(argv.pop(first))) + argv
    return parser.parse_args_into_dataclasses(args=argv)
