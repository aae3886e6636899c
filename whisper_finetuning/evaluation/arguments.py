"""Arguments of run_eval.py beyond the shared model and data ones (args.py)."""

import math
from dataclasses import dataclass, field

from ..backends.guards import LONG_FORM_GUARDS
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
    backend: str = field(default="auto", metadata={"choices": ["auto", "transformers", "ctranslate2"], "help":
        "auto: by what --model_name_or_path is (a CTranslate2 export: ctranslate2, anything else: transformers); "
        "transformers: the checkpoint run by PyTorch; ctranslate2: a folder written by `python -m "
        "whisper_finetuning.export --to ctranslate2`, run by CTranslate2 (faster-whisper's engine) batched across "
        "clips, in the type it was exported in (--dtype does not apply): evaluates exactly what is deployed"})
    num_beams: int = field(default=1, metadata={"help": "beam search width (1 = greedy)"})
    generation_max_length: int | None = field(default=None, metadata={
        "help": "most tokens to generate per 30 s window (default: the model's limit, 448)"})
    return_timestamps: bool = field(default=False, metadata={"help": "predict timestamp tokens"})
    max_duration_in_seconds: float = field(default=3600.0, metadata={
        "help": "skip (and count) longer clips. Clips over 30 s are transcribed with Whisper's long-form decoding, "
                "one 30 s window after another, after dropping stretches of digital silence; raise this to evaluate "
                "longer recordings"})
    temperature: list[float] = field(default_factory=lambda: list(LONG_FORM_GUARDS["temperature"]), metadata={
        "help": "long-form clips (over 30 s): each window is decoded at the first temperature (0 = greedy), and "
                "again at the next ones while it fails the compression-ratio or log-probability check (OpenAI's "
                "temperature fallback). Give one value (0) to turn the fallback off. Clips up to 30 s are always "
                "decoded greedily or with --num_beams, as the leaderboard does"})
    compression_ratio_threshold: float = field(default=LONG_FORM_GUARDS["compression_ratio_threshold"], metadata={
        "help": "long-form: a window whose tokens zlib-compress by more than this repeats itself and is decoded "
                "again at the next temperature (transformers measures it on tokens, for which its documentation "
                "gives 1.35; OpenAI's 2.4 is on text; inf turns the check off)"})
    logprob_threshold: float = field(default=LONG_FORM_GUARDS["logprob_threshold"], metadata={
        "help": "long-form: a window whose tokens have a lower average log-probability is decoded again at the "
                "next temperature (OpenAI's default; -inf turns the check off, and with it the no-speech skip)"})
    no_speech_threshold: float = field(default=LONG_FORM_GUARDS["no_speech_threshold"], metadata={
        "help": "long-form: a window whose no-speech probability is above this and whose average log-probability "
                "is below --logprob_threshold is taken as silence and left out (OpenAI's default; 1 turns it off)"})
    condition_on_prev_tokens: bool = field(default=LONG_FORM_GUARDS["condition_on_prev_tokens"], metadata={
        "help": "long-form: give each window the text of the previous one as a prompt (OpenAI's "
                "condition_on_previous_text, on by default there; dropped after a window decoded at temperature 0.5 "
                "or more). Off by default: a word made up in silence then spreads to the windows after it"})
    prompt: str = field(default="", metadata={
        "help": "text given to the model before each clip (and before the first window of a long recording) as "
                "previous text: domain words, names, a spelling to follow. Results with a prompt are not comparable "
                "with results without one: results.json records it"})
    long_form: bool = field(default=False, metadata={
        "help": "also score long-form transcription: the first --long_form_max_clips clips of each dataset joined "
                "into recordings (--clips_per_recording each, pauses of 0.3-1.5 s and one of 8 s) and decoded as the "
                "app's File tab decodes: long-form WER, cue-start error (median, p90 s), cues outside the audio, "
                "and the words written on 60 s of silence and of noise (docs/evaluation.md)"})
    long_form_max_clips: int = field(default=120, metadata={"help": "--long_form: clips joined per dataset"})
    clips_per_recording: int = field(default=12, metadata={"help": "--long_form: clips per joined recording"})
    output_dir: str = field(default="eval_results", metadata={
        "help": "where results.json, results.md, model_index.yaml and the predictions go"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "replace the results of another model (or revision) in output_dir; without it such a folder is "
                "refused (the same model's earlier results are always replaced)"})
    push_to_hub: bool = field(default=False, metadata={"help": "merge the results into the model's card on the Hub"})
    hub_model_id: str | None = field(default=None, metadata={
        "help": "repo whose card to update (default: model_name_or_path)"})

    def __post_init__(self):
        for name in ("batch_size", "num_beams", "max_eval_samples", "generation_max_length", "long_form_max_clips",
                     "clips_per_recording"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, not {value}")
        # `not x > 0` (rather than `x <= 0`) also refuses nan, which compares false with everything.
        if not self.max_duration_in_seconds > 0:
            raise ValueError(f"--max_duration_in_seconds must be more than 0, not {self.max_duration_in_seconds}")
        if not self.temperature or not all(0 <= t < math.inf for t in self.temperature):
            raise ValueError(f"--temperature needs one or more finite values of 0 or more, not {self.temperature}")
        if not self.compression_ratio_threshold > 0:
            raise ValueError(f"--compression_ratio_threshold must be more than 0 (inf: off), not "
                             f"{self.compression_ratio_threshold}")
        if not self.logprob_threshold <= 0:  # an average log-probability is never above 0
            raise ValueError(f"--logprob_threshold must be 0 or less (-inf: off), not {self.logprob_threshold}")
        if not 0 <= self.no_speech_threshold <= 1:
            raise ValueError(f"--no_speech_threshold is a probability between 0 and 1 (1: off), not "
                             f"{self.no_speech_threshold}")

    def long_form_kwargs(self) -> dict:
        """generate() arguments for clips over 30 s: Whisper's guards against hallucination and repetition."""
        return {"temperature": tuple(self.temperature), "compression_ratio_threshold": self.compression_ratio_threshold,
                "logprob_threshold": self.logprob_threshold, "no_speech_threshold": self.no_speech_threshold,
                "condition_on_prev_tokens": self.condition_on_prev_tokens}
