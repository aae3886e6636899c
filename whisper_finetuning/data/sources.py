"""Streaming loaders: every source becomes a `datasets.IterableDataset` of rows with the same columns (`rows`), audio
as {path, bytes}.

Audio is not decoded here: rows are cheap, so interleaving, sharding by node, shuffling and skipping on resume
never touch audio; `preprocessing` decodes only the rows a process keeps. A row the loader cannot read is still a
row, with its `error` set (see `rows`).

Sources (`load_source` picks by what the name points to):
- a Common Voice release folder (a locale folder with train/dev/test/validated/other .tsv and clips/, or the
  release root with the locale as config), any release's TSV columns (`common_voice`);
- a FLEURS folder (`{split}.tsv` without header: id, file name, raw transcription, transcription, phonemes,
  num_samples, gender; audio in `audio/{split}/`, or in `audio/{split}.tar.gz` as the Hub distributes it), or its
  root with the FLEURS config as config (`fleurs`);
- an audiofolder (metadata.csv / metadata.jsonl with file_name, optionally per split folder) (`manifests`);
- a manifest file (.jsonl, .csv, .tsv or .parquet) with an audio path column (`manifests`);
- anything else is a Hugging Face Hub dataset id, loaded here with `datasets.load_dataset` (streaming by default).

Local text files are read lazily in byte ranges, a multiple of `world_size` shards a source (`text_files`).
"""

import logging
from pathlib import Path

import datasets
from datasets import IterableDataset

from .common_voice import common_voice_table, is_common_voice_folder
from .fleurs import fleurs_table, is_fleurs_folder
from .manifests import find_audiofolder_metadata, manifest_table
from .rows import FEATURES, DataSourceError, make_row, normalize_gender, require_column
from .text_files import to_dataset

logger = logging.getLogger(__name__)


def load_hub(name: str, config: str | None, split: str, text_column: str, audio_column: str = "audio",
             streaming: bool = True, revision: str | None = None, token: str | bool | None = None,
             label: str = "") -> IterableDataset:
    """A Hub dataset (parquet-backed), streamed; audio stays encoded (no torchcodec or FFmpeg needed)."""
    dataset = datasets.load_dataset(name, config, split=split, streaming=streaming, revision=revision, token=token)
    if not streaming:
        dataset = dataset.to_iterable_dataset(num_shards=min(64, max(1, len(dataset))))
    columns = list(dataset.features or {})
    for column in (text_column, audio_column):
        require_column(columns, column, f"{name} ({config or 'default'}, {split})")
    dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))

    def to_row(example):
        audio = example[audio_column]
        return make_row(
            id=str(example.get("id", example.get("path", "")) or audio.get("path") or ""),
            audio={"path": audio.get("path"), "bytes": audio.get("bytes")}, text=example[text_column],
            speaker_id=str(example.get("client_id", example.get("speaker_id", "")) or ""),
            gender=normalize_gender(example.get("gender")),
            accent=str(example.get("accent", example.get("accents", "")) or ""),
            locale=str(example.get("locale", config or "") or ""), dataset=label or name,
            prompt=str(example.get("prompt", "") or ""))

    return dataset.map(to_row, remove_columns=columns, features=FEATURES)


def dataset_label(name: str, config: str | None, split: str) -> str:
    """The `dataset` column of a source's rows: which dataset, config and split a sample came from."""
    return ":".join(part for part in (name, config, split) if part)


def local_table(name: str, config: str | None, split: str, text_column: str | None = None):
    """The table a local file or folder holds, None for a folder of parquet files (read as a Hub dataset) or a name
    that is not on disk."""
    label = dataset_label(name, config, split)
    path = Path(name).expanduser()
    if path.is_file():
        return manifest_table(path, text_column or "text", label=label)
    if not path.is_dir():
        return None
    folder = path / config if config and (path / config).is_dir() else path
    if is_common_voice_folder(folder):
        return common_voice_table(folder, split, text_column or "sentence", label=label)
    if is_fleurs_folder(folder):
        return fleurs_table(folder, split, text_column or "raw_transcription", label=label)
    metadata = find_audiofolder_metadata(folder, split)
    if metadata is not None:
        return manifest_table(metadata, text_column or "transcription", label=label)
    if any(path.rglob("*.parquet")):  # a Hub dataset repository downloaded to disk
        return None
    raise DataSourceError(
        f"{folder} is neither a Common Voice folder (clips/ and train/dev/test .tsv), a FLEURS folder ({{split}}.tsv "
        f"and audio/{{split}}/ or audio/{{split}}.tar.gz), an audiofolder (metadata.csv or metadata.jsonl) nor a "
        f"folder of parquet files" +
        ("" if config else "; if it holds one folder per language, pass the language folder as the config"))


def load_source(name: str, config: str | None, split: str, text_column: str | None = None,
                streaming: bool = True, revision: str | None = None, token: str | bool | None = None,
                world_size: int = 1) -> IterableDataset:
    """One dataset split as an IterableDataset of rows (see the module docstring for what `name` may be); a local
    source has a multiple of `world_size` shards."""
    table = local_table(name, config, split, text_column)
    if table is not None:
        return to_dataset(table, world_size)
    label = dataset_label(name, config, split)
    path = Path(name).expanduser()
    if path.is_dir():  # a downloaded Hub dataset folder of parquet files
        return load_hub(str(path), config, split, text_column or "text", streaming=streaming, label=label)
    return load_hub(name, config, split, text_column or "text", streaming=streaming, revision=revision, token=token,
                    label=label)
