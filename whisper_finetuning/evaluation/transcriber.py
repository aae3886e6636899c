"""Batched transcription of dataset rows.

The audio of a block of rows is decoded in threads; clips up to 30 s are sorted by length and transcribed in
batches (similar lengths finish decoding together), longer clips go through Whisper's sequential long-form
decoding instead of being cut.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.audio import SAMPLING_RATE, AudioError, decode_row_audio
from ..features.log_mel import LogMelExtractor

logger = logging.getLogger(__name__)

LONG_FORM_SECONDS = 30.0


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
    """Batched transcription of dataset rows (call `cpu_attention.enable_fast_cpu_attention(model)` first for speed
    on CPU). torch.compile is not offered: with that attention it took 161 s to compile whisper-base and its batches
    ran slower; with plain SDPA it gained 8-12 % on the bfloat16 encoder."""

    model: object
    processor: object
    generate_kwargs: dict
    batch_size: int = 16
    num_threads: int = 2
    throughput: Throughput = field(default_factory=Throughput)

    def __post_init__(self):
        self.log_mel = LogMelExtractor(self.processor.feature_extractor)
        self.pool = ThreadPoolExecutor(self.num_threads)
        # Warm-up (first-call allocations, kernel selection), kept out of the measured throughput.
        self._generate(torch.from_numpy(self.log_mel(np.zeros(SAMPLING_RATE, np.float32)))[None])

    def _generate(self, features: torch.Tensor, **extra) -> list[str]:
        features = features.to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            tokens = self.model.generate(features, **{**self.generate_kwargs, **extra})
        if isinstance(tokens, dict):
            tokens = tokens["sequences"]
        return [t.strip() for t in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def _decode(self, row):
        try:
            return decode_row_audio(row["audio"])
        except AudioError as error:
            return error

    def __call__(self, rows: list[dict]) -> list[tuple]:
        """(row, prediction or None, duration, error or None) for a block of rows, in processing order."""
        began = time.perf_counter()
        results = list(self._transcribe(rows))
        self.throughput.add(sum(duration for _, _, duration, _ in results), time.perf_counter() - began)
        return results

    def _transcribe(self, rows: list[dict]):
        audio = list(self.pool.map(self._decode, rows))
        short, long = [], []
        for row, samples in zip(rows, audio):
            if isinstance(samples, AudioError):
                logger.warning("Skipping unreadable audio: %s", samples)
                yield row, None, 0.0, str(samples)
            else:
                (long if len(samples) / SAMPLING_RATE > LONG_FORM_SECONDS else short).append((row, samples))
        short.sort(key=lambda item: len(item[1]), reverse=True)
        for start in range(0, len(short), self.batch_size):
            batch = short[start:start + self.batch_size]
            features = torch.from_numpy(np.stack(list(self.pool.map(self.log_mel, [s for _, s in batch]))))
            texts = self._generate(features)
            for (row, samples), text in zip(batch, texts):
                yield row, text, len(samples) / SAMPLING_RATE, None
        for row, samples in long:
            inputs = self.processor.feature_extractor(samples, sampling_rate=SAMPLING_RATE, truncation=False,
                                                      padding="longest", return_attention_mask=True,
                                                      return_tensors="pt")
            extra = {"attention_mask": inputs.attention_mask.to(self.model.device), "return_timestamps": True}
            text = self._generate(inputs.input_features, **extra)[0]
            yield row, text, len(samples) / SAMPLING_RATE, None
