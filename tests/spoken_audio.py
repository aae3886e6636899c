"""Recordings for the app and live-caption tests: eSpeak NG sentences one after the other with pauses, and where
each sentence lies in the audio."""

from pathlib import Path

import numpy as np
import soundfile

from whisper_finetuning.data.audio import SAMPLING_RATE, to_model_rate
from whisper_finetuning.synthetic.tts import synthesize

SENTENCES = ["Please open the window.", "My brother lives in London.", "The children are playing in the garden.",
             "Where is the nearest bank?", "I like to read books in the evening.",
             "The train to the city leaves at seven."]


def spoken_recording(sentences=SENTENCES, pause: float = 1.2, lead: float = 0.6, voice: str = "en",
                     rate: int = 140) -> tuple[np.ndarray, list[dict]]:
    """(16 kHz mono audio, [{"text", "start", "end"}] per sentence)."""
    pieces = [np.zeros(int(lead * SAMPLING_RATE), np.float32)]
    timeline, position = [], len(pieces[0])
    for text in sentences:
        speech = to_model_rate(*synthesize(text, voice, rate=rate))
        timeline.append({"text": text, "start": position / SAMPLING_RATE,
                         "end": (position + len(speech)) / SAMPLING_RATE})
        silence = np.zeros(int(pause * SAMPLING_RATE), np.float32)
        pieces += [speech, silence]
        position += len(speech) + len(silence)
    return np.concatenate(pieces), timeline


def write_wav(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, SAMPLING_RATE)
    return path
