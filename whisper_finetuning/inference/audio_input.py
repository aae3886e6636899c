"""Audio in: whole files for transcription, and streams (HTTP/Icecast, HLS .m3u8, or a file played in real time)
for live captions. Everything comes out as 16 kHz mono float32.

Files go to the kit's decoder first (libsndfile: WAV, FLAC, OGG, MP3) and to FFmpeg (PyAV) for what it cannot read
(M4A/AAC, WebM/Opus as browsers record, video files). Streams are read with PyAV; the sample rate and channel
layout are the stream's own, read from each decoded frame, and FFmpeg's resampler turns them into 16 kHz mono.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile

from ..data.audio import SAMPLING_RATE, AudioError, load_audio

CHUNK_SECONDS = 0.1  # a stream's audio is handed on in pieces of about this length


class AudioInputError(AudioError):
    pass


def _av():
    try:
        import av
    except ModuleNotFoundError as error:
        raise AudioInputError("reading this audio needs PyAV: pip install 'whisper-finetuning[app]'") from error
    return av


def read_audio_file(path: str | Path, max_seconds: float | None = None) -> np.ndarray:
    """A whole audio file as 16 kHz mono; AudioInputError (with the reason) for files that hold no audio.
    `max_seconds`: refuse longer audio (decoding stops there, so an hours-long file is not read into memory)."""
    name = Path(path).name
    try:
        duration = soundfile.info(str(path)).duration  # from the header: refuse before decoding hours of audio
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        duration = None  # not a libsndfile format; FFmpeg below stops decoding at the limit
    if max_seconds is not None and duration is not None and duration > max_seconds:
        raise AudioInputError(f"{name} is {format_duration(duration)} long, longer than the limit of "
                              f"{format_duration(max_seconds)}")
    try:
        samples = load_audio(path, source=name)
    except AudioError as libsndfile_error:
        try:
            samples = np.concatenate(list(_decode(str(path), max_seconds)) or [np.zeros(0, np.float32)])
        except AudioInputError as ffmpeg_error:
            reasons = f"libsndfile: {libsndfile_error}; FFmpeg: {ffmpeg_error}".replace(str(path), name)
            raise AudioInputError(f"{name} is not an audio file that can be decoded ({reasons})") from ffmpeg_error
    if samples.size == 0:
        raise AudioInputError(f"{name} holds no audio")
    if max_seconds is not None and len(samples) > max_seconds * SAMPLING_RATE:
        raise AudioInputError(f"{name} is longer than the limit of {format_duration(max_seconds)}")
    return samples


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _decode(source: str, max_seconds: float | None = None, options: dict | None = None,
            timeout: tuple[float, float] | None = None, info: dict | None = None) -> Iterator[np.ndarray]:
    """16 kHz mono pieces of a file or URL's first audio stream, as FFmpeg decodes them."""
    av = _av()
    try:
        container = av.open(source, options=options or {}, timeout=timeout)
    except av.FFmpegError as error:
        raise AudioInputError(f"cannot open {source}: {error}") from error
    try:
        if not container.streams.audio:
            raise AudioInputError(f"{source} has no audio stream")
        stream = container.streams.audio[0]
        if info is not None:
            info.update(format=container.format.name, codec=stream.codec_context.name,
                        sample_rate=stream.codec_context.sample_rate, channels=stream.codec_context.channels)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLING_RATE)
        produced = 0
        for packet in container.demux(stream):
            for frame in packet.decode():
                for out in resampler.resample(frame):
                    samples = out.to_ndarray()[0].astype(np.float32, copy=False)
                    produced += len(samples)
                    yield samples
            if max_seconds is not None and produced > max_seconds * SAMPLING_RATE:
                yield np.zeros(1, dtype=np.float32)  # one sample over the limit: the caller sees it is too long
                return
        for out in resampler.resample(None):
            yield out.to_ndarray()[0].astype(np.float32, copy=False)
    except av.FFmpegError as error:
        raise AudioInputError(f"reading {source} failed: {error}") from error
    finally:
        container.close()


@dataclass
class AudioSource:
    """A live source: a URL (HTTP/Icecast, HLS .m3u8) or a local file, which is played in real time by default.

    Iterating it gives 16 kHz mono pieces as they arrive. `info` is filled in once the stream is open (format,
    codec, the stream's own sample rate and channels). Errors are AudioInputError with the reason: unreachable,
    not audio, or no data for `read_timeout` seconds."""

    source: str
    realtime: bool | None = None  # None: pace local files at real time, read URLs as they arrive
    open_timeout: float = 15.0
    read_timeout: float = 15.0

    def __post_init__(self):
        self.info: dict = {}
        self.is_url = "://" in self.source
        if not self.is_url and not Path(self.source).is_file():
            raise AudioInputError(f"{self.source} is neither a URL nor an existing file")
        if self.realtime is None:
            self.realtime = not self.is_url

    def __iter__(self) -> Iterator[np.ndarray]:
        options = {"m3u8_hold_counters": "10"} if self.is_url else {}  # HLS: give up after 10 reloads w/o news
        timeout = (self.open_timeout, self.read_timeout) if self.is_url else None
        pieces = _decode(self.source, options=options, timeout=timeout, info=self.info)
        began = time.monotonic()
        sent = 0
        batch: list[np.ndarray] = []
        for samples in pieces:
            batch.append(samples)
            if sum(len(b) for b in batch) < CHUNK_SECONDS * SAMPLING_RATE:
                continue
            chunk = np.concatenate(batch)
            batch = []
            sent += len(chunk)
            if self.realtime:  # a piece is "heard" once its last sample has been played
                time.sleep(max(0.0, began + sent / SAMPLING_RATE - time.monotonic()))
            yield chunk
        if batch:
            chunk = np.concatenate(batch)
            if self.realtime:
                time.sleep(max(0.0, began + (sent + len(chunk)) / SAMPLING_RATE - time.monotonic()))
            yield chunk
