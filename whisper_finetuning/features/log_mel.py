"""Whisper's log-mel features, identical to `WhisperFeatureExtractor` but without transforming the silent padding.

The feature extractor pads every clip to 30 s and runs the STFT over all of it, so a 4 s clip costs as much as a
30 s one. The frames that only see padding have a known value (log10 of the 1e-10 floor), so we transform the real
audio plus `n_fft` zeros (which makes the frames at the border and the reflect padding exactly what the full
transform sees) and fill in the rest. Same torch operations on the same samples: bit-identical output.
"""

import numpy as np
import torch

SILENCE = float(np.log10(1e-10))  # log-mel of a frame of zeros, before the dynamic-range clamp


class LogMelExtractor:
    def __init__(self, feature_extractor):
        self.n_fft = feature_extractor.n_fft
        self.hop_length = feature_extractor.hop_length
        self.n_samples = feature_extractor.n_samples  # 30 s
        self.n_frames = feature_extractor.nb_max_frames
        self.num_mel_bins = feature_extractor.feature_size  # 80, or 128 for large-v3
        self.window = torch.hann_window(self.n_fft)
        self.mel_filters = torch.from_numpy(feature_extractor.mel_filters).to(torch.float32)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """float32 [num_mel_bins, n_frames] for one 16 kHz clip (clips over 30 s are cut, as the extractor does)."""
        waveform = np.asarray(waveform, dtype=np.float32)[: self.n_samples]
        length = min(len(waveform) + self.n_fft, self.n_samples)
        padded = np.zeros(length, dtype=np.float32)
        padded[: len(waveform)] = waveform
        stft = torch.stft(torch.from_numpy(padded), self.n_fft, self.hop_length, window=self.window,
                          return_complex=True)
        frames = min(stft.shape[-1], self.n_frames)
        magnitudes = (stft[..., :frames].abs() ** 2).contiguous()
        log_spec = torch.clamp(self.mel_filters.T @ magnitudes, min=1e-10).log10()
        peak = max(float(log_spec.max()), SILENCE) if frames < self.n_frames else float(log_spec.max())
        # Same operations as the extractor, on the real frames; the padding frames all get one known value.
        log_spec = (torch.maximum(log_spec, torch.tensor(peak - 8.0)) + 4.0) / 4.0
        features = np.empty((self.num_mel_bins, self.n_frames), dtype=np.float32)
        features[:, :frames] = log_spec.numpy()
        features[:, frames:] = (np.float32(max(SILENCE, peak - 8.0)) + np.float32(4.0)) / np.float32(4.0)
        return features


def compact(features: np.ndarray, dtype=np.float16) -> tuple[bytes, int, float]:
    """Features stored without their padding: (bytes of the frames up to the last one that is not padding, in
    `dtype`; that frame count; the padding value). Padding frames all hold one value (see the module docstring)."""
    padding_value = features[0, -1]
    differs = np.any(features != padding_value, axis=0)
    num_frames = int(np.nonzero(differs)[0][-1]) + 1 if differs.any() else 0
    return np.ascontiguousarray(features[:, :num_frames], dtype=dtype).tobytes(), num_frames, float(padding_value)


def expand(raw: bytes, num_frames: int, padding_value: float, num_mel_bins: int, total_frames: int,
           dtype=np.float16) -> np.ndarray:
    """The float32 [num_mel_bins, total_frames] features that `compact` stored."""
    features = np.full((num_mel_bins, total_frames), np.dtype(dtype).type(padding_value), dtype=np.float32)
    features[:, :num_frames] = np.frombuffer(raw, dtype=dtype).reshape(num_mel_bins, num_frames)
    return features

