"""Live captions: the streaming transcriber, fed audio as it arrives and asked to make progress when it can.

Policy (whisper_streaming's, on a fine-tuned Hugging Face checkpoint):
- Every step the whole audio buffer is transcribed again, with the committed text before the buffer as the
  prompt. A word is committed when two consecutive transcriptions agree on it (LocalAgreement-2, agreement.py);
  the rest is the partial text, shown differently and rewritten freely.
- A step is the audio that arrived while the model worked, at least `min_step` seconds. When the model is slower
  than real time the step grows (visible in every update); past `max_pending` seconds the oldest audio is dropped,
  with a warning. The lag figure is the clock now minus the arrival time of the newest audio transcribed.
- Voice activity gates the model: a buffer without speech is not transcribed (no "Thank you." on silence, no
  computation), and once speech has been followed by `end_of_speech` seconds of silence the newest transcription,
  which saw the whole utterance, is committed as it is and the buffer restarts.
- The buffer is cut at the end of the last committed sentence (or word) once it is longer than `trim_after`
  seconds, and it never grows past `max_buffer` (< 30 s, the model's window): at that point the newest
  transcription is committed as it is, with a warning.
- Hypotheses that look like repetition loops or text on noise are thrown away (guards.py) and counted.
"""

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..backends.words import SENTENCE_END, WindowTranscript, Word
from ..backends.words import WINDOW_SECONDS as MODEL_WINDOW_SECONDS
from ..data.audio import SAMPLING_RATE
from .agreement import LocalAgreement
from .guards import Guards
from .vad import WINDOW_SECONDS, VoiceActivity

LEAD_IN_SECONDS = 0.5  # audio kept before speech when a silent buffer is emptied
# A live prompt's share of the decoder: with the committed text (prompt_chars) and a 25 s buffer's tokens it stays
# within Whisper's 448 positions.
LIVE_PROMPT_TOKENS = 100


@dataclass
class StreamSettings:
    min_step: float = field(default=1.0, metadata={"help": "Seconds of new audio to wait for before the buffer is "
                                                   "transcribed again (the chunk size)."})
    trim_after: float = field(default=12.0, metadata={"help": "Cut the buffer at the last committed sentence end "
                                                      "once it is longer than this many seconds."})
    max_buffer: float = field(default=25.0, metadata={"help": "Never let the buffer grow past this (below the "
                                                      "model's 30 s window)."})
    max_pending: float = field(default=10.0, metadata={"help": "Drop audio that has waited longer than this many "
                                                       "seconds because the model is slower than real time."})
    end_of_speech: float = field(default=0.8, metadata={"help": "Seconds of silence after speech that end an "
                                                        "utterance: its pending words are committed."})
    prompt_chars: int = field(default=200, metadata={"help": "Characters of committed text given as the prompt."})
    agreement: int = field(default=2, metadata={"help": "How many consecutive transcriptions must agree on a word "
                                                "(LocalAgreement-n)."})
    encoder_seconds: float = field(default=MODEL_WINDOW_SECONDS, metadata={
        "help": "CTranslate2 exports: the encoder sees the buffer plus 2 s of padding, at least this many seconds, "
                "instead of the padded 30 s window it was trained on (whisper.cpp's audio_ctx). Shorter is faster "
                "and lowers latency; it costs some accuracy: benchmarks/stream_replay.py measures both."})

    def __post_init__(self):
        if not 0 < self.min_step <= self.max_pending:
            raise ValueError(f"need 0 < min_step <= max_pending, got {self.min_step} and {self.max_pending}")
        if not self.trim_after < self.max_buffer <= MODEL_WINDOW_SECONDS:
            raise ValueError(f"need trim_after < max_buffer <= {MODEL_WINDOW_SECONDS:.0f} s, got "
                             f"{self.trim_after} and {self.max_buffer}")
        if not 0 < self.encoder_seconds <= MODEL_WINDOW_SECONDS:
            raise ValueError(f"need 0 < encoder_seconds <= {MODEL_WINDOW_SECONDS:.0f} s, got {self.encoder_seconds}")


@dataclass
class Update:
    time: float  # the clock when this update was made
    audio_time: float  # seconds of the stream received and handled so far
    committed: list[Word]  # words committed by this step, absolute times
    partial: list[Word]  # the newest hypothesis's words not committed yet
    step: float  # seconds of new audio this step took in
    compute: float  # seconds the model worked in this step (0 when voice activity skipped it)
    lag: float  # the clock now minus the arrival time of the newest audio handled
    buffer: float  # seconds of audio in the buffer after this step
    warnings: list[str] = field(default_factory=list)


