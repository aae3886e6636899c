"""The backend interface: a loaded Whisper model and the three ways the kit runs it (whisper_streaming's ASRBase).

- `transcribe_batch`: log-mel windows of up to 30 s, one per clip, into their texts (run_eval.py's short clips).
- `transcribe_long`: a recording of any length into timed segments, with Whisper's sequential long-form decoding and
  its guards (temperature fallback, no-speech skip), seeded: the same recording gives the same text in every run.
- `window_transcriber`: one window (up to 30 s) into words with start and end times (live captions).

The implementations (transformers_backend.py, ctranslate2_backend.py) are chosen by `load.load_backend`; callers never
ask which one they hold. Callers on several threads (the app's users) hold `lock` around every use.
"""

import threading
from dataclasses import dataclass

from normalizers import get_language

from ..features.targets import MAX_PROMPT_TOKENS
from ..loading import language_kwargs
from .words import WINDOW_SECONDS


class ModelFormatError(ValueError):
    """A folder that holds no model the kit can run, or one that cannot be loaded, with what to do instead."""


@dataclass
class Segment:
    start: float  # seconds
    end: float
    text: str  # as decoded (leading space kept)


@dataclass
class LongTranscript:
    segments: list[Segment]
    text: str  # the whole recording's text, stripped, as the engine decodes it (transformers: all tokens at once)


class Backend:
    """`model`: a transformers WhisperForConditionalGeneration or a faster_whisper.WhisperModel, with its
    `generation_config`; `processor`: its WhisperProcessor. `generate_kwargs` everywhere are in transformers' names:
    language (a code; absent or None: detected), task, prompt_ids (a list of ids from `prompt_ids`: a prompt before
    each clip, before the first window of a recording), and for batches num_beams, max_length, return_timestamps."""

    name = ""  # "transformers" or "ctranslate2": what results.json records
    drops_digital_silence = False  # run_eval.py drops digital silence before this backend's long-form decoding

    def __init__(self, model, processor, name_or_path: str | None = None):
        self.model = model
        self.processor = processor
        self.name_or_path = name_or_path or getattr(model, "name_or_path", "")
        self.lock = threading.Lock()

    @property
    def is_multilingual(self) -> bool:
        return bool(getattr(self.model.generation_config, "is_multilingual", True))

    def languages(self) -> list[str]:
        """The language codes the model knows, in Whisper's order (["en"] for English-only models)."""
        if not self.is_multilingual:
            return ["en"]
        tokens = getattr(self.model.generation_config, "lang_to_id", {})
        return [token.strip("<|>") for token in sorted(tokens, key=tokens.get)]

    def generate_kwargs(self, language: str | None, task: str = "transcribe", prompt: str = "") -> dict:
        """Language and task for the three operations; None detects the language (multilingual models). A `prompt`
        (domain words, names, a spelling to follow) conditions the decoding as previous text would."""
        if language is not None:
            language = get_language(language).code
        if language is None and self.is_multilingual:
            kwargs = {"task": task}
        else:
            kwargs = language_kwargs(self.model, language, task)
        if prompt.strip():
            kwargs["prompt_ids"] = self.prompt_ids(prompt)
        return kwargs

    def prompt_ids(self, prompt: str) -> list[int]:
        """transformers' prompt_ids of a text: <|startofprev|> and the text's tokens (with a leading space), cut to
        its last 223 tokens, Whisper's limit for previous text (half the decoder's positions, less one)."""
        ids = [int(token) for token in self.processor.get_prompt_ids(prompt.strip(), return_tensors="np")]
        return [ids[0], *ids[1:][-MAX_PROMPT_TOKENS:]]

    @property
    def compute_type(self) -> str:
        """The type the weights are computed in (float32, float16, int8, ...)."""
        raise NotImplementedError

    def check_generate_kwargs(self, generate_kwargs: dict) -> None:
        """Raise ValueError for options this backend cannot honour (before any work)."""

    def check_encoder_seconds(self, encoder_seconds: float) -> None:
        """Raise ValueError when this backend cannot shorten the encoder input to `encoder_seconds`."""

    def transcribe_batch(self, features, generate_kwargs: dict) -> list[str]:
        """The stripped texts of a batch of log-mel windows (a float32 tensor [clips, mel bins, 3000 frames])."""
        raise NotImplementedError

    def detect_languages(self, features) -> list[str]:
        """The language (a code) Whisper detects in each log-mel window of a batch (a float32 tensor [clips, mel
        bins, 3000 frames]); "en" for every clip of an English-only model."""
        raise NotImplementedError

    def transcribe_long(self, audio, generate_kwargs: dict, guards: dict | None = None,
                        progress=None) -> LongTranscript:
        """A recording (16 kHz mono) of any length into segments. `guards` (guards.LONG_FORM_GUARDS' keys) apply to
        the whole recording as given; None: the kit's defaults, LONG_FORM_GUARDS over 30 s, and a shorter recording
        decoded as one window, greedily. `progress(seconds)`, if given, is called as the decoding advances, with
        the seconds of audio done; an exception it raises abandons the recording."""
        raise NotImplementedError

    def window_transcriber(self, encoder_seconds: float = WINDOW_SECONDS):
        """`transcribe(audio, generate_kwargs, prompt="") -> words.WindowTranscript` for windows of up to 30 s, with
        the encoder input shortened to the buffer and 2 s of padding, at least `encoder_seconds` (where the backend
        can: check_encoder_seconds). Not thread-safe: use under `lock`."""
        raise NotImplementedError
