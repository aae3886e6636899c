"""Subtitles: timed words or segments -> cues -> SubRip (.srt) and WebVTT (.vtt) text.

Cues never overlap and never go back in time (players drop or reorder cues that do); a cue ends at a sentence
end, before a pause, or when it would exceed two lines' worth of characters or a few seconds.
"""

from dataclasses import dataclass

from ..files import write_text_atomic
from .words import SENTENCE_END, Word

MAX_CUE_CHARS = 84  # two lines of 42, the usual broadcast limit
MAX_CUE_SECONDS = 6.0
PAUSE_SECONDS = 1.0  # a gap this long between words starts a new cue
MIN_CUE_SECONDS = 0.2


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
