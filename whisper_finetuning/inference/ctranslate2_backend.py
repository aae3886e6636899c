"""Exported models (`python -m whisper_finetuning.export --to ctranslate2`) in the app and the stream command, run by
faster-whisper: the same two calls as the transformers path, a window of audio into timed words (words.py) and a
whole recording into segments (long_audio.py), so the streaming policy, the guards and the subtitles are shared.

- A window: encoded once, one greedy decode without timestamps capped at 8 tokens a second like words.py, word
  times from CTranslate2's cross-attention alignment of the alignment heads (OpenAI's method, as words.py; through
  faster-whisper's `find_alignment`), no skipping or fallback: the kit's guards judge the hypothesis with the
  no-speech probability and mean log-probability of the decode. (faster-whisper's `transcribe(word_timestamps=True)`
  would re-decode the audio after the last word as a new window: five encoder passes for a 20 s buffer, measured.)
- A shorter encoder input (`encoder_seconds`, opt-in, live captions only): the buffer plus 2 s of padding instead
  of the padded 30 s (whisper.cpp's audio_ctx; CTranslate2 accepts any even frame count and uses the first
  positional embeddings). The encoder is most of a step's cost: whisper-base int8 encoded 10 s in 0.5 s against 2.0 s
  for 30 s here (one thread). The model was trained on 30 s windows only: benchmarks/stream_replay.py measures the
  WER it costs.
- A recording: faster-whisper's sequential long-form decoding with run_eval.py's guards (export.ct2_transcriber
  translates their names), seeded.
"""

import functools

import numpy as np

from ..data.audio import SAMPLING_RATE
from ..evaluation.arguments import LONG_FORM_GUARDS
from ..export.ct2_transcriber import faster_whisper_guards
from ..features.log_mel import LogMelExtractor
from .words import TOKENS_PER_SECOND_LIMIT, WINDOW_SECONDS, WindowTranscript, Word, clip_long_words

HOP_LENGTH = 160  # samples per log-mel frame
ENCODER_PADDING_SECONDS = 2.0  # silence after the buffer in a shortened encoder input: where the speech ends

# faster-whisper's (and OpenAI's) defaults: punctuation joined to the word next to it.
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class CT2WordTranscriber:
    """words.WordTranscriber for a faster_whisper.WhisperModel (use under `InferenceModel.lock`)."""

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
    tokens it was decoded after, as OpenAI's find_alignment and words.py do (faster-whisper's own decodes have
    timestamps, so its alignment leaves the token out)."""
    from faster_whisper.tokenizer import Tokenizer

    class AfterNoTimestamps(Tokenizer):
        @property
        def sot_sequence(self) -> list[int]:
            return [*super().sot_sequence, self.no_timestamps]

    return AfterNoTimestamps


def ct2_long_form(loaded, audio: np.ndarray, generate_kwargs: dict) -> list[tuple[float, float, str]]:
    """(start, end, text) of each segment of a recording of any length."""
    import ctranslate2

    ctranslate2.set_random_seed(0)  # the temperature fallback samples: the same recording, the same text
    long = len(audio) > WINDOW_SECONDS * SAMPLING_RATE
    guards = faster_whisper_guards(LONG_FORM_GUARDS) if long else {"temperature": 0.0}
    segments, _ = loaded.model.transcribe(audio.astype(np.float32), language=generate_kwargs.get("language"),
                                          task=generate_kwargs.get("task") or "transcribe", beam_size=1,
                                          without_timestamps=False, **guards)
    return [(float(s.start), float(s.end), s.text.strip()) for s in segments]
