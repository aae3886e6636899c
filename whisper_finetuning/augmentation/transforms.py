"""The config's transforms as audiomentations transforms (three small ones of our own where audiomentations has no
fitting one: speed perturbation, a telephone channel, a bank of simulated rooms), each wrapped in a `Step` that
applies it and says what it drew.

Every transform draws its parameters from Python's global `random` and NumPy's global `np.random` (that is how
audiomentations works) and keeps them on the transform object: the Augmenter seeds both per sample, under a lock.
"""

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import pyroomacoustics
import soxr
from audiomentations import (AddBackgroundNoise, AddColorNoise, ApplyImpulseResponse, Gain, HighPassFilter,
                             LowPassFilter, PitchShift)
from audiomentations.core.transforms_interface import BaseWaveformTransform
from scipy.signal import fftconvolve

from ..data.audio import SAMPLING_RATE
from .config import TransformSpec, audio_files

NARROWBAND_RATE = 8_000  # telephone sampling


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0


def with_loudness_of(samples: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`samples` scaled to the RMS of `reference` (unchanged when either is silent)."""
    level, target = rms(samples), rms(reference)
    return samples * np.float32(target / level) if level > 0 and target > 0 else samples


def decibels(ratio: float) -> float | None:
    return 20 * math.log10(ratio) if ratio > 0 else None


class SpeedPerturbation(BaseWaveformTransform):
    """Faster or slower speech by resampling (Ko et al., 2015): read the clip as if it had been recorded at
    sample_rate * factor and resample it to sample_rate, so it lasts 1 / factor as long and its pitch moves by the
    same factor."""

    def __init__(self, min_factor: float = 0.9, max_factor: float = 1.1, p: float = 0.5):
        super().__init__(p)
        self.min_factor, self.max_factor = min_factor, max_factor

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.parameters["factor"] = random.uniform(self.min_factor, self.max_factor)

    def apply(self, samples, sample_rate):
        return soxr.resample(samples, sample_rate * self.parameters["factor"], sample_rate, quality="HQ")


class Telephone(BaseWaveformTransform):
    """A telephone channel: the band between a high-pass and a low-pass filter (audiomentations' Butterworth
    filters, 24 dB per octave), optionally 8 kHz sampling and 8-bit mu-law companding (G.711, librosa), then back to
    the original rate and length."""

    def __init__(self, min_low_hz=200.0, max_low_hz=400.0, min_high_hz=3000.0, max_high_hz=3600.0,
                 narrowband: bool = True, mu_law: bool = True, p: float = 0.5):
        super().__init__(p)
        self.min_low_hz, self.max_low_hz, self.min_high_hz, self.max_high_hz = min_low_hz, max_low_hz, \
            min_high_hz, max_high_hz
        self.narrowband, self.mu_law = narrowband, mu_law
        self.high_pass = HighPassFilter(min_low_hz, max_low_hz, min_rolloff=24, max_rolloff=24, p=1.0)
        self.low_pass = LowPassFilter(min_high_hz, max_high_hz, min_rolloff=24, max_rolloff=24, p=1.0)

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            self.high_pass.randomize_parameters(samples, sample_rate)
            self.low_pass.randomize_parameters(samples, sample_rate)
            self.parameters["low_hz"] = self.high_pass.parameters["cutoff_freq"]
            self.parameters["high_hz"] = self.low_pass.parameters["cutoff_freq"]

    def apply(self, samples, sample_rate):
        band = self.low_pass.apply(self.high_pass.apply(samples, sample_rate), sample_rate)
        rate = NARROWBAND_RATE if self.narrowband else sample_rate
        channel = soxr.resample(band, sample_rate, rate, quality="HQ") if self.narrowband else band
        if self.mu_law:
            codes = librosa.mu_compress(np.clip(channel, -1.0, 1.0), mu=255, quantize=True)
            channel = librosa.mu_expand(codes, mu=255, quantize=True).astype(np.float32)
        if not self.narrowband:
            return channel
        restored = soxr.resample(channel, rate, sample_rate, quality="HQ")[: len(samples)]
        return np.pad(restored, (0, len(samples) - len(restored)))


class SyntheticRoom(BaseWaveformTransform):
    """Reverberation of a simulated shoebox room (pyroomacoustics: image sources up to order 3 and ray tracing for
    the tail, air absorption). Simulating a room takes 0.1-0.4 s, too slow for every sample, so a bank of `rooms`
    rooms is simulated, each once on first use from (seed, room number) alone, and each sample draws a room number:
    the same number gives the same room in every run, process and thread."""

    def __init__(self, rt60=(0.2, 0.8), width=(3.0, 8.0), depth=(3.0, 8.0), height=(2.4, 3.5),
                 mic_distance=(0.5, 2.5), rooms: int = 32, seed: int = 0, p: float = 0.5):
        super().__init__(p)
        self.rt60, self.width, self.depth, self.height = rt60, width, depth, height
        self.mic_distance, self.rooms, self.seed = mic_distance, rooms, seed
        self.bank: dict[tuple[int, int], tuple[np.ndarray, dict]] = {}

    def randomize_parameters(self, samples, sample_rate):
        super().randomize_parameters(samples, sample_rate)
        if self.parameters["should_apply"]:
            number = random.randrange(self.rooms)
            self.parameters["room"] = number
            self.parameters.update(self.room(number, sample_rate)[1])

    def apply(self, samples, sample_rate):
        impulse_response = self.room(self.parameters["room"], sample_rate)[0]
        return fftconvolve(samples, impulse_response)[: len(samples)].astype(np.float32)

    def room(self, number: int, sample_rate: int) -> tuple[np.ndarray, dict]:
        if (number, sample_rate) not in self.bank:
            self.bank[number, sample_rate] = self.simulate(number, sample_rate)
        return self.bank[number, sample_rate]

    def simulate(self, number: int, sample_rate: int) -> tuple[np.ndarray, dict]:
        draw = np.random.default_rng([self.seed % 2**32, number])
        size = np.array([draw.uniform(*self.width), draw.uniform(*self.depth), draw.uniform(*self.height)])
        rt60 = draw.uniform(*self.rt60)
        while True:  # a short RT60 in a large room needs walls absorbing more than everything: take a longer one
            try:
                absorption, _ = pyroomacoustics.inverse_sabine(rt60, size)
                break
            except ValueError:
                rt60 *= 1.1
        margin = 0.5  # metres from the walls
        source = draw.uniform(margin, size - margin)
        azimuth, elevation = draw.uniform(-np.pi, np.pi), draw.uniform(-0.3, 0.3)
        direction = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                              np.sin(elevation)])
        microphone = np.clip(source + draw.uniform(*self.mic_distance) * direction, margin, size - margin)
        # The ray tracer draws from pyroomacoustics' own generators: seed them from the room number too.
        numpy_seed, libroom_seed = draw.integers(2**32, size=2)
        pyroomacoustics.random.seed(numpy=int(numpy_seed), libroom=int(libroom_seed))
        room = pyroomacoustics.ShoeBox(size, fs=sample_rate, materials=pyroomacoustics.Material(absorption),
                                       max_order=3, ray_tracing=True, air_absorption=True)
        room.set_ray_tracing(receiver_radius=0.5, n_rays=10_000, energy_thres=1e-5)
        room.add_source(source)
        room.add_microphone(microphone)
        room.compute_rir()
        description = {"rt60": rt60, "size": "x".join(f"{x:.1f}" for x in size),
                       "mic_distance": float(np.linalg.norm(microphone - source))}
        return np.asarray(room.rir[0][0], dtype=np.float32), description


@dataclass
class Step:
    """One transform of the config: applies it (with its probability) and describes what it drew."""
    name: str
    transform: BaseWaveformTransform
    describe: Callable[[dict, np.ndarray], dict]  # (the transform's drawn parameters, the audio before) -> labels
    keep_loudness: bool = False  # reverberation: the direct sound a metre away is far quieter than the source

    def __call__(self, samples: np.ndarray) -> tuple[np.ndarray, dict | None]:
        """(audio, what was drawn) or (the same audio, None) when the transform was not drawn."""
        result = self.transform(samples, SAMPLING_RATE)
        if not self.transform.parameters["should_apply"] or len(samples) == 0:
            return samples, None
        result = np.asarray(result, dtype=np.float32)
        if self.keep_loudness:
            result = with_loudness_of(result, samples)
        return result, self.describe(self.transform.parameters, samples)


def colored_noise(parameters: dict, p: float, seed: int) -> Step:
    (min_snr, max_snr), (min_decay, max_decay) = parameters["snr_db"], parameters["f_decay"]
    transform = AddColorNoise(min_snr, max_snr, min_decay, max_decay, p=p)
    return Step("colored_noise", transform, lambda drawn, before: {
        "snr_db": decibels(rms(before) / drawn["desired_noise_rms"]) if drawn["desired_noise_rms"] > 0 else None,
        "f_decay": drawn["f_decay"]})


def background_noise(parameters: dict, p: float, seed: int) -> Step:
    (min_snr, max_snr) = parameters["snr_db"]
    transform = AddBackgroundNoise(audio_files(parameters["folder"]), min_snr, max_snr, noise_rms="relative", p=p)
    return Step("background_noise", transform, lambda drawn, before: {
        "snr_db": drawn["snr_db"], "file": Path(drawn["noise_file_path"]).name, "offset_s": drawn["offset"]})


def speed(parameters: dict, p: float, seed: int) -> Step:
    return Step("speed", SpeedPerturbation(*parameters["factor"], p=p),
                lambda drawn, before: {"factor": drawn["factor"]})


def pitch_shift(parameters: dict, p: float, seed: int) -> Step:
    transform = PitchShift(*parameters["semitones"], method="signalsmith_stretch", p=p)
    return Step("pitch_shift", transform, lambda drawn, before: {"semitones": drawn["num_semitones"]})


def gain(parameters: dict, p: float, seed: int) -> Step:
    return Step("gain", Gain(*parameters["gain_db"], p=p),
                lambda drawn, before: {"gain_db": decibels(drawn["amplitude_ratio"])})


def room(parameters: dict, p: float, seed: int) -> Step:
    transform = SyntheticRoom(parameters["rt60"], parameters["width"], parameters["depth"], parameters["height"],
                              parameters["mic_distance"], parameters["rooms"], seed, p=p)
    return Step("room", transform, lambda drawn, before: {
        key: drawn[key] for key in ("room", "rt60", "size", "mic_distance")}, keep_loudness=True)


def impulse_response(parameters: dict, p: float, seed: int) -> Step:
    transform = ApplyImpulseResponse(audio_files(parameters["folder"]), p=p, leave_length_unchanged=True)
    return Step("impulse_response", transform, lambda drawn, before: {"file": Path(drawn["ir_file_path"]).name},
                keep_loudness=True)


def telephone(parameters: dict, p: float, seed: int) -> Step:
    transform = Telephone(*parameters["low_hz"], *parameters["high_hz"], parameters["narrowband"],
                          parameters["mu_law"], p=p)
    return Step("telephone", transform, lambda drawn, before: {"low_hz": drawn["low_hz"], "high_hz": drawn["high_hz"]})


BUILDERS = {"colored_noise": colored_noise, "background_noise": background_noise, "speed": speed,
            "pitch_shift": pitch_shift, "gain": gain, "room": room, "impulse_response": impulse_response,
            "telephone": telephone}


def build_step(spec: TransformSpec, seed: int) -> Step:
    return BUILDERS[spec.name](spec.parameters, spec.p, seed)
