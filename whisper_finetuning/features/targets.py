"""Training targets that keep Whisper's long-form skills: timestamp tokens, a previous-text prompt, and samples of
silence or noise with an empty transcript (issue: fine-tunes that forget timestamps after 100-200 steps).

The plain recipe gives every sample `<|startoftranscript|> <|xx|> <|transcribe|> <|notimestamps|> text
<|endoftext|>`. With `TargetSettings`, a chosen share of the samples instead get
- timestamps: `... <|transcribe|> <|t_start|> text <|t_end|> <|endoftext|>` (no `<|notimestamps|>`), the times on
  Whisper's 0.02 s grid where the clip's speech starts and ends (an energy trim, not the file's length with its
  silence), as Whisper's long-form decoding and subtitles read them;
- a prompt: `<|startofprev|> previous text` before `<|startoftranscript|>`, as Whisper conditions on the previous
  window's text; the collator leaves the prompt out of the loss (labels -100), as distil-whisper does;
- no speech: the clip's audio replaced by silence or noise of the same length, with an empty transcript, so the
  fine-tune learns to write nothing on it;
- a long-form window: the clip and the rows after it packed into one window of up to 30 s, a timestamp pair around
  each utterance (features/windows.py), as Whisper's own training data looks.
Which samples get what is drawn from (seed, pass, row): the same in every run and after a resume, whatever thread
prepares the sample. The token ids come from the tokenizer (its prefix tokens, `timestamp_ids()`,
`get_prompt_ids()`), so v2 and v3 vocabularies (whose ids differ) both work.
"""

from dataclasses import dataclass

import numpy as np

from ..data.audio import SAMPLING_RATE

TIME_PRECISION = 0.02  # seconds per timestamp token
LAST_TIMESTAMP = 30.0
# The energy trim: 20 ms frames; speech where a frame's RMS is within 35 dB of the clip's loudest frame (and above an
# absolute floor, so digital silence never counts).
TRIM_FRAME_SECONDS = 0.02
TRIM_RANGE_DB = 35.0
TRIM_FLOOR_RMS = 1e-4
MAX_PROMPT_TOKENS = 223  # Whisper's prompt limit: half the decoder's 448 positions, less <|startofprev|>
NO_SPEECH_KINDS = ("silence", "white noise", "pink noise", "brown noise")


@dataclass(frozen=True)
class TargetSettings:
    timestamp_probability: float = 0.0
    prompt_probability: float = 0.0
    no_speech_probability: float = 0.0
    seed: int = 0
    long_form_probability: float = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.timestamp_probability or self.prompt_probability or self.no_speech_probability or
                    self.long_form_probability)


@dataclass(frozen=True)
class SampleChoice:
    """What a training sample gets (drawn per (pass, row) by `choose`)."""

    timestamps: bool = False
    prompt: bool = False
    no_speech: str | None = None  # one of NO_SPEECH_KINDS, or None for the clip itself
    noise_seed: int = 0


def choose(settings: TargetSettings, key: tuple[int, ...]) -> SampleChoice:
    """The draws of one sample, from (seed, *key) alone."""
    generator = np.random.default_rng([settings.seed % 2**32, *(value % 2**32 for value in key), 29])
    no_speech, timestamps, prompt, kind = generator.random(4)
    if no_speech < settings.no_speech_probability:
        return SampleChoice(no_speech=NO_SPEECH_KINDS[int(kind * len(NO_SPEECH_KINDS))],
                            noise_seed=int(generator.integers(2**31)))
    return SampleChoice(timestamps=bool(timestamps < settings.timestamp_probability),
                        prompt=bool(prompt < settings.prompt_probability))


def starts_window(settings: TargetSettings, key: tuple[int, ...]) -> bool:
    """Whether the sample `key` (pass, row) starts a long-form window; a draw of its own, so turning windows on
    leaves every other draw of `choose` as it was."""
    generator = np.random.default_rng([settings.seed % 2**32, *(value % 2**32 for value in key), 31])
    return bool(generator.random() < settings.long_form_probability)


