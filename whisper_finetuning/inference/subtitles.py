"""Subtitles: timed words or segments -> cues -> SubRip (.srt) and WebVTT (.vtt) text.

Cues never overlap and never go back in time (players drop or reorder cues that do); a cue ends at a sentence
end, before a pause, or when it would exceed two lines' worth of characters or a few seconds; a cue starts where the
voice does (`start_on_speech`).
"""

from dataclasses import dataclass

import numpy as np

from ..backends.words import SENTENCE_END, Word
from ..files import write_text_atomic
from .vad import WINDOW_SECONDS as VAD_WINDOW_SECONDS

MAX_CUE_CHARS = 84  # two lines of 42, the usual broadcast limit
MAX_CUE_SECONDS = 6.0
PAUSE_SECONDS = 1.0  # a gap this long between words starts a new cue
MIN_CUE_SECONDS = 0.2
ONSET_MIN_SHIFT_SECONDS = 0.3  # a cue starting less than this before the voice is left as it is


@dataclass
class Cue:
    start: float
    end: float
    text: str


def cues_from_words(words: list[Word]) -> list[Cue]:
    cues: list[Cue] = []
    group: list[Word] = []
    for word in words:
        if group:
            text = "".join(w.text for w in group + [word]).strip()
            pause = word.start - group[-1].end >= PAUSE_SECONDS
            too_long = len(text) > MAX_CUE_CHARS or word.end - group[0].start > MAX_CUE_SECONDS
            if pause or too_long or group[-1].text.rstrip()[-1:] in SENTENCE_END:
                cues.append(Cue(group[0].start, group[-1].end, "".join(w.text for w in group).strip()))
                group = []
        group.append(word)
    if group:
        cues.append(Cue(group[0].start, group[-1].end, "".join(w.text for w in group).strip()))
    return ordered([cue for cue in cues if cue.text])


def ordered(cues: list[Cue]) -> list[Cue]:
    """Cues made monotonic: each starts no earlier than the previous one ended and lasts at least 0.2 s."""
    result: list[Cue] = []
    for cue in cues:
        start = max(cue.start, result[-1].end if result else 0.0)
        result.append(Cue(round(start, 3), round(max(cue.end, start + MIN_CUE_SECONDS), 3), cue.text))
    return result


def start_on_speech(cues: list[Cue], speech: np.ndarray, window_seconds: float = VAD_WINDOW_SECONDS) -> list[Cue]:
    """Each cue starts where speech starts inside it. `speech`: voice activity of the recording, one flag per window
    (vad.VoiceActivity). Whisper's long-form timestamps put the first cue after a long silence at the 30 s window's
    edge or seconds before the voice (more so after fine-tuning), and a subtitle that shows before anyone speaks is
    wrong. A cue with no speech inside keeps its times; a start is only ever moved later, never past the cue's end."""
    result = []
    for cue in cues:
        first, last = int(cue.start / window_seconds), int(np.ceil(cue.end / window_seconds))
        voiced = np.flatnonzero(speech[first:last])
        start = cue.start
        if voiced.size:
            onset = (first + int(voiced[0])) * window_seconds
            if onset - cue.start >= ONSET_MIN_SHIFT_SECONDS:
                start = min(onset, cue.end - MIN_CUE_SECONDS)
        result.append(Cue(round(max(start, cue.start), 3), cue.end, cue.text))
    return result


def timestamp(seconds: float, separator: str) -> str:
    milliseconds = int(round(seconds * 1000))
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{milliseconds:03d}"


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{index}\n{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}\n{cue.text}\n"
              for index, cue in enumerate(cues, start=1)]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    # "-->" may not appear in a cue's text; Whisper does not write it, but a prompt or a model could.
    blocks = [f"{timestamp(cue.start, '.')} --> {timestamp(cue.end, '.')}\n{cue.text.replace('-->', '->')}\n"
              for cue in cues]
    return "WEBVTT\n\n" + "\n".join(blocks)


def write_subtitles(path, cues: list[Cue]) -> None:
    """Write .srt or .vtt (by the path's suffix) atomically: a player reading a rolling file never sees half."""
    path = str(path)
    if path.endswith(".srt"):
        write_text_atomic(path, to_srt(cues))
    elif path.endswith(".vtt"):
        write_text_atomic(path, to_vtt(cues))
    else:
        raise ValueError(f"subtitle files end in .srt or .vtt, not {path!r}")
