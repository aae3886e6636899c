"""Audio decoding with libsndfile and resampling with soxr."""

import numpy as np
import pytest
import soundfile

from whisper_finetuning.data.audio import AudioError, load_audio, to_model_rate


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
