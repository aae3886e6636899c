"""Replay a recording as if it were live, with a computation-aware clock: time passes while the model works (as on
a real stream), and the waits for audio that has not "arrived" yet are skipped. Arrivals, lag and word latency are
what a live stream would give on this machine, in the time the model needs rather than the recording's length."""

import time

import numpy as np

from ..data.audio import SAMPLING_RATE
from .streaming import StreamingTranscriber, Update


class VirtualClock:
    """Runs with the wall clock, except that `skip_to` jumps ahead over idle waits."""

    def __init__(self):
        self.offset = -time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() + self.offset

    def skip_to(self, moment: float) -> None:
        self.offset += max(0.0, moment - self.now())


def replay(audio: np.ndarray, transcriber: StreamingTranscriber, clock: VirtualClock) -> list[Update]:
    """Feed `audio` (16 kHz mono) to `transcriber`, whose clock must be `clock.now`; the audio at stream time t
    arrives at clock time t. Returns every update, the last one from `finish`."""
    if transcriber.clock != clock.now:
        raise ValueError("the transcriber must use the replay's clock (StreamingTranscriber(..., clock=clock.now))")
    step = int(transcriber.settings.min_step * SAMPLING_RATE)
    updates, position = [], 0
    while position < len(audio):
        available = min(len(audio), int(clock.now() * SAMPLING_RATE))
        if available - position < step and available < len(audio):
            clock.skip_to(min(position + step, len(audio)) / SAMPLING_RATE)  # idle until the step has arrived
            continue
        transcriber.push(audio[position:available], arrived_at=available / SAMPLING_RATE)
        position = available
        updates.append(transcriber.process())
    updates.append(transcriber.finish())
    return updates
