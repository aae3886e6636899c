"""Batched transcription with CTranslate2 (the engine of faster-whisper): evaluating exactly what is deployed.

A subclass of evaluation.transcriber.Transcriber: the same call interface, audio decoding, batching by length,
skips, stop and throughput, and the same log-mel features (features.log_mel), so a difference in the transcripts is
the model's. faster-whisper's `BatchedInferencePipeline` batches the chunks of ONE long recording; for many short
clips we call `ctranslate2.models.Whisper.generate` on a stacked batch of features with one prompt per clip. Clips
over 30 s go through faster-whisper's long-form `transcribe()` (OpenAI's temperature fallback and guards).
"""

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.audio import SAMPLING_RATE
from ..evaluation.arguments import LONG_FORM_GUARDS
from ..evaluation.transcriber import Stopped, Transcriber

logger = logging.getLogger(__name__)

# faster-whisper (like OpenAI) measures the compression ratio of a window's text; transformers, whose guards the
# kit's options describe, measures it on token ids, where 1.35 stands for OpenAI's 2.4 on text.
TEXT_COMPRESSION_RATIO = 2.4
TEXT_POSITIONS = 448  # every Whisper decoder's length, prompt included (faster-whisper assumes it too)


def load_ctranslate2(export_dir: str, device: str = "auto", compute_type: str = "default", cpu_threads: int = 0):
    """(faster_whisper.WhisperModel, WhisperProcessor) of a folder written by `python -m whisper_finetuning.export`.
    compute_type "default" runs the weights in the type they were exported in where the device can, else in the
    nearest one it can (float16 -> float32 on a CPU); `model.model.compute_type` says which. The export's generation
    config comes along as `model.generation_config` and the folder as `model.name_or_path`, where a transformers
    model keeps them (loading.language_kwargs and the transcriber read them)."""
    from faster_whisper import WhisperModel
    from transformers import GenerationConfig, WhisperProcessor

    try:
        processor = WhisperProcessor.from_pretrained(export_dir)
        generation_config = GenerationConfig.from_pretrained(export_dir)
    except (OSError, ValueError) as error:
        raise OSError(f"{export_dir} lacks the processor files or generation config that the kit's export writes "
                      f"next to model.bin: export it with `python -m whisper_finetuning.export` ({error})")
    model = WhisperModel(str(export_dir), device=device, compute_type=compute_type,
                         cpu_threads=cpu_threads or torch.get_num_threads())
    model.generation_config, model.name_or_path = generation_config, export_dir
    return model, processor


def faster_whisper_guards(guards: dict) -> dict:
    """The kit's long-form guards (transformers' generate() names) as faster-whisper's transcribe() arguments."""
    ratio = guards["compression_ratio_threshold"]
    if math.isfinite(ratio) and ratio != LONG_FORM_GUARDS["compression_ratio_threshold"]:
        logger.warning("The CTranslate2 backend measures the compression ratio on text, with OpenAI's threshold "
                       "%.1f; --compression_ratio_threshold %g (on token ids) is not used (inf turns the check off)",
                       TEXT_COMPRESSION_RATIO, ratio)
    return {"temperature": list(guards["temperature"]),
            "compression_ratio_threshold": ratio if math.isinf(ratio) else TEXT_COMPRESSION_RATIO,
            "log_prob_threshold": guards["logprob_threshold"], "no_speech_threshold": guards["no_speech_threshold"],
            "condition_on_previous_text": guards["condition_on_prev_tokens"]}


@dataclass
class CT2Transcriber(Transcriber):
    """`model`: a faster_whisper.WhisperModel and `processor` the export's WhisperProcessor (from `load_ctranslate2`);
    `generate_kwargs` in transformers' names, as run_eval.py builds them: language (a code; absent or None: detected
    per clip), task, num_beams, max_length (prompt included, as in transformers), return_timestamps."""

    def __post_init__(self):
        tokenizer = self.processor.tokenizer
        kwargs = self.generate_kwargs
        unknown = set(kwargs) - {"language", "task", "num_beams", "max_length", "return_timestamps"}
        if unknown:
            raise ValueError(f"the CTranslate2 backend does not take {', '.join(sorted(unknown))}")
        self.multilingual = self.model.model.is_multilingual
        self.language = kwargs.get("language") if self.multilingual else None
        if self.language is not None and f"<|{self.language}|>" not in tokenizer.get_vocab():
            raise ValueError(f"{self.language!r} is not a language of this model's tokenizer")
        self.task = kwargs.get("task") or "transcribe"
        self.task_token = tokenizer.convert_tokens_to_ids(f"<|{self.task}|>") if self.multilingual else None
        self.timestamps = bool(kwargs.get("return_timestamps"))
        self.beam_size = kwargs.get("num_beams") or 1
        # Without max_length, transformers takes the generation config's: so do we.
        self.max_new_tokens = (kwargs.get("max_length") or getattr(self.model.generation_config, "max_length", None)
                               or TEXT_POSITIONS)
        super().__post_init__()  # the warm-up runs _generate

    def _prompt(self, language_token: str | None) -> list[int]:
        """<|startoftranscript|> [<|xx|> <|transcribe|>] [<|notimestamps|>], as transformers forces it."""
        tokenizer = self.processor.tokenizer
        prompt = [tokenizer.convert_tokens_to_ids("<|startoftranscript|>")]
        if self.multilingual:
            prompt += [tokenizer.convert_tokens_to_ids(language_token), self.task_token]
        if not self.timestamps:
            prompt.append(tokenizer.convert_tokens_to_ids("<|notimestamps|>"))
        return prompt

    def _generate(self, features: torch.Tensor, **extra) -> list[str]:
        import ctranslate2

        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy(), dtype=np.float32))
        if self.multilingual and self.language is None:
            languages = [scores[0][0] for scores in self.model.model.detect_language(features)]
        else:
            languages = [f"<|{self.language}|>" if self.language else None] * features.shape[0]
        prompts = [self._prompt(language) for language in languages]
        # transformers generates up to max_length new tokens, as far as the decoder's positions go; CTranslate2
        # generates max_length // 2 (OpenAI's sample_len of n_text_ctx // 2: models/whisper.cc), hence the 2 *.
        new_tokens = min(self.max_new_tokens, TEXT_POSITIONS - len(prompts[0]))
        results = self.model.model.generate(features, prompts, beam_size=self.beam_size, max_length=2 * new_tokens)
        tokens = [result.sequences_ids[0] for result in results]
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def _long_form(self, row: dict, samples: np.ndarray) -> str:
        import ctranslate2

        ctranslate2.set_random_seed(0)  # the temperature fallback samples: the same text for a clip in every run
        seconds = len(samples) / SAMPLING_RATE
        segments, _ = self.model.transcribe(samples, language=self.language, task=self.task,
                                            beam_size=self.beam_size, without_timestamps=False,
                                            **faster_whisper_guards(self.long_form_kwargs))
        texts = []
        with tqdm(total=round(seconds, 1), desc=f"long-form {row.get('id') or ''}".strip(), unit=" audio s",
                  leave=False) as progress:
            for segment in segments:  # a generator: each window is decoded when asked for
                if self.stop.is_set():
                    raise Stopped
                texts.append(segment.text)
                progress.update(round(min(segment.end, seconds), 1) - progress.n)
        return "".join(texts).strip()
