"""Decode audio with libsndfile (WAV, FLAC, OGG, MP3) and resample with soxr: no FFmpeg needed."""

import io

import numpy as np
import soundfile
import soxr

SAMPLING_RATE = 16_000  # what Whisper's feature extractor expects


class AudioError(ValueError):
    pass


class ShorterThanListedError(AudioError):
    """A clip that decodes much shorter than its dataset lists: a truncated file."""


# A clip is broken when it decodes more than max(0.5 s, 20 %) shorter than its dataset lists. Honest differences are
# far smaller: MP3 encoder delay and padding and the rounding of a listed length (Common Voice: whole milliseconds)
# are tens of milliseconds, and a length estimated from a VBR file's headers is off by a few percent. A truncated
# download or an interrupted conversion loses seconds.
SHORTER_THAN_LISTED_SECONDS = 0.5
SHORTER_THAN_LISTED_FRACTION = 0.2


def to_model_rate(samples: np.ndarray, sample_rate: int, target_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mix down to mono and resample to `target_rate`, as float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if sample_rate != target_rate:
        samples = soxr.resample(samples, sample_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(samples, dtype=np.float32)


def load_audio(path, target_rate: int = SAMPLING_RATE, source: str | None = None) -> np.ndarray:
    """Read an audio file (a path or a file object) as a mono float32 array at `target_rate`; unreadable or empty
    files raise AudioError naming `source` (default: the path)."""
    source = source or str(path)
    try:
        samples, sample_rate = soundfile.read(path, dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioError(f"cannot decode audio file {source}: {error}") from error
    if samples.size == 0:
        raise AudioError(f"audio file {source} holds no samples")
    if not np.isfinite(samples).all():  # a float WAV can hold NaN or inf; they would poison the features and loss
        raise AudioError(f"audio file {source} holds non-finite samples (NaN or infinity); re-encode it from its "
                         "original or remove it")
    return to_model_rate(samples, sample_rate, target_rate)


def check_listed_duration(samples: np.ndarray, listed_seconds: float, source: str,
                          sample_rate: int = SAMPLING_RATE) -> None:
    """Raise ShorterThanListedError when decoded audio is much shorter than the duration its dataset lists
    (`listed_seconds` <= 0: nothing listed, nothing to check)."""
    decoded = len(samples) / sample_rate
    if listed_seconds > 0 and decoded < listed_seconds - max(SHORTER_THAN_LISTED_SECONDS,
                                                             SHORTER_THAN_LISTED_FRACTION * listed_seconds):
        raise ShorterThanListedError(f"audio shorter than listed: {decoded:.1f} s decoded, {listed_seconds:.1f} s "
                                     f"listed ({source}; a truncated file? download or convert it again)")


def decode_row_audio(audio: dict) -> np.ndarray:
    """16 kHz mono float32 from a row's {"path", "bytes"} (see `rows`)."""
    if audio.get("bytes"):
        return load_audio(io.BytesIO(audio["bytes"]), source=f"{audio.get('path') or 'a sample'} (bytes)")
    if not audio.get("path"):
        raise AudioError("sample has neither audio bytes nor a path")
    return load_audio(audio["path"])
