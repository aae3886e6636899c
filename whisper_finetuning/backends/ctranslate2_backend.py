"""The CTranslate2 backend: exports (`python -m whisper_finetuning.export --to ctranslate2`) run by faster-whisper's
engine in the type they were exported in, what will be deployed, with the same features (features.log_mel) and the
same three operations as the transformers backend, so a difference in the transcripts is the model's.

- A batch: `ctranslate2.models.Whisper.generate` on the stacked log-mel windows with one prompt per clip (the
  language detected per clip where none is forced). faster-whisper's `BatchedInferencePipeline` batches the chunks
  of ONE long recording; run_eval.py's many short clips need batches across clips.
- A recording: faster-whisper's sequential long-form `transcribe()` (OpenAI's temperature fallback and guards,
  their names translated by guards.faster_whisper_guards), seeded.
- A window into timed words (`CT2WordTranscriber`): encoded once, one greedy decode without timestamps capped at 8
  tokens a second like the transformers backend, word times from CTranslate2's cross-attention alignment of the
  alignment heads (OpenAI's method, as transformers_backend.WordTranscriber; through faster-whisper's
  `find_alignment`), no skipping or fallback: the live-caption guards judge the hypothesis with the no-speech
  probability and mean log-probability of the decode. (faster-whisper's `transcribe(word_timestamps=True)` would
  re-decode the audio after the last word as a new window: five encoder passes for a 20 s buffer, measured.)
- A shorter encoder input (`encoder_seconds`, opt-in, live captions only): the buffer plus 2 s of padding instead
  of the padded 30 s (whisper.cpp's audio_ctx; CTranslate2 accepts any even frame count and uses the first
  positional embeddings). The encoder is most of a step's cost: whisper-base int8 encoded 10 s in 0.5 s against 2.0 s
  for 30 s here (one thread). The model was trained on 30 s windows only: benchmarks/stream_replay.py measures the
  WER it costs.
"""

import functools
from typing import NamedTuple

import numpy as np
import torch

from ..data.audio import SAMPLING_RATE
from ..features.log_mel import LogMelExtractor
from .base import Backend, LongTranscript, ModelFormatError, Segment
from .guards import LONG_FORM_GUARDS, faster_whisper_guards
from .words import TOKENS_PER_SECOND_LIMIT, WINDOW_SECONDS, WindowTranscript, Word, clip_long_words

TEXT_POSITIONS = 448  # every Whisper decoder's length, prompt included (faster-whisper assumes it too)
GENERATE_OPTIONS = {"language", "task", "num_beams", "max_length", "return_timestamps", "prompt_ids"}
HOP_LENGTH = 160  # samples per log-mel frame
ENCODER_PADDING_SECONDS = 2.0  # silence after the buffer in a shortened encoder input: where the speech ends

# faster-whisper's (and OpenAI's) defaults: punctuation joined to the word next to it.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class Options(NamedTuple):
    """transformers' generate_kwargs as CTranslate2 takes them."""

    language: str | None  # None: detected per clip (multilingual models); English-only models take none
    task: str
    timestamps: bool
    beam_size: int
    max_new_tokens: int  # prompt included, as transformers' max_length
    prompt_ids: tuple[int, ...]  # <|startofprev|> and the prompt's tokens (Backend.prompt_ids), or ()


