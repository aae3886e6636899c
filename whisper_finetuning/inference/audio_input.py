"""Audio in: whole files for transcription, and streams (HTTP/Icecast, HLS .m3u8, or a file played in real time)
for live captions. Everything comes out as 16 kHz mono float32.

Files go to the kit's decoder first (libsndfile: WAV, FLAC, OGG, MP3) and to FFmpeg (PyAV) for what it cannot read
(M4A/AAC, WebM/Opus as browsers record, video files). Streams are read with PyAV; the sample rate and channel
layout are the stream's own, read from each decoded frame, and FFmpeg's resampler turns them into 16 kHz mono.

A source is finite when it has an end: a local file, or a URL whose duration FFmpeg knows once it is open (an HTTP
file such as a podcast episode, an HLS VOD playlist, which ends with #EXT-X-ENDLIST). A live source (an Icecast
stream, an HLS playlist without #EXT-X-ENDLIST) has no duration. A finite URL arrives much faster than real time,
so for live captions it is played at real time like a local file; otherwise the live policy would drop most of it.
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
            duration = container.duration / av.time_base if container.duration is not None else None
            info.update(format=container.format.name, codec=stream.codec_context.name,
                        sample_rate=stream.codec_context.sample_rate, channels=stream.codec_context.channels,
                        duration=duration, finite=is_finite(source, container.format.name, duration))
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


def is_finite(source: str, format_name: str, duration: float | None) -> bool:
    """Whether an open source has an end. FFmpeg knows the duration of a file (over HTTP too: from the header, or
    from the size and bit rate) and of an HLS playlist that ends with #EXT-X-ENDLIST (VOD), and none for a live
    stream (Icecast sends no size; a live HLS playlist has no end). A local file ends even when FFmpeg knows no
    duration (a browser's WebM recording has none in its header); a local playlist may still be growing."""
    if duration is not None:
        return True
    return "://" not in source and format_name != "hls"


@dataclass
class AudioSource:
    """A source for live captions: a URL (HTTP/Icecast, HLS .m3u8) or a local file.

    Iterating it gives 16 kHz mono pieces. By default (`realtime=None`) a finite source (a local file, an HTTP file
    or HLS VOD playlist whose duration FFmpeg knows) is played at real time, as a listener would hear it, and a live
    one is handed on as it arrives; True or False forces the choice. `info` is filled in once the source is open:
    format, codec, the stream's own sample rate and channels, `duration` (seconds, None for live sources),
    `finite`, and `paced` (whether it is played at real time). Errors are AudioInputError with the reason:
    unreachable, not audio, or no data for `read_timeout` seconds."""

    source: str
    realtime: bool | None = None  # None: play finite sources at real time, hand live ones on as they arrive
    open_timeout: float = 15.0
    read_timeout: float = 15.0

    def __post_init__(self):
        self.info: dict = {}
        self.is_url = "://" in self.source
        if not self.is_url and not Path(self.source).is_file():
            raise AudioInputError(f"{self.source} is neither a URL nor an existing file")

    def _pieces(self, max_seconds: float | None = None) -> Iterator[np.ndarray]:
        options = {"m3u8_hold_counters": "10"} if self.is_url else {}  # HLS: give up after 10 reloads w/o news
        timeout = (self.open_timeout, self.read_timeout) if self.is_url else None
        return _decode(self.source, max_seconds, options=options, timeout=timeout, info=self.info)

    def __iter__(self) -> Iterator[np.ndarray]:
        paced, began, sent = None, 0.0, 0
        batch: list[np.ndarray] = []
        for samples in self._pieces():
            if paced is None:  # the first piece: the source is open, and known to be finite or live
                paced = self.info["finite"] if self.realtime is None else self.realtime
                self.info["paced"] = paced
                began = time.monotonic()
            batch.append(samples)
            if sum(len(b) for b in batch) < CHUNK_SECONDS * SAMPLING_RATE:
                continue
            chunk = np.concatenate(batch)
            batch = []
            sent += len(chunk)
            if paced:  # a piece is "heard" once its last sample has been played
                time.sleep(max(0.0, began + sent / SAMPLING_RATE - time.monotonic()))
            yield chunk
        if batch:
            chunk = np.concatenate(batch)
            if paced:
                time.sleep(max(0.0, began + (sent + len(chunk)) / SAMPLING_RATE - time.monotonic()))
            yield chunk

    def read_whole(self, max_seconds: float | None = None) -> np.ndarray:
        """All the audio of a finite source, read as fast as it comes (to transcribe it like a file). Refuses a live
        source, which has no end, and audio longer than `max_seconds`."""
        pieces = self._pieces(max_seconds)
        received: list[np.ndarray] = []
        try:
            for samples in pieces:
                if not received:  # the first piece: the source is open
                    self._check_whole(max_seconds)
                received.append(samples)
        finally:
            pieces.close()
        audio = np.concatenate(received) if received else np.zeros(0, dtype=np.float32)
        if audio.size == 0:
            raise AudioInputError(f"{self.source} holds no audio")
        if max_seconds is not None and len(audio) > max_seconds * SAMPLING_RATE:
            raise AudioInputError(f"{self.source} is longer than the limit of {format_duration(max_seconds)}")
        return audio

    def _check_whole(self, max_seconds: float | None) -> None:
        if not self.info["finite"]:
            raise AudioInputError(f"{self.source} is a live stream (FFmpeg knows no duration for it), so it cannot "
                                  f"be transcribed whole: caption it as it plays instead")
        duration = self.info["duration"]
        if max_seconds is not None and duration is not None and duration > max_seconds:
            raise AudioInputError(f"{self.source} is {format_duration(duration)} long, longer than the limit of "
                                  f"{format_duration(max_seconds)}")

    def describe(self) -> str:
        """How the source was opened, for a status line ("" until it is open): format, codec, its own rate and
        channels, and whether it was treated as finite (played at real time) or live (as it arrives)."""
        info = self.info
        if "finite" not in info:
            return ""
        if info["finite"]:
            kind = f"finite, {format_duration(info['duration'])}" if info["duration"] is not None else "finite"
        else:
            kind = "live"
        if "paced" in info:
            kind += ", played at real time" if info["paced"] else ", read as it arrives"
        return (f"{info['format']} / {info['codec']}, {info['sample_rate']} Hz, {info['channels']} channel(s); "
                f"{kind}")
