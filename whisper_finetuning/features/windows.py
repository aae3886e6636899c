"""Long-form training windows (--long_form_probability): consecutive rows of one dataset packed into one sample of
up to 30 s, with a pause before and between the utterances and a timestamp pair around each, as Whisper's own
training data looks (a 30 s window of a long recording, one segment per sentence):

    <|startoftranscript|> <|sv|> <|transcribe|> <|0.64|> first sentence <|3.10|> <|4.02|> second <|6.58|> ...

`pack_windows` runs on the training stream in row order, after the shuffle and after a resumed run's skip. A row drawn
as a window's first (`targets.starts_window`, from seed, pass and row) takes the rows after it while they come from
the same dataset and their listed durations, with the longest pauses, fit in 30 s. The window carries its last row's
index, so the position a checkpoint saves is the row after it, and a resumed run starts packing where the
uninterrupted run did: the same windows, the same samples. `lay_out` places the decoded clips in the window, the
pauses drawn from the same key.
"""

from collections.abc import Iterable, Iterator

import numpy as np

from ..data.audio import SAMPLING_RATE
from .targets import TargetSettings, speech_bounds, starts_window

MAX_WINDOW_SECONDS = 30.0  # Whisper's window
LEADING_PAUSE_SECONDS = (0.0, 1.0)  # before the first utterance: the window does not start on the speech
PAUSE_SECONDS = (0.2, 2.0)  # between utterances
# Rows whose source lists no duration are packed by count and cut to 30 s once decoded (the rest counted as skipped).
MAX_UTTERANCES = 16


def usable(row: dict) -> bool:
    """A row that can be part of a window: readable and with a transcript (others go through on their own and are
    counted as the Preprocessor counts them)."""
    return not row.get("error") and bool((row.get("text") or "").strip())


def listed_seconds(rows: list[dict]) -> float:
    """The window's length by the rows' listed durations and the longest pauses (unlisted durations count 0)."""
    speech = sum(max(float(row.get("duration") or 0.0), 0.0) for row in rows)
    return LEADING_PAUSE_SECONDS[1] + speech + PAUSE_SECONDS[1] * (len(rows) - 1)


def joins(window: list[dict], row: dict) -> bool:
    return (usable(row) and row.get("dataset") == window[0].get("dataset") and len(window) < MAX_UTTERANCES
            and listed_seconds([*window, row]) <= MAX_WINDOW_SECONDS)


def packed(window: list[dict]) -> dict:
    """One stream row standing for the window: its rows under "window", the pass of its first row and the row
    index of its last (the stream position), the previous text of its first (the prompt, when drawn)."""
    first, last = window[0], window[-1]
    return {"window": window, "pass": first["pass"], "row": last["row"], "dataset": first.get("dataset"),
            "id": "+".join(str(row.get("id")) for row in window), "previous_text": first.get("previous_text", ""),
            "error": ""}


def pack_windows(rows: Iterable[dict], settings: TargetSettings) -> Iterator[dict]:
    """The rows, with the ones drawn by --long_form_probability packed into windows (see the module docstring)."""
    if not settings.long_form_probability:
        yield from rows
        return
    window: list[dict] = []
    for row in rows:
        if window and joins(window, row):
            window.append(row)
            continue
        if window:
            yield packed(window)
            window = []
        if usable(row) and starts_window(settings, (row["pass"], row["row"])):
            window = [row]
        else:
            yield row
    if window:
        yield packed(window)


def lay_out(clips: list[tuple[str, np.ndarray]], key: tuple[int, ...], seed: int
            ) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """(audio, segments): the clips in order after a leading pause and between pauses (digital silence,
    lengths drawn from (seed, *key)), each segment (start, end, text) at its clip's speech by the energy trim. Clips
    that would end past 30 s are left out (one segment per clip placed). The draws are sequential: the first k clips
    are placed the same whatever follows them."""
    generator = np.random.default_rng([seed % 2**32, *(value % 2**32 for value in key), 37])
    pieces, segments = [], []
    position = int(generator.uniform(*LEADING_PAUSE_SECONDS) * SAMPLING_RATE)
    limit = int(MAX_WINDOW_SECONDS * SAMPLING_RATE)
    for index, (text, audio) in enumerate(clips):
        begins = position + (int(generator.uniform(*PAUSE_SECONDS) * SAMPLING_RATE) if index else 0)
        if begins + len(audio) > limit:
            break
        pieces.append((begins, audio))
        start, end = speech_bounds(audio) or (0.0, len(audio) / SAMPLING_RATE)
        segments.append((begins / SAMPLING_RATE + start, begins / SAMPLING_RATE + end, text))
        position = begins + len(audio)
    if not pieces:
        return np.zeros(0, np.float32), []
    window = np.zeros(pieces[-1][0] + len(pieces[-1][1]), np.float32)
    for start, audio in pieces:
        window[start:start + len(audio)] = audio
    return window, segments
