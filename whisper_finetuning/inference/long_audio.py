"""Transcribe a whole recording into timed segments with Whisper's own sequential long-form decoding (transformers'
generate on the whole log-mel): each 30 s window starts where the last complete segment of the previous one ended,
so no word is cut at a window border. The transformers pipeline's chunking with stride is not offered: on a fresh
test environment it ended a 50 s recording with "see you in the next video" repeated to the token limit, where
long-form decoding did not (tests/integration/test_live_stream.py); benchmarks/stream_replay.py still measures it
as the baseline. Recordings over 30 s get run_eval.py's guards (temperature fallback on repetitive or unlikely
windows, no-speech skip), seeded so the same recording gives the same text in every run. CTranslate2 exports take
faster-whisper's long-form decoding with the same guards (ctranslate2_backend.py).
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..data.audio import SAMPLING_RATE
from ..evaluation.arguments import LONG_FORM_GUARDS
from .ctranslate2_backend import ct2_long_form


@dataclass
class Segment:
    start: float
    end: float
    text: str


def transcribe_long(loaded, audio: np.ndarray, generate_kwargs: dict) -> list[Segment]:
    """Segments of a recording of any length (16 kHz mono), under the model's lock."""
    long_form = ct2_long_form if loaded.backend == "ctranslate2" else _long_form
    with loaded.lock:
        segments = long_form(loaded, audio, generate_kwargs)
    # A window's timestamp tokens can point past the end of the recording (seen on random models, with both
    # backends): subtitles stop where the audio does.
    duration = len(audio) / SAMPLING_RATE
    return [Segment(start, min(end, duration), text) for start, end, text in segments if text and start < duration]


def _long_form(loaded, audio: np.ndarray, generate_kwargs: dict) -> list[tuple[float, float, str]]:
    """(start, end, text) of each segment, from transformers' generate() on the whole log-mel."""
    model, processor = loaded.model, loaded.processor
    inputs = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, truncation=False, padding="longest",
                                         return_attention_mask=True, return_tensors="pt")
    if inputs.input_features.shape[-1] < 3000:  # short audio: one padded 30 s window
        inputs = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_attention_mask=True,
                                             return_tensors="pt")
    guards = LONG_FORM_GUARDS if inputs.input_features.shape[-1] > 3000 else {}
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.inference_mode(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)  # the fallback samples: the same recording, the same text
        output = model.generate(inputs.input_features.to(model.device, model.dtype),
                                attention_mask=inputs.attention_mask.to(model.device), return_timestamps=True,
                                return_segments=True, **{**guards, **generate_kwargs})
    return [(float(segment["start"]), float(segment["end"]),
             processor.tokenizer.decode(segment["tokens"], skip_special_tokens=True).strip())
            for segment in output["segments"][0]]