class CTranslate2Backend(Backend):
    """`model`: a faster_whisper.WhisperModel with the export's generation config as `model.generation_config` and the
    folder as `model.name_or_path`, where a transformers model keeps them (loading.language_kwargs reads them);
    `processor`: the export's WhisperProcessor. `generate_kwargs`: language, task, num_beams, max_length (prompt
    included, as in transformers), return_timestamps."""

    name = "ctranslate2"

    @classmethod
    def load(cls, export_dir: str, device: str | None = None, compute_type: str = "default",
             cpu_threads: int = 0) -> "CTranslate2Backend":
        """A folder written by `python -m whisper_finetuning.export`, on `device` (None: auto, a GPU where there is
        one). compute_type "default" runs the weights in the type they were exported in where the device can, else
        in the nearest one it can (float16 -> float32 on a CPU); `compute_type` says which."""
        from faster_whisper import WhisperModel
        from transformers import GenerationConfig, WhisperProcessor

        try:
            try:
                processor = WhisperProcessor.from_pretrained(export_dir)
                generation_config = GenerationConfig.from_pretrained(export_dir)
            except (OSError, ValueError) as error:
                raise OSError(f"{export_dir} lacks the processor files or generation config that the kit's export "
                              f"writes next to model.bin: export it with `python -m whisper_finetuning.export` "
                              f"({error})")
            model = WhisperModel(str(export_dir), device=device or "auto", compute_type=compute_type,
                                 cpu_threads=cpu_threads or torch.get_num_threads())
        except (OSError, ValueError, RuntimeError) as error:  # processor files missing, model.bin unreadable
            raise ModelFormatError(f"cannot load the CTranslate2 export {export_dir}: {error}") from error
        model.generation_config, model.name_or_path = generation_config, export_dir
        return cls(model, processor, export_dir)

    @property
    def compute_type(self) -> str:
        return self.model.model.compute_type

    def check_generate_kwargs(self, generate_kwargs: dict) -> None:
        unknown = set(generate_kwargs) - GENERATE_OPTIONS
        if unknown:
            raise ValueError(f"the CTranslate2 backend does not take {', '.join(sorted(unknown))}")
        language = self._options(generate_kwargs).language
        if language is not None and f"<|{language}|>" not in self.processor.tokenizer.get_vocab():
            raise ValueError(f"{language!r} is not a language of this model's tokenizer")

    def _options(self, generate_kwargs: dict) -> Options:
        multilingual = self.model.model.is_multilingual
        # Without max_length, transformers takes the generation config's: so do we.
        max_new_tokens = (generate_kwargs.get("max_length") or getattr(self.model.generation_config, "max_length", None)
                          or TEXT_POSITIONS)
        return Options(generate_kwargs.get("language") if multilingual else None,
                       generate_kwargs.get("task") or "transcribe", bool(generate_kwargs.get("return_timestamps")),
                       generate_kwargs.get("num_beams") or 1, max_new_tokens,
                       tuple(generate_kwargs.get("prompt_ids") or ()))

    def _prompt(self, language_token: str | None, options: Options) -> list[int]:
        """[<|startofprev|> prompt] <|startoftranscript|> [<|xx|> <|transcribe|>] [<|notimestamps|>], as transformers
        forces it."""
        tokenizer = self.processor.tokenizer
        prompt = [*options.prompt_ids, tokenizer.convert_tokens_to_ids("<|startoftranscript|>")]
        if self.model.model.is_multilingual:
            prompt += [tokenizer.convert_tokens_to_ids(language_token),
                       tokenizer.convert_tokens_to_ids(f"<|{options.task}|>")]
        if not options.timestamps:
            prompt.append(tokenizer.convert_tokens_to_ids("<|notimestamps|>"))
        return prompt

    def transcribe_batch(self, features: torch.Tensor, generate_kwargs: dict) -> list[str]:
        import ctranslate2

        options, whisper = self._options(generate_kwargs), self.model.model
        if whisper.is_multilingual and options.language is None:
            languages = [f"<|{code}|>" for code in self.detect_languages(features)]
        else:
            languages = [f"<|{options.language}|>" if options.language else None] * features.shape[0]
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy(), dtype=np.float32))
        prompts = [self._prompt(language, options) for language in languages]
        # transformers generates up to max_length new tokens, as far as the decoder's positions go. CTranslate2
        # generates at most max_length // 2 (OpenAI's sample_len of n_text_ctx // 2: models/whisper.cc), and stops
        # when the prompt less its first token and the new tokens reach max_length (measured): with a previous-text
        # prompt the second limit is the one that binds.
        new_tokens = min(options.max_new_tokens, TEXT_POSITIONS - len(prompts[0]))
        max_length = max(2 * new_tokens, len(prompts[0]) - 1 + new_tokens)
        results = whisper.generate(features, prompts, beam_size=options.beam_size, max_length=max_length)
        tokens = [result.sequences_ids[0] for result in results]
        return [text.strip() for text in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def detect_languages(self, features: torch.Tensor) -> list[str]:
        import ctranslate2

        if not self.model.model.is_multilingual:
            return ["en"] * features.shape[0]
        view = ctranslate2.StorageView.from_array(np.ascontiguousarray(features.numpy(), dtype=np.float32))
        return [scores[0][0].strip("<|>") for scores in self.model.model.detect_language(view)]

    def transcribe_long(self, audio: np.ndarray, generate_kwargs: dict, guards: dict | None = None,
                        progress=None) -> LongTranscript:
        import ctranslate2

        options = self._options(generate_kwargs)
        if guards is None and len(audio) <= WINDOW_SECONDS * SAMPLING_RATE:
            decoding = {"temperature": 0.0}
        else:
            decoding = faster_whisper_guards(LONG_FORM_GUARDS if guards is None else guards)
        ctranslate2.set_random_seed(0)  # the temperature fallback samples: the same recording, the same text
        found, _ = self.model.transcribe(np.asarray(audio, dtype=np.float32), language=options.language,
                                         task=options.task, beam_size=options.beam_size, without_timestamps=False,
                                         initial_prompt=list(options.prompt_ids[1:]) or None, **decoding)
        segments = []
        for segment in found:  # a generator: each window is decoded when asked for
            segments.append(Segment(float(segment.start), float(segment.end), segment.text))
            if progress is not None:
                progress(float(segment.end))
        return LongTranscript(segments, "".join(segment.text for segment in segments).strip())

    def window_transcriber(self, encoder_seconds: float = WINDOW_SECONDS) -> "CT2WordTranscriber":
        return CT2WordTranscriber(self, encoder_seconds)


class CT2WordTranscriber:
    """transformers_backend.WordTranscriber for a faster_whisper.WhisperModel (use under `Backend.lock`)."""

    def __init__(self, loaded, encoder_seconds: float = WINDOW_SECONDS):
        self.model = loaded.model
        self.log_mel = LogMelExtractor(loaded.processor.feature_extractor)  # the features the trained model saw
        self.encoder_seconds = encoder_seconds

    def __call__(self, audio: np.ndarray, generate_kwargs: dict, prompt: str = "") -> WindowTranscript:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import merge_punctuations

        if len(audio) > WINDOW_SECONDS * SAMPLING_RATE:
            raise ValueError(f"a window holds at most {WINDOW_SECONDS:.0f} s, got {len(audio) / SAMPLING_RATE:.1f} s")
        whisper = self.model.model  # ctranslate2.models.Whisper
        encoder_output = self.model.encode(self.encoder_input(audio))
        language = generate_kwargs.get("language")
        if not whisper.is_multilingual:
            language = "en"
        elif language is None:
            language = whisper.detect_language(encoder_output)[0][0][0].strip("<|>")
        task = generate_kwargs.get("task") or "transcribe"
        tokenizer = Tokenizer(self.model.hf_tokenizer, whisper.is_multilingual, task=task, language=language)
        previous = tokenizer.encode(" " + prompt.strip()) if prompt.strip() else []
        request = self.model.get_prompt(tokenizer, previous, without_timestamps=True)
        max_new_tokens = int(TOKENS_PER_SECOND_LIMIT * len(audio) / SAMPLING_RATE) + 8
        result = whisper.generate(encoder_output, [request], beam_size=1, return_scores=True,
                                  return_no_speech_prob=True,
                                  max_length=min(len(request) + max_new_tokens, self.model.max_length))[0]
        text_tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        # The score is the sum of log-probabilities over the length (length_penalty 1); faster-whisper's mean
        # counts the end token too.
        avg_logprob = result.scores[0] * len(result.sequences_ids[0]) / (len(result.sequences_ids[0]) + 1)
        words = []
        if text_tokens:
            aligner = aligning_tokenizer()(self.model.hf_tokenizer, whisper.is_multilingual, task=task,
                                           language=language)
            alignment = self.model.find_alignment(aligner, [text_tokens], encoder_output,
                                                  mel_frames(len(audio)))[0]
            merge_punctuations(alignment, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
            words = clip_long_words([Word(w["word"], round(float(w["start"]), 3), round(float(w["end"]), 3))
                                     for w in alignment if w["word"]])
        return WindowTranscript(words, language, no_speech_prob=float(result.no_speech_prob),
                                avg_logprob=float(avg_logprob), truncated=len(text_tokens) >= max_new_tokens)

    def encoder_input(self, audio: np.ndarray) -> np.ndarray:
        """The log-mel features of the padded 30 s window, or of their first `encoder_frames` frames."""
        features = self.log_mel(audio)
        return np.ascontiguousarray(features[:, :encoder_frames(len(audio), self.encoder_seconds)])


def encoder_frames(num_samples: int, encoder_seconds: float) -> int:
    """Log-mel frames the encoder sees for a buffer: the buffer and ENCODER_PADDING_SECONDS of padding, at least
    `encoder_seconds`, at most the 30 s window; an even count (the encoder's second convolution halves it)."""
    seconds = max(num_samples / SAMPLING_RATE + ENCODER_PADDING_SECONDS, encoder_seconds)
    frames = int(np.ceil(min(seconds, WINDOW_SECONDS) * SAMPLING_RATE / HOP_LENGTH))
    return frames + frames % 2


def mel_frames(num_samples: int) -> int:
    """CTranslate2's align() takes the audio's length in log-mel frames (10 ms; the encoder halves them), as
    faster-whisper passes it."""
    return int(np.ceil(num_samples / HOP_LENGTH))


@functools.cache
def aligning_tokenizer():
    """faster-whisper's Tokenizer whose start sequence ends with <|notimestamps|>: the text is aligned after the
    tokens it was decoded after, as OpenAI's find_alignment and WordTranscriber do (faster-whisper's own decodes have
    timestamps, so its alignment leaves the token out)."""
    from faster_whisper.tokenizer import Tokenizer

    class AfterNoTimestamps(Tokenizer):
        @property
        def sot_sequence(self) -> list[int]:
            return [*super().sot_sequence, self.no_timestamps]

    return AfterNoTimestamps
