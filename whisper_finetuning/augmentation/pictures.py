"""Pictures of what each augmentation does: for each of a few samples, one PNG with the original on top and one row
per transform of the config below it (applied always, p = 1, with what it drew in the row's title): the waveform
(the original in grey behind it) and Whisper's log-mel spectrogram (one colour scale for the whole picture).

    python -m whisper_finetuning.augmentation.pictures --augmentation_config configs/augmentation/full.yaml \\
        --dataset_name DATASET [--dataset_config_name CONFIG] [--split train] --num_samples 3 --output_dir DIR
"""

import argparse
import logging
import re
from pathlib import Path

import numpy as np

from ..data.audio import SAMPLING_RATE, AudioError, decode_row_audio
from ..data.sources import load_source
from ..figures import png_bytes, pyplot
from ..files import write_bytes_atomic
from . import load_augmenter
from .config import describe_schema

logger = logging.getLogger(__name__)


def samples(dataset_name: str, config: str | None, split: str, text_column: str | None, count: int) -> list[dict]:
    """The first `count` rows that have text and decodable audio: {"id", "text", "audio"}."""
    found = []
    for row in load_source(dataset_name, config, split, text_column):
        if row.get("error") or not (row.get("text") or "").strip():
            continue
        try:
            audio = decode_row_audio(row["audio"])
        except AudioError as error:
            logger.warning("Skipping %s: %s", row["id"], error)
            continue
        found.append({"id": str(row["id"]), "text": row["text"].strip(), "audio": audio})
        if len(found) == count:
            break
    if not found:
        raise ValueError(f"{dataset_name} ({split}) has no row with text and decodable audio to picture")
    return found


def log_mel(feature_extractor, audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel features of the clip, without the frames of the padding to 30 s."""
    features = feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="np").input_features[0]
    return features[:, : max(1, -(-len(audio) // feature_extractor.hop_length))]


def picture(sample: dict, rows: list[tuple[str, np.ndarray]], feature_extractor) -> bytes:
    """PNG bytes: one row per (title, audio), the first being the original."""
    plt = pyplot()

    spectrograms = [log_mel(feature_extractor, audio) for _, audio in rows]
    low = min(float(s.min()) for s in spectrograms)
    high = max(float(s.max()) for s in spectrograms)
    longest = max(len(audio) for _, audio in rows) / SAMPLING_RATE
    original = rows[0][1]
    figure, axes = plt.subplots(len(rows), 2, figsize=(15, 2.1 * len(rows) + 0.6), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 1.3]}, layout="constrained")
    for number, ((title, audio), spectrogram, (wave_axis, mel_axis)) in enumerate(zip(rows, spectrograms, axes)):
        if number > 0:
            wave_axis.plot(np.arange(len(original)) / SAMPLING_RATE, original, color="0.75", linewidth=0.5,
                           label="original")
        wave_axis.plot(np.arange(len(audio)) / SAMPLING_RATE, audio, color="tab:blue", linewidth=0.5)
        wave_axis.set(xlim=(0, longest), ylim=(-1, 1), ylabel="amplitude")
        wave_axis.set_title(title, loc="left", fontsize=10, fontweight="bold")
        image = mel_axis.imshow(spectrogram, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="magma",
                                extent=(0, len(audio) / SAMPLING_RATE, 0, spectrogram.shape[0]))
        mel_axis.set(xlim=(0, longest), ylabel="mel bin")
    axes[0][0].set_title(rows[0][0] + ": waveform", loc="left", fontsize=10, fontweight="bold")
    axes[0][1].set_title("log-mel spectrogram (Whisper's input features)", loc="left", fontsize=10)
    axes[-1][0].set_xlabel("seconds")
    axes[-1][1].set_xlabel("seconds")
    figure.colorbar(image, ax=axes[:, 1].tolist(), fraction=0.02, pad=0.01, label="log-mel value")
    text = sample["text"] if len(sample["text"]) <= 90 else sample["text"][:87] + "..."
    figure.suptitle(f"{sample['id']}: \u201c{text}\u201d", fontsize=11)
    return png_bytes(figure, dpi=90)


def write_pictures(augmentation_config: str, dataset_name: str, dataset_config_name: str | None, split: str,
                   text_column: str | None, num_samples: int, output_dir: str | Path, seed: int = 42) -> list[Path]:
    from transformers import WhisperFeatureExtractor

    feature_extractor = WhisperFeatureExtractor()  # 80 mel bins, as every Whisper but large-v3
    augmenters = load_augmenter(augmentation_config, seed).forced()
    written = []
    for number, sample in enumerate(samples(dataset_name, dataset_config_name, split, text_column, num_samples)):
        seconds = len(sample["audio"]) / SAMPLING_RATE
        rows = [(f"original ({seconds:.2f} s)", sample["audio"])]
        for augmenter in augmenters:
            audio, applied = augmenter(sample["audio"], (0, number))
            rows.append((f"{'; '.join(a.label() for a in applied)} ({len(audio) / SAMPLING_RATE:.2f} s)", audio))
        path = Path(output_dir) / f"augmentation_{number:02d}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', sample['id'])}.png"
        write_bytes_atomic(path, picture(sample, rows, feature_extractor))
        written.append(path)
    return written


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__ + "\nTransforms and their parameters:\n" + describe_schema(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--augmentation_config", required=True, help="the YAML/JSON augmentation config")
    parser.add_argument("--dataset_name", required=True,
                        help="a local dataset (Common Voice or FLEURS folder, manifest, ...) as training reads it")
    parser.add_argument("--dataset_config_name", default=None, help="the dataset's config (e.g. sv_se for FLEURS)")
    parser.add_argument("--split", default="train", help="the split to take the samples from (default: train)")
    parser.add_argument("--text_column_name", default=None, help="the text column (default: the source's own)")
    parser.add_argument("--num_samples", type=int, default=3, help="samples to picture, one PNG each (default 3)")
    parser.add_argument("--output_dir", required=True, help="folder for the PNG files")
    parser.add_argument("--seed", type=int, default=42, help="seed of the random draws (default 42)")
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error(f"--num_samples must be at least 1, not {args.num_samples}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    written = write_pictures(args.augmentation_config, args.dataset_name, args.dataset_config_name, args.split,
                             args.text_column_name, args.num_samples, args.output_dir, args.seed)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
