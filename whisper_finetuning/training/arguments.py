"""Arguments of the fine-tuning script beyond the shared ones (args.py) and Seq2SeqTrainingArguments."""

from dataclasses import dataclass, field

from normalizers import get_language

from ..data.mixing import STOPPING_STRATEGIES


@dataclass
class FineTuningArguments:
    freeze_encoder: bool = field(default=False, metadata={"help": "train the decoder only"})
    freeze_feature_encoder: bool = field(default=False, metadata={
        "help": "freeze the convolutional front-end of the encoder (conv1, conv2)"})
    apply_spec_augment: bool = field(default=False, metadata={
        "help": "SpecAugment: mask time steps and mel channels of the input features (the model's own option)"})
    mask_time_prob: float = field(default=0.05, metadata={"help": "SpecAugment: share of time steps masked"})
    mask_time_length: int = field(default=10, metadata={"help": "SpecAugment: length of each time mask"})
    mask_feature_prob: float = field(default=0.0, metadata={"help": "SpecAugment: share of mel channels masked"})
    mask_feature_length: int = field(default=10, metadata={"help": "SpecAugment: width of each channel mask"})
    dropout: float = field(default=0.0, metadata={"help": "dropout probability of the transformer layers"})
    use_peft: bool = field(default=False, metadata={
        "help": "train a LoRA adapter (peft) instead of all weights: checkpoints and the final save hold the adapter "
                "only; run_eval.py, the export and the app load it with its base model"})
    lora_r: int = field(default=32, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=64, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch"})
    lora_target_modules: str = field(default="q_proj,k_proj,v_proj,out_proj", metadata={
        "help": "comma-separated module names that get adapters (the attention projections by default), or "
                "all-linear"})
    load_in_8bit: bool = field(default=False, metadata={
        "help": "with --use_peft on a GPU: keep the frozen base model in 8 bits (bitsandbytes)"})
    load_in_4bit: bool = field(default=False, metadata={
        "help": "with --use_peft on a GPU: keep the frozen base model in 4 bits (bitsandbytes NF4)"})
    auto_resume: bool = field(default=True, metadata={
        "help": "resume from the newest complete checkpoint in output_dir when --resume_from_checkpoint is not given"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "replace the run in output_dir (its checkpoints and files are removed) instead of resuming it; a "
                "rerun with other arguments is refused without this"})
    resume_requires_optimizer_state: bool = field(default=True, metadata={
        "help": "resume only from checkpoints with optimizer, scheduler and random states; set false to resume from "
                "weights alone (the learning-rate schedule then restarts)"})
    skip_nonfinite_steps: int = field(default=0, metadata={
        "help": "skip up to N optimizer steps whose loss or gradient is nan/inf (their gradients are dropped) before "
                "stopping; 0 stops at the first, naming the step and the last good checkpoint"})
    min_loss_scale: float = field(default=1.0, metadata={
        "help": "fp16: stop when the loss scaler's scale falls below this (its overflow steps are skipped and "
                "counted, not errors; the scale collapsing means the gradients overflow at every scale)"})
    max_consecutive_overflow_steps: int = field(default=20, metadata={
        "help": "fp16: stop when this many optimizer steps in a row overflowed (each one the scaler skipped)"})
    model_index_name: str | None = field(default=None, metadata={"help": "the model's name in the model card"})
    model_card_tags: str = field(default="whisper-event,hf-asr-leaderboard",
                                 metadata={"help": "comma-separated tags for the model card"})

    def __post_init__(self):
        if (self.load_in_8bit or self.load_in_4bit) and not self.use_peft:
            raise ValueError("--load_in_8bit/--load_in_4bit freeze the base model: use them with --use_peft")
        if self.load_in_8bit and self.load_in_4bit:
            raise ValueError("choose one of --load_in_8bit and --load_in_4bit")
        if self.use_peft and self.lora_r < 1:
            raise ValueError(f"--lora_r must be at least 1, not {self.lora_r}")
        if self.skip_nonfinite_steps < 0:
            raise ValueError(f"--skip_nonfinite_steps must be 0 or more, not {self.skip_nonfinite_steps}")
        if self.max_consecutive_overflow_steps < 1:
            raise ValueError("--max_consecutive_overflow_steps must be at least 1, not "
                             f"{self.max_consecutive_overflow_steps}")


@dataclass
class TrainingDataArguments:
    train_split_name: str = field(default="train", metadata={"help": "'+'-separated, e.g. train+validation"})
    train_probabilities: str | None = field(default=None, metadata={
        "help": "'+'-separated sampling weights or sample counts of the datasets, e.g. 0.7+0.3"})
    stopping_strategy: str = field(default="all_exhausted_without_replacement", metadata={
        "help": "all_exhausted_without_replacement (every sample once per pass), first_exhausted, all_exhausted"})
    shuffle_buffer_size: int = field(default=500, metadata={"help": "rows in the streaming shuffle buffer"})
    max_train_samples: int | None = field(default=None, metadata={
        "help": "use only this many training rows per pass (over all processes together)"})
    feature_cache_dir: str | None = field(default=None, metadata={
        "help": "read training features from this cache (python -m whisper_finetuning.features.cache), or build it "
                "there first if it does not exist; audio is then never decoded again"})
    augmentation_config: str | None = field(default=None, metadata={
        "help": "augment the training audio on the fly with the transforms in this YAML/JSON file (e.g. "
                "configs/augmentation/noise.yaml: noise, speed, pitch, gain, rooms, telephone, each with its own "
                "probability and ranges), seeded by --seed and the sample's (pass, row), so a resumed run augments "
                "every sample as before. Evaluation audio is never augmented. SpecAugment (--apply_spec_augment, "
                "--mask_time_prob, ...) masks the log-mel of the augmented audio on top. Needs the augment extra; "
                "not with --feature_cache_dir"})
    timestamp_probability: float = field(default=0.0, metadata={
        "help": "share of training samples whose labels carry Whisper's timestamp tokens (<|t_start|> text <|t_end|>, "
                "the times of the clip's speech by an energy trim) instead of <|notimestamps|>: keeps the timestamps "
                "that long-form transcription and subtitles need (distil-whisper used 0.2). Not with "
                "--feature_cache_dir"})
    prompt_probability: float = field(default=0.0, metadata={
        "help": "share of training samples given the previous row's text (same dataset) as a <|startofprev|> "
                "prompt, left out of the loss: keeps conditioning on previous text (distil-whisper used 0.1)"})
    no_speech_probability: float = field(default=0.0, metadata={
        "help": "share of training samples whose audio is replaced by silence or noise (white, pink, brown; -60 to "
                "-30 dBFS) with an empty transcript, so the fine-tune learns to write nothing on them"})
    long_form_probability: float = field(default=0.0, metadata={
        "help": "share of training rows that start a long-form window: the row and the rows after it from the same "
                "dataset packed into one sample of up to 30 s, with pauses and a timestamp pair around each utterance "
                "(as Whisper's own training data looks), so the fine-tune keeps transcribing long recordings"})
    eval_dataset_name: str | None = field(default=None, metadata={"help": "'+'-separated (default: dataset_name)"})
    eval_dataset_config_name: str | None = field(default=None, metadata={
        "help": "'+'-separated (default: dataset_config_name)"})
    eval_split_name: str = field(default="test", metadata={"help": "'+'-separated split(s) to evaluate on"})
    eval_text_column_name: str | None = field(default=None, metadata={"help": "default: text_column_name"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate on the first N samples only"})
    eval_min_duration_in_seconds: float = field(default=0.0, metadata={"help": "skip shorter evaluation clips"})
    eval_max_duration_in_seconds: float = field(default=30.0, metadata={
        "help": "skip (and count) longer evaluation clips (run_eval.py transcribes them in full)"})
    do_normalize_eval: bool = field(default=True, metadata={
        "help": "score normalized text (the leaderboard WER) rather than the raw transcripts"})

    def __post_init__(self):
        if self.stopping_strategy not in STOPPING_STRATEGIES:
            raise ValueError(f"--stopping_strategy must be one of {', '.join(STOPPING_STRATEGIES)}, "
                             f"not {self.stopping_strategy!r}")
        if self.augmentation_config and self.feature_cache_dir:
            raise ValueError("--augmentation_config and --feature_cache_dir do not go together: the feature cache "
                             "holds features of the clean audio, computed once, while augmentation draws new audio "
                             "for every pass. Drop --feature_cache_dir to augment, or drop --augmentation_config to "
                             "train on the cache")
        for name in ("timestamp_probability", "prompt_probability", "no_speech_probability", "long_form_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name} must be in [0, 1], not {getattr(self, name)}")
        if self.feature_cache_dir and (self.timestamp_probability or self.prompt_probability or
                                       self.no_speech_probability or self.long_form_probability):
            raise ValueError("--timestamp_probability, --prompt_probability, --no_speech_probability and "
                             "--long_form_probability draw each sample's targets per pass, which the feature cache "
                             "(labels computed once) cannot hold: drop --feature_cache_dir or set them to 0")
        for name in ("shuffle_buffer_size", "max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, not {value}")


@dataclass
class RetentionArguments:
    """The forgetting guard: what the base model knew, measured before and during fine-tuning, and replay."""

    retention_dataset_name: str | None = field(default=None, metadata={
        "help": "'+'-separated datasets the model should keep transcribing well (e.g. the base language), evaluated "
                "at every evaluation and once with the base model before training"})
    retention_dataset_config_name: str | None = field(default=None, metadata={"help": "'+'-separated configs"})
    retention_split_name: str = field(default="test", metadata={"help": "'+'-separated splits"})
    retention_text_column_name: str | None = field(default=None, metadata={"help": "'+'-separated text columns"})
    retention_language: str | None = field(default=None, metadata={
        "help": "'+'-separated Whisper languages of the retention datasets, one per dataset or one for all"})
    max_retention_samples: int | None = field(default=None, metadata={
        "help": "evaluate on the first N samples of each retention dataset"})
    retention_max_degradation: float = field(default=5.0, metadata={
        "help": "warn when a retention WER rises more than this many points above the base model's"})
    long_form_eval_clips: int = field(default=0, metadata={
        "help": "at every evaluation, and once with the base model: join the evaluation set's first N clips into "
                "recordings of 12 (with pauses, one of 8 s) and decode them long-form with 30 s of silence and of "
                "noise; report long-form WER, cue-start error and words on silence and noise as eval_long_form_*, "
                "warn when they fall behind the base model's, and put them in the model card (0: off)"})
    replay_dataset_name: str | None = field(default=None, metadata={
        "help": "'+'-separated datasets mixed into the training stream to keep what the base model knew"})
    replay_dataset_config_name: str | None = field(default=None, metadata={"help": "'+'-separated configs"})
    replay_split_name: str = field(default="train", metadata={"help": "'+'-separated splits"})
    replay_text_column_name: str | None = field(default=None, metadata={"help": "'+'-separated text columns"})
    replay_language: str | None = field(default=None, metadata={
        "help": "'+'-separated Whisper languages of the replay datasets (their labels get that language's token)"})
    replay_probability: float = field(default=0.0, metadata={
        "help": "share of training samples drawn from the replay datasets (0 = no replay)"})

    def __post_init__(self):
        self.retention_language = canonical_languages(self.retention_language)
        self.replay_language = canonical_languages(self.replay_language)
        if self.retention_dataset_name and not self.retention_language:
            raise ValueError("give --retention_language (the language of the retention datasets, e.g. en)")
        if not 0 <= self.replay_probability < 1:
            raise ValueError(f"--replay_probability must be in [0, 1), not {self.replay_probability}")
        if self.replay_probability and not (self.replay_dataset_name and self.replay_language):
            raise ValueError("--replay_probability needs --replay_dataset_name and --replay_language")
        if self.long_form_eval_clips < 0:
            raise ValueError(f"--long_form_eval_clips must be 0 (off) or more, not {self.long_form_eval_clips}")
        if self.max_retention_samples is not None and self.max_retention_samples < 1:
            raise ValueError(f"--max_retention_samples must be at least 1, not {self.max_retention_samples}")


def canonical_languages(languages: str | None) -> str | None:
    """A '+' list of languages as codes ("english+swedish" -> "en+sv")."""
    if not languages:
        return None
    return "+".join(get_language(language).code for language in languages.split("+"))
