"""Write decoded, filtered log-mel features and labels once to local parquet shards; stream them back later.

    python -m whisper_finetuning.feature_cache --model_name_or_path openai/whisper-base --language sv \\
        --dataset_name "data/cv+data/fleurs" --dataset_config_name "sv-SE+sv_se" --split train --output_dir cache/sv-train

Repeated runs and multi-GPU jobs then read features instead of decoding audio again. Features are stored as
float16 and only over the real audio: the frames of the 30 s padding all hold one value per clip, which is stored
instead and filled back in on reading.
"""

import argparse
import json
import logging
from pathlib import Path

import datasets
import numpy as np
import pyarrow
import pyarrow.parquet
from tqdm.auto import tqdm

from normalizers import get_target_normalizer

from .mixing import load_mixture, parse_dataset_specs
from .preprocessing import FilterSettings, Preprocessor, prepare

logger = logging.getLogger(__name__)
SCHEMA = pyarrow.schema([
    ("id", pyarrow.string()), ("dataset", pyarrow.string()), ("labels", pyarrow.list_(pyarrow.int32())),
    ("input_length", pyarrow.float32()), ("num_frames", pyarrow.int32()), ("padding_value", pyarrow.float32()),
    ("features", pyarrow.binary()),
])


def compact(features: np.ndarray) -> tuple[bytes, int, float]:
    """(float16 bytes of the frames up to the last non-padding one, that frame count, the padding value)."""
    padding_value = features[0, -1]
    differs = np.any(features != padding_value, axis=0)
    num_frames = int(np.nonzero(differs)[0][-1]) + 1 if differs.any() else 0
    return features[:, :num_frames].astype(np.float16).tobytes(), num_frames, float(padding_value)


def expand(raw: bytes, num_frames: int, padding_value: float, num_mel_bins: int, total_frames: int) -> np.ndarray:
    features = np.full((num_mel_bins, total_frames), np.float16(padding_value), dtype=np.float32)
    features[:, :num_frames] = np.frombuffer(raw, dtype=np.float16).reshape(num_mel_bins, num_frames)
    return features


def write_feature_cache(examples, output_dir: Path, info: dict, shard_size: int = 1000) -> int:
    """Write prepared examples (with input_features and labels) as parquet shards; returns how many."""
    output_dir.mkdir(parents=True, exist_ok=True)
    buffer, shard, count = [], 0, 0

    def flush():
        nonlocal buffer, shard
        if buffer:
            table = pyarrow.Table.from_pylist(buffer, schema=SCHEMA)
            pyarrow.parquet.write_table(table, output_dir / f"shard-{shard:05d}.parquet")
            buffer, shard = [], shard + 1

    for example in tqdm(examples, desc="caching features", unit=" samples"):
        raw, num_frames, padding_value = compact(example["input_features"])
        buffer.append({"id": example["id"], "dataset": example["dataset"], "labels": example["labels"],
                       "input_length": example["input_length"], "num_frames": num_frames,
                       "padding_value": padding_value, "features": raw})
        count += 1
        if len(buffer) == shard_size:
            flush()
    flush()
    (output_dir / "cache_info.json").write_text(json.dumps({**info, "num_samples": count}, indent=2))
    return count


def load_feature_cache(cache_dir: Path, rank: int = 0, world_size: int = 1) -> datasets.IterableDataset:
    """Stream a feature cache back as examples with float32 input_features [mel bins, frames] and labels."""
    info = json.loads((cache_dir / "cache_info.json").read_text())
    files = sorted(str(p) for p in cache_dir.glob("shard-*.parquet"))
    if not files:
        raise FileNotFoundError(f"{cache_dir} holds no feature shards (shard-*.parquet)")
    stream = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    if world_size > 1:
        stream = datasets.distributed.split_dataset_by_node(stream, rank=rank, world_size=world_size)

    def restore(example):
        features = expand(example["features"], example["num_frames"], example["padding_value"],
                          info["num_mel_bins"], info["num_frames"])
        return {"input_features": features}

    return stream.map(restore, remove_columns=["features", "num_frames", "padding_value"])


def main() -> None:
    from .transcription import load_whisper

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", required=True, help="whose feature extractor and tokenizer to use")
    parser.add_argument("--language", help="Whisper language of the labels (omit for English-only models)")
    parser.add_argument("--task", default="transcribe")
    parser.add_argument("--dataset_name", required=True)
    parser.add_argument("--dataset_config_name")
    parser.add_argument("--split", default="train")
    parser.add_argument("--text_column_name")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--min_duration_in_seconds", type=float, default=0.0)
    parser.add_argument("--max_duration_in_seconds", type=float, default=30.0)
    parser.add_argument("--do_lower_case", action="store_true")
    parser.add_argument("--do_remove_punctuation", action="store_true")
    parser.add_argument("--shard_size", type=int, default=1000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model, processor = load_whisper(args.model_name_or_path)
    if model.generation_config.is_multilingual:
        processor.tokenizer.set_prefix_tokens(language=args.language, task=args.task)
    settings = FilterSettings(args.min_duration_in_seconds, args.max_duration_in_seconds,
                              model.config.max_target_positions)
    normalize = get_target_normalizer(args.language, args.do_lower_case, args.do_remove_punctuation)
    preprocessor = Preprocessor(processor, settings, normalize_text=normalize)
    specs = parse_dataset_specs(args.dataset_name, args.dataset_config_name, args.split, args.text_column_name)
    examples = prepare(load_mixture(specs), preprocessor)
    info = {"model": args.model_name_or_path, "language": args.language, "task": args.task,
            "num_mel_bins": processor.feature_extractor.feature_size,
            "num_frames": processor.feature_extractor.nb_max_frames, "datasets": [vars(s) for s in specs]}
    count = write_feature_cache(examples, args.output_dir, info, args.shard_size)
    preprocessor.report()
    print(f"Cached {count} samples in {args.output_dir}")


if __name__ == "__main__":
    main()
