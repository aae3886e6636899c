"""Audiofolders (metadata.csv / metadata.jsonl with file_name, optionally per split folder) and manifest files (.jsonl,
.csv, .tsv or .parquet) with an audio path column; relative audio paths start at the manifest's folder.

.jsonl and .tsv manifests are read lazily (`text_files`); .csv and .parquet ones are read into memory, and a shard is
every n-th row.
"""

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .rows import SPLIT_ALIASES, DataSourceError, RowError, make_row, normalize_gender, require_column
from .text_files import LineTable, ShardLines, encoding_error, read_header, require_audio

AUDIO_PATH_COLUMNS = ("file_name", "audio", "path", "audio_filepath")


def _manifest_row(record: dict, audio_column: str, text_column: str, base: Path, label: str) -> dict:
    if record.get(audio_column) in (None, ""):
        raise RowError(f"no {audio_column!r} value")
    if record.get(text_column) is None:  # an empty transcript is a sample (skipped as "empty text"), no text is not
        raise RowError(f"no {text_column!r} value")
    audio_path = Path(str(record[audio_column]))
    audio_path = audio_path if audio_path.is_absolute() else base / audio_path
    duration = record.get("duration")
    try:
        duration = float(duration) if duration not in (None, "") else -1.0
    except ValueError:
        raise RowError(f"duration {duration!r} is not a number") from None
    return make_row(id=str(record.get("id", record[audio_column])), audio={"path": str(audio_path), "bytes": None},
                    text=str(record[text_column]), speaker_id=str(record.get("speaker_id", "") or ""),
                    gender=normalize_gender(record.get("gender")), accent=str(record.get("accent", "") or ""),
                    locale=str(record.get("locale", "") or ""), duration=duration, dataset=label,
                    prompt=str(record.get("prompt", "") or ""))


@dataclass(frozen=True)
class JsonLinesTable(LineTable):
    audio_column: str
    text_column: str

    def parse(self, line: str) -> dict:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise RowError(f"not valid JSON ({error})") from None
        if not isinstance(record, dict):
            raise RowError(f"a JSON {type(record).__name__}, not an object")
        return _manifest_row(record, self.audio_column, self.text_column, self.path.parent, self.label)


@dataclass(frozen=True)
class TsvManifestTable(LineTable):
    columns: tuple[str, ...]
    audio_column: str
    text_column: str

    def parse(self, line: str) -> dict:
        fields = next(csv.reader([line], delimiter="\t"))
        if len(fields) != len(self.columns):
            raise RowError(f"{len(fields)} columns, the header has {len(self.columns)}")
        return _manifest_row(dict(zip(self.columns, fields)), self.audio_column, self.text_column, self.path.parent,
                             self.label)


@dataclass(frozen=True)
class RowListTable:
    """Rows read into memory (.csv and .parquet manifests): a shard is every n-th row."""

    path: Path
    row_list: tuple

    def shards(self, world_size: int) -> list[tuple[int, int]]:
        count = world_size * max(1, len(self.row_list) // world_size)
        return [(index, count) for index in range(count)]

    def rows(self, shard: tuple[int, int]):
        index, count = shard
        return iter(self.row_list[index::count])

    def all_rows(self):
        return iter(self.row_list)

    def count(self) -> int:
        return len(self.row_list)


def _audio_column(columns, audio_column: str | None, path: Path) -> str:
    audio_column = audio_column or next((c for c in AUDIO_PATH_COLUMNS if c in columns), None)
    if audio_column is None:
        raise DataSourceError(f"{path} has no audio path column ({', '.join(AUDIO_PATH_COLUMNS)}); its columns "
                              f"are: {', '.join(columns)}")
    return audio_column


def _first_json_record(path: Path) -> dict:
    for index, line in ShardLines(path, 0, os.path.getsize(path)):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            return record
    raise DataSourceError(f"{path} lists no samples (no line is a JSON object)")


def _csv_rows(path: Path, audio_column: str | None, text_column: str, label: str) -> list[dict]:
    try:
        text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise encoding_error(path, error.start) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = next(reader, [])
    records = [(reader.line_num, fields) for fields in reader if fields]
    if not records:
        raise DataSourceError(f"{path} lists no samples")
    audio_column = _audio_column(columns, audio_column, path)
    require_column(columns, text_column, str(path))
    rows = []
    for number, fields in records:
        try:
            if len(fields) != len(columns):
                raise RowError(f"{len(fields)} columns, the header has {len(columns)}")
            rows.append(_manifest_row(dict(zip(columns, fields)), audio_column, text_column, path.parent, label))
        except RowError as error:
            rows.append(make_row(id=f"{path.name} line {number}", dataset=label,
                                 error=f"{path} line {number}: {error}"))
    return rows


def manifest_table(path: Path, text_column: str = "text", audio_column: str | None = None, label: str = ""):
    """A table of audio file paths (relative to the manifest's folder) and transcripts."""
    label = label or str(path)
    if path.suffix == ".jsonl":
        columns = list(_first_json_record(path))
        table = JsonLinesTable(path, 0, label, _audio_column(columns, audio_column, path), text_column)
    elif path.suffix == ".tsv":
        columns, data_start = read_header(path)
        table = TsvManifestTable(path, data_start, label, tuple(columns), _audio_column(columns, audio_column, path),
                                 text_column)
    elif path.suffix == ".csv":
        return _checked_row_list(path, _csv_rows(path, audio_column, text_column, label))
    elif path.suffix == ".parquet":
        import pyarrow.parquet

        records = pyarrow.parquet.read_table(path).to_pylist()
        if not records:
            raise DataSourceError(f"{path} lists no samples")
        audio_column = _audio_column(list(records[0]), audio_column, path)
        require_column(list(records[0]), text_column, str(path))
        return _checked_row_list(path, [_manifest_row(r, audio_column, text_column, path.parent, label)
                                        for r in records])
    else:
        raise DataSourceError(f"{path}: manifests are .jsonl, .csv, .tsv or .parquet files")
    require_column(columns, text_column, str(path))
    require_audio(table, "audio files", "paths are relative to the manifest's folder")
    return table


def _checked_row_list(path: Path, rows: list[dict]) -> RowListTable:
    table = RowListTable(path, tuple(rows))
    require_audio(table, "audio files", "paths are relative to the manifest's folder")
    return table


def find_audiofolder_metadata(folder: Path, split: str) -> Path | None:
    for base in (folder / split, folder / SPLIT_ALIASES.get(split, split), folder):
        for candidate in ("metadata.jsonl", "metadata.csv"):
            if (base / candidate).is_file():
                return base / candidate
    return None
