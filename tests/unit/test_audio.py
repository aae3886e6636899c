"""Audio decoding with libsndfile and resampling with soxr."""

import numpy as np
import pytest
import soundfile

from whisper_finetuning.data.audio import (AudioError, ShorterThanListedError, check_listed_duration, load_audio,
                                         to_model_rate)


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize("suffix, rate, channels", [(".wav", 16000, 1), (".flac", 48000, 1), (".wav", 22050, 2),
                                                   (".ogg", 44100, 1), (".mp3", 48000, 1)])
def test_load_audio_returns_16k_mono(tmp_path, suffix, rate, channels):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, tone(1.5, rate, channels), rate)
    samples = load_audio(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 24000) < 1200  # mp3 adds encoder padding
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 16000 / len(samples) - 440) < 5  # still a 440 Hz tone


def test_broken_audio_files_raise_a_clear_error(tmp_path):
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(b"ID3\x03\x00\x00\x00" + bytes(10))
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    for path, message in [(truncated, "cannot decode"), (empty, "holds no samples"),
                          (tmp_path / "missing.wav", "cannot decode")]:
        with pytest.raises(AudioError, match=message) as error:
            load_audio(path)
        assert path.name in str(error.value)


def test_resampling_keeps_duration():
    assert len(to_model_rate(tone(2.0, 44100), 44100)) == 32000


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_unreadable_audio(tmp_path, bad):
    samples = tone(1.0, 16000)
    samples[100] = bad
    path = tmp_path / "nan.wav"
    soundfile.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=rf"audio file {path} holds non-finite samples \(NaN or infinity\); re-encode"):
        load_audio(path)


@pytest.mark.parametrize("decoded, listed, broken", [
    (1.2, 4.5, True),    # a truncated clip
    (4.3, 4.5, False),   # MP3 padding, rounding: kept
    (0.6, 1.2, True),    # a short clip: more than 0.5 s missing
    (0.8, 1.2, False),
    (16.0, 20.5, True),  # a long clip: more than 20 % missing
    (16.5, 20.5, False),
    (1.0, -1.0, False),  # nothing listed
])
def test_audio_much_shorter_than_listed(decoded, listed, broken):
    samples = np.zeros(int(decoded * 16000), np.float32)
    if broken:
        with pytest.raises(ShorterThanListedError, match=rf"audio shorter than listed: {decoded:.1f} s decoded, "
                                                         rf"{listed:.1f} s listed \(clip.mp3; a truncated file\?"):
            check_listed_duration(samples, listed, "clip.mp3")
    else:
        check_listed_duration(samples, listed, "clip.mp3")
