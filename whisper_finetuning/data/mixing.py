"""Several datasets as one stream: the "+" syntax, interleaving without loss, and sharding across processes.

    --dataset_name "mozilla-foundation/common_voice_17_0+google/fleurs"
    --dataset_config_name "sv-SE+sv_se" --train_split_name "train+validation" --text_column_name "sentence+transcription"

Each "+"-separated list has one entry per dataset, or a single entry that applies to all. The default stopping
strategy, all_exhausted_without_replacement, streams every sample of every dataset exactly once (the anchor's
first_exhausted silently cut train+validation to about twice the validation size).

Processes read disjoint shares without reading each other's: every local source has a multiple of `world_size`
shards (see `text_files`). `split_dataset_by_node` hands out whole shards only when the (interleaved) dataset's shard
count is a multiple of `world_size`, otherwise every process reads every row and keeps one in `world_size`. An
interleaved dataset counts the fewest shards of its sources (datasets' `CyclingMultiSourcesExamplesIterable` and
`RandomlyCyclingMultiSourcesExamplesIterable.num_shards`) and passes the split on to each source, which keeps its
shards rank, rank + world_size, ...; so with every source a multiple of `world_size`, so is the mixture. (A Hub
dataset with fewer or other shards falls back to the row-by-row split.)
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from datasets import IterableDataset, interleave_datasets, load_dataset_builder
from datasets.distributed import split_dataset_by_node

from .sources import dataset_label, load_source, local_table

logger = logging.getLogger(__name__)

STOPPING_STRATEGIES = ("all_exhausted_without_replacement", "first_exhausted", "all_exhausted")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    config: str | None
    split: str
    text_column: str | None

    @property
    def label(self) -> str:
        return dataset_label(self.name, self.config, self.split)


def split_plus(value: str | None, count: int, what: str) -> list[str | None]:
    items = [item.strip() or None for item in value.split("+")] if value else [None]
    if len(items) == 1:
        return items * count
    if len(items) != count:
        raise ValueError(f"{what} has {len(items)} '+'-separated entries ({value!r}) but there are {count} datasets; "
                         "give one entry per dataset, or a single entry for all")
    return items


def parse_dataset_specs(names: str, configs: str | None, splits: str, text_columns: str | None) -> list[DatasetSpec]:
    """Expand the "+" lists into one spec per dataset (a single name with "train+validation" gives two specs)."""
    lists = {"dataset_name": names, "dataset_config_name": configs, "split": splits, "text_column_name": text_columns}
    count = max(len(v.split("+")) if v else 1 for v in lists.values())
    expanded = {key: split_plus(value, count, key) for key, value in lists.items()}
    if None in expanded["dataset_name"] or None in expanded["split"]:
        raise ValueError(f"empty dataset name or split in {names!r} / {splits!r}")
    return [DatasetSpec(*values) for values in zip(*expanded.values())]


def parse_probabilities(value: str | None, count: int) -> list[float] | None:
    """"0.7+0.3" or sample counts "2000+1000" (normalised to sum to one)."""
    if not value:
        return None
    weights = [float(w) for w in split_plus(value, count, "probabilities")]
    if any(w <= 0 for w in weights):
        raise ValueError(f"probabilities must be positive: {value!r}")
    return [w / sum(weights) for w in weights]


def count_samples(spec: DatasetSpec, token: str | bool | None = None) -> int | None:
    """How many rows a dataset split has, when that is cheap to know (local data, or Hub metadata); else None."""
    if Path(spec.name).expanduser().exists():
        table = local_table(spec.name, spec.config, spec.split, spec.text_column)
        if table is not None:
            return table.count()  # counts lines, parses no row
        return sum(1 for _ in load_source(spec.name, spec.config, spec.split, spec.text_column))
    try:
        builder = load_dataset_builder(spec.name, spec.config, token=token)
        return builder.info.splits[spec.split].num_examples
    except Exception:  # no metadata, no network, or a split the metadata does not list: the bar has no total
        return None


def load_mixture(specs: list[DatasetSpec], probabilities: list[float] | None = None,
                 stopping_strategy: str = "all_exhausted_without_replacement", seed: int = 42,
                 streaming: bool = True, token: str | bool | None = None, rank: int = 0,
                 world_size: int = 1) -> IterableDataset:
    """Interleave the datasets and keep this process's share (disjoint across `world_size` processes)."""
    if stopping_strategy not in STOPPING_STRATEGIES:
        raise ValueError(f"stopping_strategy must be one of {', '.join(STOPPING_STRATEGIES)}, not {stopping_strategy!r}")
    sources = [load_source(s.name, s.config, s.split, s.text_column, streaming=streaming, token=token,
                           world_size=world_size) for s in specs]
    if len(sources) == 1:
        mixture = sources[0]
    else:
        mixture = interleave_datasets(sources, probabilities=probabilities, seed=seed,
                                      stopping_strategy=stopping_strategy)
    if world_size > 1:
        mixture = split_dataset_by_node(mixture, rank=rank, world_size=world_size)
    return mixture
