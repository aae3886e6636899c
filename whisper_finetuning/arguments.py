"""Command-line arguments of the fine-tuning script, named as in the Hugging Face Whisper event script and the
transformers example (run_speech_recognition_seq2seq.py), with Seq2SeqTrainingArguments for the rest."""

from dataclasses import dataclass, field


@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "Hub id or local directory of the Whisper checkpoint"})
    cache_dir: str | None = field(default=None, metadata={"help": "where to store models downloaded from the Hub"})
    model_revision: str = field(default="main")
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one, if any)"})
    attn_implementation: str = field(default="sdpa")
    freeze_encoder: bool = field(default=False, metadata={"help": "train the decoder only"})
    freeze_feature_encoder: bool = field(
        default=False, metadata={"help": "freeze the convolutional front-end of the encoder (conv1, conv2)"})
    apply_spec_augment: bool = field(default=False, metadata={"help": "SpecAugment masking of input features"})
    mask_time_prob: float = field(default=0.05)
    mask_time_length: int = field(default=10)
    mask_feature_prob: float = field(default=0.0)
    mask_feature_length: int = field(default=10)
    dropout: float = field(default=0.0)
    model_index_name: str | None = field(default=None, metadata={"help": "pretty name for the model card"})
    auto_resume: bool = field(default=True, metadata={
        "help": "resume from the newest complete checkpoint in output_dir when --resume_from_checkpoint is not given"})
    model_card_tags: str = field(default="whisper-event,hf-asr-leaderboard",
                                 metadata={"help": "comma-separated tags for the model card"})


@dataclass
class DataTrainingArguments:
    dataset_name: str = field(metadata={"help": "datasets to train on, '+'-separated (Hub ids or local folders)"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "'+'-separated, one per dataset"})
    train_split_name: str = field(default="train", metadata={"help": "'+'-separated, e.g. train+validation"})
    eval_dataset_name: str | None = field(default=None, metadata={"help": "default: dataset_name"})
    eval_dataset_config_name: str | None = field(default=None)
    eval_split_name: str = field(default="test")
    text_column_name: str | None = field(default=None, metadata={"help": "'+'-separated; default per layout"})
    eval_text_column_name: str | None = field(default=None)
    train_probabilities: str | None = field(
        default=None, metadata={"help": "'+'-separated sampling weights or sample counts, e.g. 0.7+0.3"})
    stopping_strategy: str = field(
        default="all_exhausted_without_replacement",
        metadata={"help": "all_exhausted_without_replacement (every sample once), first_exhausted, all_exhausted"})
    streaming: bool = field(default=True)
    shuffle_buffer_size: int = field(default=500)
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    min_duration_in_seconds: float = field(default=0.0)
    max_duration_in_seconds: float = field(default=30.0)
    eval_min_duration_in_seconds: float = field(default=0.0)
    eval_max_duration_in_seconds: float = field(default=30.0)
    language: str | None = field(default=None, metadata={"help": "Whisper language code or name (multilingual)"})
    task: str = field(default="transcribe")
    do_lower_case: bool = field(default=False, metadata={"help": "lower-case the training targets"})
    do_remove_punctuation: bool = field(default=False, metadata={"help": "remove punctuation from targets"})
    do_normalize_eval: bool = field(default=True, metadata={"help": "score normalized text (the leaderboard WER)"})


def parse_config_and_flags(parser, argv: list[str]):
    """Parse `[CONFIG.yaml|CONFIG.json] [--flag value ...]`: the file's settings, then the flags on top.

    The config file is the first argument that is not a `--key=value` flag (the `deepspeed` launcher puts
    `--local_rank=N` before it)."""
    import json

    import yaml

    argv = list(argv)
    first = next((i for i, arg in enumerate(argv) if not (arg.startswith("--") and "=" in arg)), None)
    if first is not None and argv[first].endswith((".yaml", ".yml", ".json")):
        path = argv.pop(first)
        with open(path, encoding="utf-8") as handle:
            settings = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
        from_file = []
        for key, value in (settings or {}).items():
            if value is None:
                continue
            values = value if isinstance(value, list) else [value]
            from_file += [f"--{key}", *(str(v) for v in values)]
        argv = from_file + argv
    return parser.parse_args_into_dataclasses(args=argv)
