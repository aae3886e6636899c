"""Arguments of run_eval.py beyond the shared model and data ones (args.py)."""

from dataclasses import dataclass, field

from ..cards import COMMON_VOICE_HUB, FLEURS_HUB


@dataclass
class EvalArguments:
    split: str = field(default="test", metadata={"help": "'+'-separated split(s) to evaluate on"})
    common_voice_dir: str | None = field(default=None, metadata={
        "help": "local Common Voice release folder (its locale folders inside) instead of the Hub"})
    fleurs_dir: str | None = field(default=None, metadata={
        "help": "local FLEURS folder (one folder per config) instead of the Hub"})
    common_voice_dataset: str = field(default=COMMON_VOICE_HUB, metadata={
        "help": "the Common Voice release on the Hub, when no --common_voice_dir is given"})
    fleurs_dataset: str = field(default=FLEURS_HUB, metadata={"help": "FLEURS on the Hub"})
    detect_language: bool = field(default=False, metadata={
        "help": "let the model detect the language of each clip instead of forcing --language"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate on the first N samples only"})
    batch_size: int = field(default=16, metadata={"help": "clips per generate() call"})
    dtype: str = field(default="auto", metadata={
        "help": "auto (float16 on GPU, bfloat16 on CPUs with native bfloat16, else float32), float32, float16 or "
                "bfloat16"})
    num_beams: int = field(default=1, metadata={"help": "beam search width (1 = greedy)"})
    generation_max_length: int | None = field(default=None, metadata={
        "help": "most tokens to generate per 30 s window (default: the model's limit, 448)"})
    return_timestamps: bool = field(default=False, metadata={"help": "predict timestamp tokens"})
    output_dir: str = field(default="eval_results", metadata={
        "help": "where results.json, results.md, model_index.yaml and the predictions go"})
    push_to_hub: bool = field(default=False, metadata={"help": "merge the results into the model's card on the Hub"})
    hub_model_id: str | None = field(default=None, metadata={
        "help": "repo whose card to update (default: model_name_or_path)"})

    def __post_init__(self):
        for name in ("batch_size", "num_beams", "max_eval_samples", "generation_max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, not {value}")
