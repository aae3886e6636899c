"""Streaming loaders: every source becomes a `datasets.IterableDataset` with the same columns.

    id, audio {path, bytes}, text, speaker_id, gender, accent, locale, duration, dataset

Audio is not decoded here: rows are cheap, so interleaving, sharding by node, shuffling and skipping on resume
never touch audio; `preprocessing` decodes only the rows a process keeps.

Sources (`load_source` picks by what the name points to):
- a Common Voice release folder (a locale folder with train/dev/test/validated/other .tsv and clips/, or the
  release root with the locale as config), any release's TSV columns;
- a FLEURS folder (`{split}.tsv` without header: id, file name, raw transcription, transcription, phonemes,
  num_samples, gender; audio in `audio/{split}/`), or its root with the FLEURS config as config;
- an audiofolder (metadata.csv / metadata.jsonl with file_name, optionally per split folder);
- a manifest file (.jsonl, .csv, .tsv or .parquet) with an audio path column;
- anything else is a Hugging Face Hub dataset id, loaded with `datasets.load_dataset` (streaming by default).
"""

import csv
import json
import logging
from pathlib import Path

import datasets
from datasets import Features, IterableDataset, Value

logger = logging.getLogger(__name__)

FEATURES = Features({
    "id": Value("string"),
    "audio": {"path": Value("string"), "bytes": Value("binary")},
    "text": Value("string"),
    "speaker_id": Value("string"),
    "gender": Value("string"),
    "accent": Value("string"),
    "locale": Value("string"),
    "duration": Value("float32"),  # seconds when the source says, else -1 (measured after decoding)
    "dataset": Value("string"),
})
COLUMNS = list(FEATURES)
COMMON_VOICE_SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "eval": "dev"}  # Hub split names -> release file names
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"}


class DataSourceError(ValueError):
    pass


def _gender(value) -> str:
    """Common Voice 17 says male_masculine, older releases male, FLEURS MALE: all become male/female/other."""
    value = str(value or "").strip().lower()
    for gender in ("female", "male", "other"):
        if value.startswith(gender):
            return gender
    return value


def _row(**values) -> dict:
    row = {"id": "", "audio": {"path": None, "bytes": None}, "text": "", "speaker_id": "", "gender": "",
           "accent": "", "locale": "", "duration": -1.0, "dataset": ""}
    row.update(values)
    return row


def _from_rows(rows: list[dict]) -> IterableDataset:
    # Passing the rows as a list in gen_kwargs makes every row its own shard: shuffling reorders all of them and
    # split_dataset_by_node hands whole shards to each process.
    def generate(rows):
        yield from rows

    return IterableDataset.from_generator(generate, features=FEATURES, gen_kwargs={"rows": rows})


def _read_tsv(path: Path, header: bool = True) -> list:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if header else \
            csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return list(reader)


def _require_column(columns, wanted: str, where: str) -> None:
    if wanted not in columns:
        raise DataSourceError(f"{where} has no column {wanted!r}; its columns are: {', '.join(columns)}. "
                              "Pass the right one with --text_column_name.")


def _split_file(folder: Path, split: str, suffix: str = ".tsv") -> Path:
    split = SPLIT_ALIASES.get(split, split)
    path = folder / f"{split}{suffix}"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob(f"*{suffix}"))
        raise DataSourceError(f"{folder} has no split {split!r} ({path.name} is missing); available: "
                              f"{', '.join(available) or 'none'}")
    return path


# --- Common Voice ---------------------------------------------------------------------------------------------

def is_common_voice_folder(folder: Path) -> bool:
    return (folder / "clips").is_dir() and any((folder / f"{s}.tsv").is_file() for s in COMMON_VOICE_SPLITS)


def load_common_voice_folder(folder: Path, split: str, text_column: str = "sentence", label: str = "") -> IterableDataset:
    tsv = _split_file(folder, split)
    records = _read_tsv(tsv)
    columns = records[0].keys() if records else []
    if records:
        _require_column(columns, text_column, str(tsv))
    durations = {}
    if (folder / "clip_durations.tsv").is_file():  # newer releases list every clip's length in milliseconds
        durations = {r["clip"]: float(r["duration[ms]"]) / 1000 for r in _read_tsv(folder / "clip_durations.tsv")}
    rows = [
        _row(id=r["path"], audio={"path": str(folder / "clips" / r["path"]), "bytes": None}, text=r[text_column],
             speaker_id=r.get("client_id", ""), gender=_gender(r.get("gender")),
             accent=r.get("accents", r.get("accent", "")) or "", locale=r.get("locale") or folder.name,
             duration=durations.get(r["path"], -1.0), dataset=label or str(folder))
        for r in records
    ]
    return _from_rows(rows)


# --- FLEURS ---------------------------------------------------------------------------------------------------

FLEURS_COLUMNS = ["id", "file_name", "raw_transcription", "transcription", "phonemes", "num_samples", "gender"]


def is_fleurs_folder(folder: Path) -> bool:
    return (folder / "audio").is_dir() and any((folder / f"{s}.tsv").is_file() for s in ("train", "dev", "test"))


def load_fleurs_folder(folder: Path, split: str, text_column: str = "raw_transcription",
                       label: str = "") -> IterableDataset:
    split = SPLIT_ALIASES.get(split, split)
    tsv = _split_file(folder, split)
    _require_column(FLEURS_COLUMNS, text_column, str(tsv))
    rows = []
    for fields in _read_tsv(tsv, header=False):
        record = dict(zip(FLEURS_COLUMNS, fields))
        rows.append(_row(
            id=record["file_name"], audio={"path": str(folder / "audio" / split / record["file_name"]), "bytes": None},
            text=record[text_column], gender=_gender(record.get("gender")), locale=folder.name,
            duration=int(record["num_samples"]) / 16_000 if record.get("num_samples", "").isdigit() else -1.0,
            dataset=label or str(folder)))
    return _from_rows(rows)


