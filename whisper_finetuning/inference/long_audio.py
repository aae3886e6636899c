"""Transcribe a whole recording into timed segments, with one of two methods:

- "long-form": Whisper's own sequential decoding (transformers' generate on the whole log-mel): each 30 s window
  starts where the last complete segment of the previous one ended, so no word is cut at a window border.
- "chunked": the transformers pipeline's chunking with stride: 30 s windows that overlap by `stride` seconds on
  each side, transcribed in batches, merged where the overlaps agree.

The app uses long-form by default (--long_audio_method chunked switches); benchmarks/stream_replay.py measures both
(WER and real-time factor on a 4 min recording).
"""

from dataclasses import dataclass

import numpy as np
import torch
from transformers import pipeline

from ..data.audio import SAMPLING_RATE

METHODS = ("long-form", "chunked")


@dataclass
class Segment:
    start: float
    end: float
    text: str


def transcribe_long(loaded, audio: np.ndarray, generate_kwargs: dict, method: str = "long-form",
                    batch_size: int = 4) -> list[Segment]:
    """Segments of a recording of any length (16 kHz mono), under the model's lock."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    with loaded.lock:
        if method == "chunked":
            return _chunked(loaded, audio, generate_kwargs, batch_size)
        return _long_form(loaded, audio, generate_kwargs)


def _long_form(loaded, audio: np.ndarray, generate_kwargs: dict) -> list[Segment]:
    model, processor = loaded.model, loaded.processor
    inputs = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, truncation=False, padding="longest",
                                         return_attention_mask=True, return_tensors="pt")
    if inputs.input_features.shape[-1] < 3000:  # short audio: one padded 30 s window
        inputs = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_attention_mask=True,
                                             return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(inputs.input_features.to(model.device, model.dtype),
                                attention_mask=inputs.attention_mask.to(model.device), return_timestamps=True,
                                return_segments=True, **generate_kwargs)
    segments = []
    for segment in output["segments"][0]:
        text = processor.tokenizer.decode(segment["tokens"], skip_special_tokens=True).strip()
        if text:
            segments.append(Segment(float(segment["start"]), float(segment["end"]), text))
    return segments


def _chunked(loaded, audio: np.ndarray, generate_kwargs: dict, batch_size: int) -> list[Segment]:
    asr = pipeline("automatic-speech-recognition", model=loaded.model, tokenizer=loaded.processor.tokenizer,
                   feature_extractor=loaded.processor.feature_extractor, device=loaded.model.device)
    output = asr({"raw": audio, "sampling_rate": SAMPLING_RATE}, chunk_length_s=30, stride_length_s=5,
                 batch_size=batch_size, return_timestamps=True, generate_kwargs=generate_kwargs)
    duration = len(audio) / SAMPLING_RATE
    segments = []
    for chunk in output["chunks"]:
        start, end = chunk["timestamp"]
        text = chunk["text"].strip()
        if text:
            segments.append(Segment(float(start), float(end if end is not None else duration), text))
    return segments
