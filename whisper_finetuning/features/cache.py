"""The feature cache: decoded, filtered log-mel features and labels, written once; training reads them back.

    python -m whisper_finetuning.features.cache --model_name_or_path openai/whisper-base --language sv \\
        --dataset_name "data/cv+data/fleurs" --dataset_config_name "sv-SE+sv_se" --output_dir cache/sv-train
    python run_speech_recognition_seq2seq_streaming.py CONFIG.yaml --feature_cache_dir cache/sv-train

Training with `--feature_cache_dir` reads features from the cache instead of decoding audio (or builds the cache
there first, each process its own part). A large corpus is built in parallel with `--shard_index i --num_shards n`
(one Slurm array task per part); the cache is complete when all n parts are.

Layout: `part-<i>-of-<n>/dataset-<k>-<j>.parquet` (rows of dataset k of the "+" list, row groups of
ROW_GROUP_SIZE) and `part_info.json`, written last: a part folder appears (renamed from a temporary one) only when
complete. Features are stored as float16 and only over the real audio: the frames of the 30 s padding all hold
one value per clip, which is stored instead and filled back in on reading. `part_info.json` records the settings
the samples were made with (datasets, language, task, duration limits, target normalization, mel bins, tokenizer);
training refuses a cache made with other settings and names the differences.
"""

import json
import logging
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import pyarrow
import pyarrow.parquet
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from ..args import DataArguments, ModelArguments, PreprocessingArguments, parse_config_and_flags
from ..data.mixing import DatasetSpec, load_mixture, parse_dataset_specs
from ..files import write_json_atomic
from .log_mel import compact, expand
from .preprocessing import Preprocessor, make_preprocessor, prepare

logger = logging.getLogger(__name__)
FORMAT_VERSION = 2
ROW_GROUP_SIZE = 64  # rows per parquet row group: the unit that is shuffled and shared out between processes
FILE_SIZE = 1024  # rows per parquet file
PART_INFO = "part_info.json"
SCHEMA = pyarrow.schema([
    ("id", pyarrow.string()), ("dataset", pyarrow.string()), ("labels", pyarrow.list_(pyarrow.int32())),
    ("input_length", pyarrow.float32()), ("num_frames", pyarrow.int32()), ("padding_value", pyarrow.float32()),
    ("features", pyarrow.binary()),
])


class FeatureCacheError(ValueError):
    pass


def cache_settings(specs: list[DatasetSpec], data_args: DataArguments, preprocessing: PreprocessingArguments,
                   processor, max_label_length: int) -> dict:
    """What the cached samples depend on. Training compares its own settings with these before using a cache."""
    tokenizer = processor.tokenizer
    return {
        "format": FORMAT_VERSION,
        "datasets": [asdict(spec) for spec in specs],
        "language": data_args.language,
        "task": data_args.task,
        "preprocessing": asdict(preprocessing),
        "max_label_length": max_label_length,
        "num_mel_bins": processor.feature_extractor.feature_size,
        "num_frames": processor.feature_extractor.nb_max_frames,
        "tokenizer": {"size": len(tokenizer), "prefix_tokens": tokenizer.prefix_tokens},
    }


def part_name(shard_index: int, num_shards: int) -> str:
    return f"part-{shard_index:05d}-of-{num_shards:05d}"


@dataclass
class _DatasetWriter:
    """Parquet files of one dataset of the mixture, FILE_SIZE rows each."""

    folder: Path
    index: int
    buffer: list = field(default_factory=list)
    files: int = 0

    def add(self, record: dict) -> None:
        self.buffer.append(record)
        if len(self.buffer) == FILE_SIZE:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            table = pyarrow.Table.from_pylist(self.buffer, schema=SCHEMA)
            pyarrow.parquet.write_table(table, self.folder / f"dataset-{self.index}-{self.files:05d}.parquet",
                                        row_group_size=ROW_GROUP_SIZE)
            self.buffer, self.files = [], self.files + 1


