"""Batched transcription of dataset rows with a backend (backends/: transformers or a CTranslate2 export).

The audio of a block of rows is decoded in threads; clips up to 30 s are sorted by length and transcribed in
batches (similar lengths finish decoding together, with the same log-mel features for every backend), longer clips
go through the backend's sequential long-form decoding instead of being cut, with its guards (temperature fallback,
no-speech skip: `long_form_kwargs`) and a progress bar. Rows that cannot be transcribed (a malformed row, unreadable
audio, a clip over `max_duration`) are passed on as skipped, with the reason. Setting `stop` ends the work after the
current batch (or 30 s window).
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backends.base import Backend
from ..backends.guards import LONG_FORM_GUARDS
from ..data.audio import SAMPLING_RATE, AudioError, decode_row_audio
from ..features.log_mel import LogMelExtractor

logger = logging.getLogger(__name__)

LONG_FORM_SECONDS = 30.0
# Digital silence: 10 ms frames whose peak stays under -80 dBFS (3 steps of 16-bit audio) for at least a second.
# Whisper writes "you" over it with confidence (average log-probability -0.6 to -0.8 with tiny.en and base), so the
# no-speech guard, which also needs a log-probability under -1, keeps the word; and decoding it takes as long as
# speech. It holds no speech, so long-form decoding drops it (keeping 0.2 s next to any sound), with the backends
# whose guards keep the word (Backend.drops_digital_silence: transformers).
SILENCE_PEAK = 1e-4
SILENCE_FRAME = SAMPLING_RATE // 100
MIN_SILENCE_FRAMES = 100
KEPT_SILENCE_FRAMES = 20

MALFORMED_ROW = "malformed row"
UNREADABLE_AUDIO = "unreadable audio"
TOO_LONG = "longer than --max_duration_in_seconds"


class Skip(NamedTuple):
    reason: str  # one of the constants above
    detail: str


class Transcript(NamedTuple):
    row: dict
    text: str | None  # None when skipped
    duration: float  # seconds of audio (0 when it could not be decoded)
    skipped: Skip | None


def drop_digital_silence(samples: np.ndarray) -> np.ndarray:
    """The clip without its stretches of digital silence (see SILENCE_PEAK); empty when it holds nothing else."""
    starts = np.arange(0, len(samples), SILENCE_FRAME)
    frames = len(starts)
    quiet = np.maximum(np.maximum.reduceat(samples, starts), -np.minimum.reduceat(samples, starts)) < SILENCE_PEAK
    if quiet.all():
        return samples[:0]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    keep = np.ones(len(samples), bool)
    for start, end in zip(edges[::2], edges[1::2]):  # runs of quiet frames [start, end)
        if end - start >= MIN_SILENCE_FRAMES:
            cut_start = start + (KEPT_SILENCE_FRAMES if start > 0 else 0)
            cut_end = end - (KEPT_SILENCE_FRAMES if end < frames else 0)
            keep[cut_start * SILENCE_FRAME:cut_end * SILENCE_FRAME] = False
    return samples[keep]


class Stopped(Exception):
    """Raised inside a long-form decoding to abandon the clip when `stop` is set."""


@dataclass
class Throughput:
    """Audio seconds per wall-clock second of decoding, features and generation (after a warm-up)."""

    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, audio_seconds: float, wall_seconds: float) -> None:
        self.audio_seconds += audio_seconds
        self.wall_seconds += wall_seconds

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")


@dataclass
class Transcriber:
    """Batched transcription of dataset rows with `backend` (backends.load_backend, or TransformersBackend(model,
    processor) after `cpu_attention.enable_fast_cpu_attention(model)` for speed on CPU). `generate_kwargs` in
    transformers' names, as run_eval.py builds them: language (a code; absent or None: detected per clip), task,
    num_beams, max_length (prompt included), return_timestamps. torch.compile is not offered: with the fast CPU
    attention it took 161 s to compile whisper-base and its batches ran slower; with plain SDPA it gained 8-12 % on
    the bfloat16 encoder."""

    backend: Backend
    generate_kwargs: dict
    batch_size: int = 16
    num_threads: int = 2
    throughput: Throughput = field(default_factory=Throughput)
    long_form_kwargs: dict = field(default_factory=lambda: dict(LONG_FORM_GUARDS))  # guards for clips over 30 s
    max_duration: float | None = None  # seconds; longer clips are skipped
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.backend.check_generate_kwargs(self.generate_kwargs)
        self.log_mel = LogMelExtractor(self.backend.processor.feature_extractor)
        self.pool = ThreadPoolExecutor(self.num_threads)
        # Warm-up (first-call allocations, kernel selection), kept out of the measured throughput.
        self.backend.transcribe_batch(torch.from_numpy(self.log_mel(np.zeros(SAMPLING_RATE, np.float32)))[None],
                                      self.generate_kwargs)

    def _decode(self, row) -> np.ndarray | Skip:
        if row.get("error"):  # the source could not read the row itself (e.g. a TSV line with too many columns)
            return Skip(MALFORMED_ROW, row["error"])
        try:
            samples = decode_row_audio(row["audio"])
        except AudioError as error:
            return Skip(UNREADABLE_AUDIO, str(error))
        seconds = len(samples) / SAMPLING_RATE
        if self.max_duration is not None and seconds > self.max_duration:
            return Skip(TOO_LONG, f"{seconds:.1f} s, longer than --max_duration_in_seconds {self.max_duration:g} "
                                  "(raise it to transcribe such clips)")
        return samples

    def __call__(self, rows: list[dict]):
        """Transcripts of a block of rows, in processing order, batch by batch; fewer than the rows when `stop` is
        set on the way."""
        began = time.perf_counter()
        for transcripts in self._batches(rows):
            self.throughput.add(sum(t.duration for t in transcripts), time.perf_counter() - began)
            yield from transcripts
            began = time.perf_counter()  # the caller's work on the transcripts is not ours

    def _batches(self, rows: list[dict]):
        audio = list(self.pool.map(self._decode, rows))
        short, long, skipped = [], [], []
        for row, samples in zip(rows, audio):
            if isinstance(samples, Skip):
                logger.warning("Skipping %s (%s): %s", row.get("id") or "a sample", samples.reason, samples.detail)
                skipped.append(Transcript(row, None, 0.0, samples))
            else:
                (long if len(samples) / SAMPLING_RATE > LONG_FORM_SECONDS else short).append((row, samples))
        yield skipped
        short.sort(key=lambda item: len(item[1]), reverse=True)
        for start in range(0, len(short), self.batch_size):
            if self.stop.is_set():
                return
            batch = short[start:start + self.batch_size]
            features = torch.from_numpy(np.stack(list(self.pool.map(self.log_mel, [s for _, s in batch]))))
            texts = self.backend.transcribe_batch(features, self.generate_kwargs)
            yield [Transcript(row, text, len(samples) / SAMPLING_RATE, None)
                   for (row, samples), text in zip(batch, texts)]
        for row, samples in long:
            if self.stop.is_set():
                return
            try:
                text = self._long_form(row, samples)
            except Stopped:
                return
            yield [Transcript(row, text, len(samples) / SAMPLING_RATE, None)]

    def _long_form(self, row: dict, samples: np.ndarray) -> str:
        sound = samples
        if self.backend.drops_digital_silence:
            sound = drop_digital_silence(samples)
            if len(sound) < len(samples):
                logger.info("%s: %.1f of %.1f s are digital silence, left out of long-form decoding", row.get("id"),
                            (len(samples) - len(sound)) / SAMPLING_RATE, len(samples) / SAMPLING_RATE)
            if len(sound) == 0:
                return ""
        seconds = len(sound) / SAMPLING_RATE
        with tqdm(total=round(seconds, 1), desc=f"long-form {row.get('id') or ''}".strip(), unit=" audio s",
                  leave=False) as progress:
            def advance(done: float) -> None:  # called as the decoding advances: the audio seconds done
                if self.stop.is_set():
                    raise Stopped
                progress.update(round(min(done, seconds), 1) - progress.n)

            return self.backend.transcribe_long(sound, self.generate_kwargs, self.long_form_kwargs, advance).text
