"""Transcribe a whole recording into timed segments for the app and the stream command: the backend's long-form
decoding (Backend.transcribe_long, with the kit's default guards over 30 s, seeded: the same recording gives the
same text in every run) under the model's lock, each segment's text stripped, and nothing past the recording's end.
"""

import numpy as np

from ..backends.base import Segment
from ..data.audio import SAMPLING_RATE


def transcribe_long(loaded, audio: np.ndarray, generate_kwargs: dict) -> list[Segment]:
    """Segments of a recording of any length (16 kHz mono), under the model's lock."""
    with loaded.lock:
        segments = loaded.transcribe_long(audio, generate_kwargs).segments
    # A window's timestamp tokens can point past the end of the recording (seen on random models, with both
    # backends): subtitles stop where the audio does.
    duration = len(audio) / SAMPLING_RATE
    return [Segment(s.start, min(s.end, duration), s.text.strip()) for s in segments
            if s.text.strip() and s.start < duration]
