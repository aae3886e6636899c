"""Captions from a live source: a reader thread receives the audio as it arrives (from an AudioSource, or from a
queue that a browser's microphone fills), the caller's thread runs the streaming transcriber whenever enough new
audio is there, and each step's update is yielded (to the app's page, or to the stream command's terminal and
subtitle file)."""

import queue
import threading
from typing import Iterable, Iterator

import numpy as np

from .audio_input import AudioInputError
from .streaming import StreamingTranscriber, Update


class EndOfStream:
    """Put in a queue of audio pieces after the last one."""


def caption_live(source: Iterable[np.ndarray], transcriber: StreamingTranscriber, name: str = "the stream",
                 stall_seconds: float = 20.0) -> Iterator[Update]:
    """Updates until the source (16 kHz mono pieces) ends; the last one commits everything. Raises AudioInputError
    when the source cannot be read, sends no audio, fails midway or stops sending for `stall_seconds` (the last two
    after yielding an update that commits what arrived)."""
    arrivals: queue.Queue = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in source:
                arrivals.put((chunk, transcriber.clock()))
                if stop.is_set():
                    return
            arrivals.put(EndOfStream)
        except Exception as error:  # handed to the captioning thread, which reports it
            arrivals.put(error)

    reader = threading.Thread(target=read, name=f"audio reader: {name}", daemon=True)
    reader.start()
    last_audio = transcriber.clock()
    received = False
    try:
        while True:
            item = _next(arrivals, timeout=0.05 if transcriber.ready() else 0.2)
            while item is not None:
                if item is EndOfStream:
                    if not received:
                        raise AudioInputError(f"{name} ended without sending any audio")
                    yield transcriber.finish()
                    return
                if isinstance(item, Exception):
                    if received:  # what arrived before the failure is still captioned (and counted)
                        yield transcriber.finish()
                    raise item if isinstance(item, AudioInputError) else AudioInputError(
                        f"reading {name} failed: {item}") from item
                chunk, last_audio = item
                received = True
                transcriber.push(chunk, last_audio)
                item = _next(arrivals, timeout=0)
            if transcriber.ready():
                yield transcriber.process()
            elif transcriber.clock() - last_audio > stall_seconds:
                what = "stopped sending audio" if received else "sent no audio"
                if received:
                    update = transcriber.finish()
                    update.warnings.append(f"{name} {what} for {stall_seconds:.0f} s")
                    yield update
                raise AudioInputError(f"{name} {what} for {stall_seconds:.0f} s")
    finally:
        stop.set()


def dropped_audio(transcriber: StreamingTranscriber) -> str | None:
    """What the end of a session must say when audio was dropped because the model fell behind (None when none
    was): the captions then miss what was said in the gaps, and a plain "ended" would hide it."""
    if transcriber.dropped_seconds <= 0:
        return None
    return (f"{transcriber.dropped_seconds:.1f} s of the {transcriber.audio_time:.1f} s of audio were dropped "
            f"because the model fell behind (it is slower than real time here): use a smaller or faster model "
            f"(a CTranslate2 export, a GPU) or a longer min_step")


def _next(arrivals: queue.Queue, timeout: float):
    try:
        return arrivals.get(timeout=timeout) if timeout else arrivals.get_nowait()
    except queue.Empty:
        return None