def write_part(examples, cache_dir: Path, settings: dict, dataset_labels: list[str], shard_index: int = 0,
               num_shards: int = 1, stats: dict | None = None) -> int:
    """Write prepared examples (input_features, labels, dataset, ...) as one part of the cache; returns how many.

    The part is written into a temporary folder and renamed when complete, so an interrupted build leaves nothing
    that looks finished."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / part_name(shard_index, num_shards)
    building = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{final.name}.building-"))
    try:
        writers = [_DatasetWriter(building, k) for k in range(len(dataset_labels))]
        index_of = {label: k for k, label in enumerate(dataset_labels)}
        count = 0
        for example in tqdm(examples, desc=f"caching features ({final.name})", unit=" samples"):
            raw, num_frames, padding_value = compact(example["input_features"])
            writers[index_of[example["dataset"]]].add({
                "id": example["id"], "dataset": example["dataset"], "labels": example["labels"],
                "input_length": example["input_length"], "num_frames": num_frames, "padding_value": padding_value,
                "features": raw})
            count += 1
        for writer in writers:
            writer.flush()
        write_json_atomic(building / PART_INFO, {"settings": settings, "datasets": dataset_labels,
                                                 "shard_index": shard_index, "num_shards": num_shards,
                                                 "num_samples": count, "statistics": stats or {}})
        if final.exists():
            shutil.rmtree(final)
        building.rename(final)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return count


def read_parts(cache_dir: Path) -> list[dict]:
    """The part_info of every part, checked to form one complete cache; [] when there is no cache yet."""
    infos = []
    for path in sorted(cache_dir.glob(f"part-*-of-*/{PART_INFO}")):
        info = json.loads(path.read_text())
        infos.append({**info, "folder": path.parent})
    if not infos:
        return []
    counts = {info["num_shards"] for info in infos}
    if len(counts) > 1:
        raise FeatureCacheError(f"{cache_dir} mixes parts of builds with {sorted(counts)} shards; delete it and "
                                "build it again")
    (num_shards,) = counts
    missing = sorted(set(range(num_shards)) - {info["shard_index"] for info in infos})
    if missing:
        raise FeatureCacheError(
            f"{cache_dir} is incomplete: parts {', '.join(map(str, missing))} of {num_shards} are missing; build them "
            f"with python -m whisper_finetuning.features.cache ... --num_shards {num_shards} --shard_index N")
    first = infos[0]["settings"]
    for info in infos[1:]:
        if info["settings"] != first:
            raise FeatureCacheError(f"the parts of {cache_dir} were built with different settings: "
                                    f"{', '.join(differences(first, info['settings']))}")
    return infos


def differences(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """The keys whose values differ, as "key: expected -> actual" (nested dicts as key.subkey)."""
    found = []
    for key in sorted(set(expected) | set(actual)):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return found


def check_settings(cache_dir: Path, infos: list[dict], wanted: dict) -> None:
    cached = infos[0]["settings"]
    if cached != wanted:
        raise FeatureCacheError(
            f"the feature cache {cache_dir} was built with other settings than this run (cache -> run): "
            f"{'; '.join(differences(cached, wanted))}. Use another --feature_cache_dir, or delete this one to "
            "rebuild it")


def _units(infos: list[dict], dataset_index: int) -> list[tuple[str, int]]:
    units = []
    for info in infos:
        for path in sorted(info["folder"].glob(f"dataset-{dataset_index}-*.parquet")):
            units += [(str(path), group) for group in range(pyarrow.parquet.ParquetFile(path).num_row_groups)]
    return units


def _read_units(units: list[tuple[str, int]], rank: int, world_size: int, row_level: bool):
    for path, group in units:
        table = pyarrow.parquet.ParquetFile(path).read_row_group(group)
        for position, row in enumerate(table.to_pylist()):
            if not row_level or position % world_size == rank:
                yield row


def load_feature_cache(cache_dir: Path, rank: int = 0, world_size: int = 1, probabilities: list[float] | None = None,
                       stopping_strategy: str = "all_exhausted_without_replacement",
                       seed: int = 42) -> datasets.IterableDataset:
    """This process's share of a complete cache, as rows with compact features (see `restore_features`).

    Each dataset of the "+" list is its own stream, interleaved as `data.mixing.load_mixture` does. Processes share
    out the row groups (each reads only its own); a dataset with fewer row groups than processes is shared out by
    row instead."""
    infos = read_parts(cache_dir)
    if not infos:
        raise FeatureCacheError(f"{cache_dir} holds no feature cache (no part-*/{PART_INFO})")
    sources = []
    for index in range(len(infos[0]["datasets"])):
        units = _units(infos, index)
        row_level = len(units) < world_size
        mine = units if row_level else units[rank::world_size]
        if mine:
            sources.append(datasets.IterableDataset.from_generator(
                _read_units, gen_kwargs={"units": mine, "rank": rank, "world_size": world_size,
                                         "row_level": row_level}))
    if not sources:
        raise FeatureCacheError(f"{cache_dir} holds no samples")
    if len(sources) == 1:
        return sources[0]
    if probabilities is not None and len(probabilities) != len(sources):
        raise FeatureCacheError("every dataset of the cache needs rows on every process to use train_probabilities")
    return datasets.interleave_datasets(sources, probabilities=probabilities, seed=seed,
                                        stopping_strategy=stopping_strategy)


def restore_features(rows: datasets.IterableDataset, num_mel_bins: int, num_frames: int) -> datasets.IterableDataset:
    """Cached rows -> examples with float32 input_features [mel bins, frames] and labels."""

    def restore(row):
        return {"input_features": expand(row["features"], row["num_frames"], row["padding_value"], num_mel_bins,
                                         num_frames)}

    return rows.map(restore, remove_columns=["features", "num_frames", "padding_value"])


def build_part(cache_dir: Path, specs: list[DatasetSpec], settings: dict, preprocessor: Preprocessor,
               shard_index: int = 0, num_shards: int = 1, streaming: bool = True, token=None) -> int:
    """Decode and cache this part's share of the datasets (every sample once)."""
    rows = load_mixture(specs, streaming=streaming, token=token, rank=shard_index, world_size=num_shards)
    labels = [spec.label for spec in specs]

    def examples():
        yield from prepare(rows, preprocessor)
        preprocessor.finish()  # too many broken samples: the part is never completed

    # The live counters: write_part stores them when the last example has been written.
    count = write_part(examples(), cache_dir, settings, labels, shard_index, num_shards,
                       stats={"kept": preprocessor.stats.kept, "skipped": preprocessor.stats.skipped})
    preprocessor.report()
    return count


