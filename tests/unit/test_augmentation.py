"""On-the-fly waveform augmentation (whisper_finetuning.augmentation): each transform does to the audio what it
says (measured), draws are fixed by (seed, key) in any thread and across a resume, labels and the sample rate are
untouched, the stream without augmentation is bit-identical, config mistakes get clear errors, and the pictures
command writes its PNGs."""

import itertools
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile
from scipy.signal import welch

import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments, assert_same_weights, losses, train_stopped_by_sigterm
from whisper_finetuning.augmentation import load_augmenter
from whisper_finetuning.augmentation.augmenter import Augmenter
from whisper_finetuning.augmentation.config import AugmentationConfigError, load_config, parse_config
from whisper_finetuning.augmentation import pictures
from whisper_finetuning.data.audio import SAMPLING_RATE as SR
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features.preprocessing import Preprocessor, prepare
from whisper_finetuning.training.arguments import TrainingDataArguments
from whisper_finetuning.training.stream import TrainingStream


def augmenter(*transforms, seed=0) -> Augmenter:
    return Augmenter(parse_config({"transforms": list(transforms)}), seed)


def voice(seconds=2.0, f0=150.0, level=0.1) -> np.ndarray:
    """A voiced sound: harmonics of f0 with a syllable-rate envelope."""
    t = np.arange(int(seconds * SR)) / SR
    harmonics = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 20))
    return (level * harmonics * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def sine(frequency, seconds=1.0, level=0.1) -> np.ndarray:
    return (level * np.sin(2 * np.pi * frequency * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def power(x) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def dominant_frequency(x) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.fft.rfftfreq(8 * len(x), 1 / SR)[np.argmax(spectrum)])


def band_power(x, low, high) -> float:
    frequencies, density = welch(x, SR, nperseg=1024)
    return float(density[(frequencies >= low) & (frequencies < high)].sum())


def test_noise_is_added_at_a_measured_snr_inside_the_range(tmp_path):
    clean = voice()
    noisy = augmenter({"name": "colored_noise", "p": 1, "snr_db": [5, 10]})
    for key in range(8):
        out, applied = noisy(clean, (0, key))
        measured = 10 * np.log10(power(clean) / power(out - clean))
        assert 4.9 < measured < 10.1
        assert abs(measured - applied[0].parameters["snr_db"]) < 0.1
    # A folder of noise recordings (other sample rates, resampled), mixed in at the SNR drawn.
    folder = tmp_path / "noise"
    folder.mkdir()
    generator = np.random.default_rng(0)
    for name, rate in (("hum.wav", 8000), ("fan.flac", 22050)):
        soundfile.write(folder / name, 0.2 * generator.standard_normal(3 * rate), rate)
    mixed = augmenter({"name": "background_noise", "p": 1, "folder": str(folder), "snr_db": [0, 5]})
    files = set()
    for key in range(6):
        out, applied = mixed(clean, (0, key))
        measured = 10 * np.log10(power(clean) / power(out - clean))
        assert -0.2 < measured < 5.2 and abs(measured - applied[0].parameters["snr_db"]) < 0.2
        files.add(applied[0].parameters["file"])
    assert files == {"hum.wav", "fan.flac"}


def test_speed_changes_the_duration_by_the_drawn_factor_and_the_pitch_with_it():
    faster_or_slower = augmenter({"name": "speed", "p": 1, "factor": [0.85, 1.15]})
    clip = sine(500)
    factors = []
    for key in range(6):
        out, applied = faster_or_slower(clip, (0, key))
        factor = applied[0].parameters["factor"]
        factors.append(factor)
        assert 0.85 <= factor <= 1.15
        assert len(out) / len(clip) == pytest.approx(1 / factor, abs=0.002)
        assert dominant_frequency(out) == pytest.approx(500 * factor, rel=0.005)
    assert min(factors) < 0.95 and max(factors) > 1.05  # the range is used, not one value


def test_pitch_shift_keeps_the_duration_and_moves_the_pitch_by_the_drawn_semitones():
    shift = augmenter({"name": "pitch_shift", "p": 1, "semitones": [-3, 3]})
    clip = sine(440)
    for key in range(6):
        out, applied = shift(clip, (0, key))
        semitones = applied[0].parameters["semitones"]
        assert -3 <= semitones <= 3 and len(out) == len(clip)
        middle = slice(len(out) // 4, 3 * len(out) // 4)  # away from the stretcher's start-up and end
        assert dominant_frequency(out[middle]) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


def test_gain_scales_by_the_drawn_decibels():
    louder_or_quieter = augmenter({"name": "gain", "p": 1, "gain_db": [-6, 6]})
    clip = voice(level=0.05)
    for key in range(6):
        out, applied = louder_or_quieter(clip, (0, key))
        measured = 10 * np.log10(power(out) / power(clip))
        assert -6.01 < measured < 6.01 and measured == pytest.approx(applied[0].parameters["gain_db"], abs=0.01)


def test_a_clip_pushed_over_full_scale_is_scaled_down_not_clipped():
    out, _ = augmenter({"name": "gain", "p": 1, "gain_db": 20})(sine(300, level=0.5), (0, 0))
    assert np.max(np.abs(out)) == pytest.approx(1.0) and out.dtype == np.float32
    assert dominant_frequency(out) == pytest.approx(300, abs=1)
    assert band_power(out, 600, 8000) < 1e-6 * band_power(out, 0, 600)  # no clipping harmonics


def burst_then_silence() -> np.ndarray:
    clip = np.zeros(SR, dtype=np.float32)
    clip[: SR // 4] = 0.1 * np.random.default_rng(1).standard_normal(SR // 4)
    return clip


@pytest.mark.parametrize("kind", ["room", "impulse_response"])
def test_reverberation_leaves_a_decaying_tail_in_the_silence_and_keeps_the_loudness(kind, tmp_path):
    if kind == "room":
        transform = {"name": "room", "p": 1, "rt60": [0.4, 0.6], "rooms": 2}
    else:  # a recorded impulse response: a direct sound and an exponentially decaying tail (RT60 0.5 s)
        t = np.arange(SR) / SR
        response = np.random.default_rng(2).standard_normal(SR) * np.exp(-6.9 * t / 0.5) * 0.1
        response[0] = 1.0
        (tmp_path / "irs").mkdir()
        soundfile.write(tmp_path / "irs" / "hall.wav", response, SR)
        transform = {"name": "impulse_response", "p": 1, "folder": str(tmp_path / "irs")}
    clip = burst_then_silence()
    out, applied = augmenter(transform)(clip, (0, 0))
    assert applied[0].name == kind and len(out) == len(clip)
    burst = power(out[: SR // 4])
    early_tail, late_tail = power(out[SR // 4 + 800: SR // 4 + 2400]), power(out[SR // 4 + 4000: SR // 4 + 5600])
    assert power(clip[SR // 4:]) == 0
    assert early_tail > 1e-4 * burst  # energy where the input is silent: within 40 dB of the burst
    assert late_tail < early_tail  # and it decays
    assert power(out) == pytest.approx(power(clip), rel=1e-3)


def test_telephone_keeps_the_speech_band_and_removes_what_lies_outside():
    noise = (0.05 * np.random.default_rng(3).standard_normal(2 * SR)).astype(np.float32)
    out, applied = augmenter({"name": "telephone", "p": 1})(noise, (0, 0))
    assert len(out) == len(noise)
    assert 200 <= applied[0].parameters["low_hz"] <= 400 and 3000 <= applied[0].parameters["high_hz"] <= 3600
    assert band_power(out, 4300, 8000) < 1e-4 * band_power(noise, 4300, 8000)  # nothing above 4 kHz survives
    assert band_power(out, 20, 100) < 0.05 * band_power(noise, 20, 100)
    assert band_power(out, 800, 2500) == pytest.approx(band_power(noise, 800, 2500), rel=0.3)


MIXED = [{"name": "speed", "p": 0.5}, {"name": "pitch_shift", "p": 0.5}, {"name": "room", "p": 0.3, "rooms": 2},
         {"name": "telephone", "p": 0.3}, {"name": "colored_noise", "p": 0.5}, {"name": "gain", "p": 0.5}]


def test_the_same_key_gives_the_same_audio_in_any_thread_and_a_new_key_other_audio():
    clip = voice(seconds=1.0)
    first = augmenter(*MIXED, seed=7)
    keys = [(number // 8, number % 8) for number in range(16)]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    sequential = [first(clip, key) for key in keys]
    assert random.getstate() == python_state  # the program's own random streams are left as they were
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    second = augmenter(*MIXED, seed=7)  # another instance, as after a restart
    shuffled = random.Random(0).sample(keys, len(keys))
    with ThreadPoolExecutor(8) as pool:
        threaded = dict(zip(shuffled, pool.map(lambda key: second(clip, key), shuffled)))
    for key, (audio, applied) in zip(keys, sequential):
        assert np.array_equal(threaded[key][0], audio) and threaded[key][1] == applied
    outputs = {audio.tobytes() for audio, _ in sequential}
    assert len(outputs) == len(keys)  # every key its own draw
    other_seed = augmenter(*MIXED, seed=8)
    assert sum(np.array_equal(other_seed(clip, key)[0], audio) for key, (audio, _) in zip(keys, sequential)) <= 1
    assert {step.name for _, applied in sequential for step in applied} == {t["name"] for t in MIXED}


def tone_manifest(folder, count=12) -> str:
    records = []
    for i in range(count):
        name = f"clip{i}.wav"
        soundfile.write(folder / name, voice(seconds=0.5 + 0.05 * i, f0=120 + 10 * i), SR)
        records.append({"id": f"r{i}", "file_name": name, "text": f"sentence number {i}"})
    path = folder / "train.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return str(path)


def numbered(rows, number=0):
    return rows.map(lambda row, index: {"row": index, "pass": number}, with_indices=True)


def test_labels_and_sample_rate_are_untouched_through_the_preprocessor(tmp_path, processor):
    rows = numbered(load_source(tone_manifest(tmp_path), None, "train"))
    plain = list(prepare(rows, Preprocessor(processor)))
    noisy = Preprocessor(processor, augment=augmenter({"name": "colored_noise", "p": 1, "snr_db": [0, 5]},
                                                      {"name": "gain", "p": 1}))
    augmented = list(prepare(rows, noisy))
    assert [e["labels"] for e in augmented] == [e["labels"] for e in plain]
    assert [e["input_length"] for e in augmented] == [e["input_length"] for e in plain]  # same samples, same rate
    assert all(not np.array_equal(a["input_features"], p["input_features"]) for a, p in zip(augmented, plain))
    assert noisy.stats.augmented == {"colored_noise": 12, "gain": 12}
    faster = list(prepare(rows, Preprocessor(processor, augment=augmenter({"name": "speed", "p": 1,
                                                                           "factor": 1.25}))))
    for fast, slow in zip(faster, plain):  # speed is applied before the duration is measured (and filtered)
        assert fast["input_length"] == pytest.approx(slow["input_length"] / 1.25, abs=1e-3)
        assert fast["labels"] == slow["labels"]
    with pytest.raises(ValueError, match="'pass' and 'row'"):
        list(prepare(load_source(tone_manifest(tmp_path), None, "train"), noisy))


def test_without_augmentation_the_stream_is_bit_identical_to_the_plain_pipeline(tmp_path, processor):
    rows = load_source(tone_manifest(tmp_path), None, "train")
    stream = TrainingStream(rows, lambda rows: prepare(rows, Preprocessor(processor, augment=None)), seed=5,
                            shuffle_buffer_size=6)
    streamed = list(itertools.islice(stream, 12))
    shuffled = rows.shuffle(seed=5, buffer_size=6)
    shuffled.set_epoch(0)
    expected = list(prepare(shuffled.map(lambda row, index: {"row": index}, with_indices=True),
                            Preprocessor(processor)))  # the stream as it was before augmentation existed
    assert [e["row"] for e in streamed] == [e["row"] for e in expected]
    for got, want in zip(streamed, expected):
        assert got["input_features"].tobytes() == np.asarray(want["input_features"]).tobytes()
        assert got["labels"] == want["labels"]


def test_a_resumed_stream_augments_every_sample_as_the_uninterrupted_one(tmp_path, processor):
    rows = load_source(tone_manifest(tmp_path), None, "train")
    config = {"transforms": [{"name": "speed", "p": 0.5}, {"name": "colored_noise", "p": 0.7}]}
    (tmp_path / "augment.yaml").write_text(json.dumps(config))

    def read(position, count):
        preprocessor = Preprocessor(processor, augment=load_augmenter(str(tmp_path / "augment.yaml"), seed=3))
        stream = TrainingStream(rows, lambda rows: prepare(rows, preprocessor), seed=3, shuffle_buffer_size=6)
        stream.position = position
        return [(e["pass"], e["row"], e["input_features"].tobytes()) for e in itertools.islice(stream, count)]

    straight = read((0, 0), 24)
    assert [p for p, _, _ in straight] == [0] * 12 + [1] * 12
    assert straight[:12] != straight[12:]  # the same clips get new draws in the next pass
    assert read((0, 7), 9) == straight[7:16]
    assert read((1, 4), 8) == straight[16:24]


@pytest.mark.parametrize("content, message", [
    ({"transforms": [{"name": "echo", "p": 1}]}, "unknown transform 'echo'; known: colored_noise"),
    ({"transforms": [{"name": "gain", "p": 1, "gain": 3}]}, "unknown parameter(s) gain; gain takes p and gain_db"),
    ({"transforms": [{"name": "speed", "p": 1, "factor": [1.1, 0.9]}]}, "runs backwards; write [0.9, 1.1]"),
    ({"transforms": [{"name": "speed", "p": 1, "factor": [0.1, 1.1]}]}, "outside the allowed 0.5 to 2"),
    ({"transforms": [{"name": "speed", "p": 1, "factor": "fast"}]}, "must be a range [min, max] or one number"),
    ({"transforms": [{"name": "gain"}]}, "give p, the probability"),
    ({"transforms": [{"name": "gain", "p": 1.5}]}, "p must be a probability from 0 to 1"),
    ({"transforms": [{"name": "background_noise", "p": 1}]}, "give the folder of audio files"),
    ({"transforms": [{"name": "impulse_response", "p": 1, "folder": "/no/such/folder"}]}, "is not a folder"),
    ({"transforms": [{"name": "telephone", "p": 1, "high_hz": [3000, 6000]}]}, "above what 8 kHz sampling keeps"),
    ({"transforms": [{"name": "room", "p": 1, "rooms": 0}]}, "whole number from 1 to 1000"),
    ({"transforms": []}, "non-empty list of transforms"),
    ({"transform": [{"name": "gain", "p": 1}]}, "the single key 'transforms'"),
], ids=lambda value: "" if isinstance(value, dict) else value[:30])
def test_config_mistakes_get_clear_errors(content, message):
    with pytest.raises(AugmentationConfigError) as error:
        parse_config(content, "my.yaml")
    assert message in str(error.value) and str(error.value).startswith("my.yaml")


def test_config_files_are_read_and_checked(tmp_path):
    with pytest.raises(AugmentationConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("transforms: [name: gain")
    with pytest.raises(AugmentationConfigError, match="not valid YAML or JSON"):
        load_config(tmp_path / "broken.yaml")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(AugmentationConfigError, match="holds no audio files"):
        parse_config({"transforms": [{"name": "background_noise", "p": 1, "folder": str(tmp_path / "empty_folder")}]})
    noise = load_config("configs/augmentation/noise.yaml")
    assert [spec.name for spec in noise.transforms] == ["colored_noise"]
    low, high = noise.transforms[0].parameters["snr_db"]
    assert low <= 5 and high >= 10  # covers the noisy test clips (5-10 dB)
    quarter = load_config("configs/augmentation/noise_quarter.yaml")  # the same noise on fewer samples
    assert quarter.transforms[0].parameters == noise.transforms[0].parameters
    assert (noise.transforms[0].p, quarter.transforms[0].p) == (0.5, 0.25)
    full = load_config("configs/augmentation/full.yaml")
    assert {spec.name for spec in full.transforms} >= {"speed", "pitch_shift", "room", "telephone", "colored_noise",
                                                       "gain"}


def test_a_training_run_resumed_after_sigterm_matches_the_uninterrupted_augmented_run(
        tiny_model_dir, corpus, tmp_path, monkeypatch, caplog):
    config = tmp_path / "augment.yaml"
    config.write_text(json.dumps({"transforms": [{"name": "speed", "p": 0.5}, {"name": "colored_noise", "p": 0.5}]}))
    common = ["--do_train", "--max_steps", "12", "--save_steps", "100", "--augmentation_config", str(config)]
    straight = tmp_path / "straight"
    with caplog.at_level(logging.INFO):
        train_script.main(arguments(tiny_model_dir, corpus, straight, *common))
    assert f"Augmenting the training audio ({config}, seed 3): speed (p=0.5)" in caplog.text
    interrupted = tmp_path / "interrupted"
    train_stopped_by_sigterm(arguments(tiny_model_dir, corpus, interrupted, *common), 10, monkeypatch)
    train_script.main(arguments(tiny_model_dir, corpus, interrupted, *common))  # resumes in pass 1, row 2
    assert losses(interrupted) == losses(straight)
    assert_same_weights(straight, interrupted)


def test_augmentation_cannot_be_combined_with_the_feature_cache():
    with pytest.raises(ValueError, match="feature cache holds features of the clean audio"):
        TrainingDataArguments(augmentation_config="configs/augmentation/noise.yaml", feature_cache_dir="cache")


def test_pictures_writes_one_png_per_sample(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    manifest = tone_manifest(tmp_path / "data", count=3)
    config = tmp_path / "two.yaml"
    config.write_text("transforms:\n  - {name: speed, p: 0.1}\n  - {name: telephone, p: 0.1}\n")
    written = pictures.main(["--augmentation_config", str(config), "--dataset_name", manifest, "--num_samples", "2",
                             "--output_dir", str(tmp_path / "pictures")])
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == sorted(p.name for p in written)
    assert len(written) == 2
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 20_000
    with pytest.raises(SystemExit) as exit_:
        pictures.main(["--help"])
    assert exit_.value.code == 0 and "pitch_shift" in capsys.readouterr().out