# --- audiofolder and manifests --------------------------------------------------------------------------------

def _read_manifest(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ","))
    if path.suffix == ".parquet":
        import pyarrow.parquet

        return pyarrow.parquet.read_table(path).to_pylist()
    raise DataSourceError(f"{path}: manifests are .jsonl, .csv, .tsv or .parquet files")


def load_manifest(path: Path, text_column: str = "text", audio_column: str | None = None,
                  label: str = "") -> IterableDataset:
    """A table of audio file paths (relative to the manifest's folder) and transcripts."""
    records = _read_manifest(path)
    if not records:
        raise DataSourceError(f"{path} lists no samples")
    columns = list(records[0])
    audio_column = audio_column or next((c for c in ("file_name", "audio", "path", "audio_filepath") if c in columns), None)
    if audio_column is None:
        raise DataSourceError(f"{path} has no audio path column (file_name, audio, path or audio_filepath); "
                              f"its columns are: {', '.join(columns)}")
    _require_column(columns, text_column, str(path))
    rows = []
    for record in records:
        audio_path = Path(record[audio_column])
        audio_path = audio_path if audio_path.is_absolute() else path.parent / audio_path
        duration = record.get("duration")
        rows.append(_row(id=str(record.get("id", record[audio_column])), audio={"path": str(audio_path), "bytes": None},
                         text=str(record[text_column]), speaker_id=str(record.get("speaker_id", "") or ""),
                         gender=_gender(record.get("gender")), accent=str(record.get("accent", "") or ""),
                         locale=str(record.get("locale", "") or ""),
                         duration=float(duration) if duration not in (None, "") else -1.0,
                         dataset=label or str(path)))
    return _from_rows(rows)


def find_audiofolder_metadata(folder: Path, split: str) -> Path | None:
    for base in (folder / split, folder / SPLIT_ALIASES.get(split, split), folder):
        for candidate in ("metadata.jsonl", "metadata.csv"):
            if (base / candidate).is_file():
                return base / candidate
    return None


# --- Hugging Face Hub -----------------------------------------------------------------------------------------

def load_hub(name: str, config: str | None, split: str, text_column: str, audio_column: str = "audio",
             streaming: bool = True, revision: str | None = None, token: str | bool | None = None,
             label: str = "") -> IterableDataset:
    """A Hub dataset (parquet-backed), streamed; audio stays encoded (no torchcodec or FFmpeg needed)."""
    dataset = datasets.load_dataset(name, config, split=split, streaming=streaming, revision=revision, token=token)
    if not streaming:
        dataset = dataset.to_iterable_dataset(num_shards=min(64, max(1, len(dataset))))
    columns = list(dataset.features or {})
    for column in (text_column, audio_column):
        _require_column(columns, column, f"{name} ({config or 'default'}, {split})")
    dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))

    def to_row(example):
        audio = example[audio_column]
        return _row(
            id=str(example.get("id", example.get("path", "")) or audio.get("path") or ""),
            audio={"path": audio.get("path"), "bytes": audio.get("bytes")}, text=example[text_column],
            speaker_id=str(example.get("client_id", example.get("speaker_id", "")) or ""),
            gender=_gender(example.get("gender")), accent=str(example.get("accent", example.get("accents", "")) or ""),
            locale=str(example.get("locale", config or "") or ""), dataset=label or name)

    return dataset.map(to_row, remove_columns=columns, features=FEATURES)


# --- dispatch -------------------------------------------------------------------------------------------------

def dataset_label(name: str, config: str | None, split: str) -> str:
    """The `dataset` column of a source's rows: which dataset, config and split a sample came from."""
    return ":".join(part for part in (name, config, split) if part)


def load_source(name: str, config: str | None, split: str, text_column: str | None = None,
                streaming: bool = True, revision: str | None = None, token: str | bool | None = None) -> IterableDataset:
    """One dataset split as an IterableDataset of rows (see the module docstring for what `name` may be)."""
    label = dataset_label(name, config, split)
    path = Path(name).expanduser()
    if path.is_file():
        return load_manifest(path, text_column or "text", label=label)
    if path.is_dir():
        folder = path / config if config and (path / config).is_dir() else path
        if is_common_voice_folder(folder):
            return load_common_voice_folder(folder, split, text_column or "sentence", label=label)
        if is_fleurs_folder(folder):
            return load_fleurs_folder(folder, split, text_column or "raw_transcription", label=label)
        metadata = find_audiofolder_metadata(folder, split)
        if metadata is not None:
            return load_manifest(metadata, text_column or "transcription", label=label)
        if any(path.rglob("*.parquet")):  # a Hub dataset repository downloaded to disk
            return load_hub(str(path), config, split, text_column or "text", streaming=streaming, label=label)
        raise DataSourceError(
            f"{folder} is neither a Common Voice folder (clips/ and train/dev/test .tsv), a FLEURS folder (audio/ and "
            f"{{split}}.tsv), an audiofolder (metadata.csv or metadata.jsonl) nor a folder of parquet files" +
            ("" if config else "; if it holds one folder per language, pass the language folder as the config"))
    return load_hub(name, config, split, text_column or "text", streaming=streaming, revision=revision, token=token,
                    label=label)