class StreamingTranscriber:
    """Feed audio with `push`, call `process` when `ready`, and `finish` at the end of the stream.

    `transcribe(audio, prompt)` turns a buffer (16 kHz mono, at most 30 s) into a WindowTranscript with times
    relative to the buffer (`ModelWindows` does it with a model); `vad` scores voice activity (None: all speech);
    `clock` gives the time that `push(..., arrived_at)` uses (time.monotonic by default)."""

    def __init__(self, transcribe: Callable[[np.ndarray, str], WindowTranscript],
                 settings: StreamSettings | None = None, vad: VoiceActivity | None = None, guards: Guards | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.transcribe = transcribe
        self.settings = settings or StreamSettings()
        self.vad = vad
        self.guards = guards or Guards()
        self.clock = clock
        self.agreement = LocalAgreement(self.settings.agreement)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0.0  # stream time of buffer[0]
        self.incoming: list[np.ndarray] = []
        self.incoming_samples = 0
        self.last_arrival = None
        self.speech_end = None  # stream time where the newest speech heard so far ends
        self.vad_time = 0.0  # stream time up to which voice activity has been scored
        self.dropped_seconds = 0.0
        self.rejections: list[str] = []
        self.steps = 0
        self.transcriptions = 0

    # -- feeding --------------------------------------------------------------------------------------------------
    def push(self, samples: np.ndarray, arrived_at: float | None = None) -> None:
        """Add audio that has arrived (16 kHz mono float32); `arrived_at` defaults to the clock now."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size:
            self.incoming.append(samples)
            self.incoming_samples += samples.size
            self.last_arrival = self.clock() if arrived_at is None else arrived_at

    @property
    def pending_seconds(self) -> float:
        return self.incoming_samples / SAMPLING_RATE

    @property
    def audio_time(self) -> float:
        """Stream time at the end of the buffer (all audio handled so far, dropped audio included)."""
        return self.buffer_start + len(self.buffer) / SAMPLING_RATE

    def ready(self) -> bool:
        return self.pending_seconds >= self.settings.min_step

    # -- progress -------------------------------------------------------------------------------------------------
    def process(self) -> Update:
        """One step: take in all audio that arrived, transcribe the buffer if it holds speech, commit what two
        transcriptions agree on, trim the buffer."""
        warnings: list[str] = []
        step = self.pending_seconds
        committed: list[Word] = []
        new_audio = self._take_incoming(warnings, committed)
        self._append(new_audio)
        compute = 0.0
        if not self._buffer_has_speech():
            committed += self.agreement.flush()  # (only if voice activity lost track of pending words)
            self._cut(max(self.buffer_start, self.audio_time - LEAD_IN_SECONDS))
        else:
            committed += self._cap(warnings)
            began = self.clock()
            transcript = self.transcribe(self.buffer, self._prompt())
            compute = self.clock() - began
            self.transcriptions += 1
            committed += self._commit(transcript, warnings)
            if self.speech_end is not None and self.audio_time - self.speech_end >= self.settings.end_of_speech:
                committed += self.agreement.flush()  # the utterance is over and this transcription saw all of it
                self._cut(max(self.buffer_start, self.audio_time - LEAD_IN_SECONDS))
            committed += self._trim(warnings)
        self.steps += 1
        now = self.clock()
        lag = now - self.last_arrival if self.last_arrival is not None else 0.0
        return Update(now, self.audio_time, committed, self.agreement.pending, step, compute, lag,
                      len(self.buffer) / SAMPLING_RATE, warnings)

    def finish(self) -> Update:
        """The stream ended: transcribe what is left and commit everything pending (the newest transcription
        already saw all the audio when nothing arrived since)."""
        update = self.process() if self.incoming_samples else None
        final = self.agreement.flush()
        if update is None:
            now = self.clock()
            lag = now - self.last_arrival if self.last_arrival is not None else 0.0
            update = Update(now, self.audio_time, [], [], 0.0, 0.0, lag, len(self.buffer) / SAMPLING_RATE)
        update.committed += final
        update.partial = []
        return update

    @property
    def committed(self) -> list[Word]:
        return self.agreement.committed

    # -- parts ----------------------------------------------------------------------------------------------------
    def _take_incoming(self, warnings: list[str], committed: list[Word]) -> np.ndarray:
        audio = np.concatenate(self.incoming) if self.incoming else np.zeros(0, dtype=np.float32)
        self.incoming, self.incoming_samples = [], 0
        seconds = len(audio) / SAMPLING_RATE
        if seconds > self.settings.max_pending:
            keep = int(self.settings.min_step * SAMPLING_RATE)
            dropped = (len(audio) - keep) / SAMPLING_RATE
            committed += self.agreement.flush()  # hypotheses of complete audio; after the gap it starts afresh
            gap_start = self.audio_time
            self.buffer, self.buffer_start = np.zeros(0, dtype=np.float32), gap_start + dropped
            self.vad_time, self.speech_end = self.buffer_start, None
            if self.vad is not None:
                self.vad.reset()
            self.dropped_seconds += dropped
            warnings.append(f"the model fell behind: {seconds:.1f} s of audio were waiting; dropped {dropped:.1f} s "
                            f"at {gap_start:.1f} s (total dropped {self.dropped_seconds:.1f} s). Use a smaller "
                            f"model or a longer min_step.")
            audio = audio[-keep:]
        return audio

    def _append(self, audio: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, audio])
        if self.vad is None:
            if audio.size:
                self.speech_end = self.audio_time
            return
        flags = self.vad(audio)
        if flags.any():
            self.speech_end = self.vad_time + (int(np.flatnonzero(flags)[-1]) + 1) * WINDOW_SECONDS
        self.vad_time += len(flags) * WINDOW_SECONDS

    def _buffer_has_speech(self) -> bool:
        return self.speech_end is not None and self.speech_end > self.buffer_start

    def _prompt(self) -> str:
        before = [w.text for w in self.agreement.committed if w.end <= self.buffer_start + 1e-6]
        return "".join(before)[-self.settings.prompt_chars:].strip()

    def _commit(self, transcript: WindowTranscript, warnings: list[str]) -> list[Word]:
        reason = self.guards.rejection(transcript)
        if reason:
            self.rejections.append(reason)
            warnings.append(f"discarded a transcription at {self.audio_time:.1f} s: {reason}")
            return []
        duration = len(self.buffer) / SAMPLING_RATE
        # Words placed at the very end of the buffer have no audio of their own: the model made them up.
        words = [w.shifted(self.buffer_start) for w in transcript.words if w.start < duration - 0.05]
        return self.agreement.insert(words)

    def _cap(self, warnings: list[str]) -> list[Word]:
        """Before transcribing: a buffer past `max_buffer` (a long step after a slow one, on top of a buffer that
        could not be trimmed) would not fit the model's window. The newest transcription, which heard the oldest
        audio, is committed as it is, and the audio before the last `max_buffer` seconds is dropped."""
        if len(self.buffer) / SAMPLING_RATE <= self.settings.max_buffer:
            return []
        committed = self.agreement.flush()
        self._cut(max(self.audio_time - self.settings.max_buffer, self.agreement.last_committed_end))
        warnings.append(f"the buffer outgrew {self.settings.max_buffer:.0f} s at {self.audio_time:.1f} s (the model "
                        f"is slow): committed the newest transcription as it is and cut the buffer")
        return committed

    def _trim(self, warnings: list[str]) -> list[Word]:
        settings, committed = self.settings, []
        if len(self.buffer) / SAMPLING_RATE <= settings.trim_after:
            return committed
        if len(self.buffer) / SAMPLING_RATE > settings.max_buffer:
            committed = self.agreement.flush()
            warnings.append(f"no agreement within {settings.max_buffer:.0f} s of audio at {self.audio_time:.1f} s: "
                            f"committed the newest transcription as it is")
        inside = [w for w in self.agreement.committed if w.end > self.buffer_start]
        sentence_ends = [w for w in inside if w.text.rstrip()[-1:] in SENTENCE_END]
        cut = (sentence_ends or inside or [None])[-1]
        if cut is not None:
            self._cut(cut.end)
        elif len(self.buffer) / SAMPLING_RATE > settings.max_buffer:
            self._cut(self.audio_time - settings.trim_after)
        return committed

    def _cut(self, stream_time: float) -> None:
        """Drop the buffer's audio before `stream_time`."""
        samples = int(round((stream_time - self.buffer_start) * SAMPLING_RATE))
        samples = min(max(samples, 0), len(self.buffer))
        self.buffer = self.buffer[samples:]
        self.buffer_start += samples / SAMPLING_RATE


class ModelWindows:
    """`transcribe(audio, prompt)` for the streaming transcriber with a loaded model (under its lock). Without a
    language, the first window with speech detects it and later windows keep it (a live caption should not switch
    language in the middle of a sentence). `encoder_seconds` below 30 shortens the encoder input (CTranslate2
    exports only: transformers' Whisper encoder accepts the 30 s window alone). `prompt`: names, domain words or a
    spelling the model reads before every window, ahead of the committed text (its last LIVE_PROMPT_TOKENS tokens)."""

    def __init__(self, loaded, language: str | None, task: str = "transcribe",
                 encoder_seconds: float = MODEL_WINDOW_SECONDS, prompt: str = ""):
        self.loaded = loaded
        self.words = loaded.window_transcriber(encoder_seconds)
        self.generate_kwargs = loaded.generate_kwargs(language, task)
        self.prompt = ""
        if prompt.strip():
            ids = loaded.prompt_ids(prompt)[1:][-LIVE_PROMPT_TOKENS:]
            self.prompt = loaded.processor.tokenizer.decode(ids).strip()

    @property
    def language(self) -> str | None:
        return self.generate_kwargs.get("language")

    def __call__(self, audio: np.ndarray, prompt: str) -> WindowTranscript:
        prompt = " ".join(text for text in (self.prompt, prompt) if text)
        with self.loaded.lock:
            transcript = self.words(audio, self.generate_kwargs, prompt)
        if self.loaded.is_multilingual and self.generate_kwargs.get("language") is None and transcript.words:
            self.generate_kwargs["language"] = transcript.language
        return transcript
