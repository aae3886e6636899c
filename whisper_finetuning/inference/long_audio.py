"""Transcribe a whole recording into timed segments for the app and the stream command: the backend's long-form
decoding (Backend.transcribe_long, with the kit's default guards over 30 s, seeded: the same recording gives the
same text in every run) under the model's lock, each segment's text stripped, nothing past the recording's end, and
each segment starting where the voice starts inside it (Whisper's timestamps put a segment after a long silence at
the 30 s window's edge or seconds early, more so after fine-tuning; subtitles.start_on_speech with Silero VAD).
"""

import numpy as np

from ..backends.base import Segment
from ..data.audio import SAMPLING_RATE
from .subtitles import Cue, start_on_speech
from .vad import VoiceActivity


def transcribe_long(loaded, audio: np.ndarray, generate_kwargs: dict, start_on_voice: bool = True) -> list[Segment]:
    """Segments of a recording of any length (16 kHz mono), under the model's lock. `start_on_voice` False keeps
    the starts the model gave."""
    with loaded.lock:
        segments = loaded.transcribe_long(audio, generate_kwargs).segments
    # A window's timestamp tokens can point past the end of the recording (seen on random models, with both
    # backends): subtitles stop where the audio does.
    duration = len(audio) / SAMPLING_RATE
    segments = [Segment(s.start, min(s.end, duration), s.text.strip()) for s in segments
                if s.text.strip() and s.start < duration]
    if not start_on_voice or not segments:
        return segments
    moved = start_on_speech([Cue(s.start, s.end, s.text) for s in segments], VoiceActivity()(audio))
    return [Segment(cue.start, cue.end, cue.text) for cue in moved]