@dataclass
class CacheArguments:
    output_dir: str = field(metadata={"help": "the cache folder (give it to training as --feature_cache_dir)"})
    split: str = field(default="train", metadata={"help": "'+'-separated split(s) to cache"})
    shard_index: int = field(default=0, metadata={"help": "which part to build (0 .. num_shards - 1)"})
    num_shards: int = field(default=1, metadata={
        "help": "build the cache in this many parts, e.g. one per Slurm array task (--shard_index $SLURM_ARRAY_TASK_ID)"})

    def __post_init__(self):
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"need 0 <= --shard_index ({self.shard_index}) < --num_shards ({self.num_shards})")


def main(argv=None) -> int:
    from ..loading import load_whisper

    parser = HfArgumentParser((ModelArguments, DataArguments, PreprocessingArguments, CacheArguments),
                              description=__doc__)
    model_args, data_args, preprocessing, args = parse_config_and_flags(parser, sys.argv[1:] if argv is None else argv)
    if not data_args.dataset_name:
        raise SystemExit("error: give --dataset_name")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, processor = load_whisper(model_args.model_name_or_path, revision=model_args.model_revision,
                                    cache_dir=model_args.cache_dir, token=model_args.token)
    if model.generation_config.is_multilingual:
        processor.tokenizer.set_prefix_tokens(language=data_args.language, task=data_args.task)
    max_label_length = model.config.max_target_positions
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name, args.split,
                                data_args.text_column_name)
    settings = cache_settings(specs, data_args, preprocessing, processor, max_label_length)
    preprocessor = make_preprocessor(processor, data_args.language, preprocessing, max_label_length)
    count = build_part(Path(args.output_dir), specs, settings, preprocessor, args.shard_index, args.num_shards,
                       data_args.streaming, model_args.token)
    print(f"Cached {count} samples in {Path(args.output_dir) / part_name(args.shard_index, args.num_shards)}")
    return count


if __name__ == "__main__":
    main()