def speech_bounds(audio: np.ndarray) -> tuple[float, float] | None:
    """(start, end) in seconds of the clip's speech by an energy trim; None when it holds nothing above the floor."""
    frame = int(TRIM_FRAME_SECONDS * SAMPLING_RATE)
    count = len(audio) // frame
    if count == 0:
        return None
    rms = np.sqrt(np.mean(np.square(audio[:count * frame].reshape(count, frame), dtype=np.float64), axis=1))
    threshold = max(TRIM_FLOOR_RMS, float(rms.max()) * 10 ** (-TRIM_RANGE_DB / 20))
    loud = np.flatnonzero(rms > threshold)
    if loud.size == 0:
        return None
    return float(loud[0] * TRIM_FRAME_SECONDS), float((loud[-1] + 1) * TRIM_FRAME_SECONDS)


def no_speech_audio(kind: str, num_samples: int, seed: int) -> np.ndarray:
    """Silence or coloured noise at a random level from -60 to -30 dBFS RMS (room tone to a noisy room)."""
    if kind == "silence":
        return np.zeros(num_samples, np.float32)
    generator = np.random.default_rng(seed)
    white = generator.standard_normal(num_samples)
    if kind != "white noise":  # shape the spectrum: 1/f power (pink) or 1/f^2 (brown)
        spectrum = np.fft.rfft(white)
        frequencies = np.maximum(np.fft.rfftfreq(num_samples), 1.0 / max(num_samples, 1))
        spectrum /= frequencies ** (0.5 if kind == "pink noise" else 1.0)
        white = np.fft.irfft(spectrum, num_samples)
    level = 10 ** (generator.uniform(-60, -30) / 20)
    return (white * level / max(float(np.sqrt(np.mean(white ** 2))), 1e-12)).astype(np.float32)


def timestamp_token(tokenizer, seconds: float) -> int:
    """The timestamp token of a time, on the 0.02 s grid, from the tokenizer's own list (v2 and v3 ids differ)."""
    index = int(round(min(max(seconds, 0.0), LAST_TIMESTAMP) / TIME_PRECISION))
    return tokenizer.timestamp_ids(TIME_PRECISION)[index]


def build_labels(tokenizer, text: str, timestamps: tuple[float, float] | None = None, prompt: str | None = None,
                 max_length: int = 448) -> list[int]:
    """The label ids of one sample: [prompt] prefix [timestamp] text [timestamp] <|endoftext|>. The prefix is the
    tokenizer's (language and task as set on it), without <|notimestamps|> when `timestamps` are given. A prompt is
    cut to its last tokens so that the whole fits in `max_length`; it is dropped when nothing of it would fit."""
    if timestamps is not None:
        return timed_labels(tokenizer, [(*timestamps, text)], prompt, max_length)
    body = tokenizer(text, add_special_tokens=False).input_ids if text else []
    return with_prompt(tokenizer, [*tokenizer.prefix_tokens, *body, tokenizer.eos_token_id], prompt, max_length)


def timed_labels(tokenizer, segments: list[tuple[float, float, str]], prompt: str | None = None,
                 max_length: int = 448) -> list[int]:
    """[prompt] prefix, then `<|start|> text <|end|>` for each (start, end, text) segment, then <|endoftext|>: the
    labels of a clip with timestamps, or of a long-form window with one pair per utterance."""
    no_timestamps = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    labels = [token for token in tokenizer.prefix_tokens if token != no_timestamps]
    for start, end, text in segments:
        body = tokenizer(text, add_special_tokens=False).input_ids if text else []
        labels += [timestamp_token(tokenizer, start), *body, timestamp_token(tokenizer, max(end, start))]
    return with_prompt(tokenizer, [*labels, tokenizer.eos_token_id], prompt, max_length)


def with_prompt(tokenizer, labels: list[int], prompt: str | None, max_length: int) -> list[int]:
    """`<|startofprev|> prompt` before the labels, cut to its last tokens so that the whole fits in `max_length`."""
    if prompt and prompt.strip():
        prompt_ids = [int(token) for token in tokenizer.get_prompt_ids(prompt, return_tensors="np")]
        room = min(MAX_PROMPT_TOKENS, max_length - len(labels) - 1)
        if room > 0:
            labels = [prompt_ids[0], *prompt_ids[1:][-room:], *labels]
    return labels
