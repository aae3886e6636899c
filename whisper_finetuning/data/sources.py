"""Streaming loaders: every source becomes a `datasets.IterableDataset` with the same columns.

    id, audio {path, bytes}, text, speaker_id, gender, accent, locale, duration, dataset, error

Audio is not decoded here: rows are cheap, so interleaving, sharding by node, shuffling and skipping on resume
never touch audio; `preprocessing` decodes only the rows a process keeps. A row the loader cannot read (a TSV line
with the wrong number of columns, a JSON line that does not parse, a listed file missing from an archive) is still a
row: `error` names the file (and line) and what is wrong, and the text is empty; training and evaluation count it as
a broken sample. `error` is "" for every good row.

Sources (`load_source` picks by what the name points to):
- a Common Voice release folder (a locale folder with train/dev/test/validated/other .tsv and clips/, or the
  release root with the locale as config), any release's TSV columns;
- a FLEURS folder (`{split}.tsv` without header: id, file name, raw transcription, transcription, phonemes,
  num_samples, gender; audio in `audio/{split}/`, or in `audio/{split}.tar.gz` as the Hub distributes it), or its
  root with the FLEURS config as config;
- an audiofolder (metadata.csv / metadata.jsonl with file_name, optionally per split folder);
- a manifest file (.jsonl, .csv, .tsv or .parquet) with an audio path column;
- anything else is a Hugging Face Hub dataset id, loaded with `datasets.load_dataset` (streaming by default).

Text files (Common Voice and FLEURS TSVs, .tsv and .jsonl manifests) are read lazily, line by line: their shards are
byte ranges of the file (a shard owns the lines that start inside its range), so memory stays flat however long the
file is, and `datasets.distributed.split_dataset_by_node` gives each process its own ranges without it reading the
rest. The number of shards is a multiple of the number of processes (`world_size`), which is what makes datasets hand
out whole shards instead of having every process read everything and keep one row in `world_size`. A FLEURS archive
cannot be split by bytes (a gzip stream is read from its start), so it has one shard per process and a shard owns
every `world_size`-th row of the TSV: each process streams the archive once and keeps its rows' audio.
"""

import csv
import functools
import io
import json
import logging
import math
import os
import posixpath
import shlex
import tarfile
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
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
    "error": Value("string"),  # "" for a good row; else why the row cannot be used, naming file and line
})
COLUMNS = list(FEATURES)
COMMON_VOICE_SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")
FLEURS_SPLITS = ("train", "dev", "test")
FLEURS_COLUMNS = ["id", "file_name", "raw_transcription", "transcription", "phonemes", "num_samples", "gender"]
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "eval": "dev"}  # Hub split names -> release file names
# About 130 Common Voice rows a shard. A streaming shuffle reorders shards and mixes rows within its buffer, so
# small shards mix a large file well (a 500-row buffer holds rows of about four random parts of the file); a
# 1M-row file has 8,000 shards, still a small list.
SHARD_BYTES = 32 << 10
# Reads of 1 kB: a process reads past the end of each of its shards by about one read (measured on 32 kB shards:
# 1.0 kB, 3 %; with 4 kB reads 3.6 kB, 11 %). Smaller reads cost more system calls, nothing next to parsing rows.
READ_BUFFER_BYTES = 1 << 10
NEWLINE_CHECKPOINT_BYTES = 1 << 20


class DataSourceError(ValueError):
    pass


class RowError(ValueError):
    """A row that cannot be read; it becomes a row with `error` set (see the module docstring)."""


def _gender(value) -> str:
    """Common Voice 17 says male_masculine, older releases male, FLEURS MALE: all become male/female/other."""
    value = str(value or "").strip().lower()
    for gender in ("female", "male", "other"):
        if value.startswith(gender):
            return gender
    return value


def _row(**values) -> dict:
    row = {"id": "", "audio": {"path": None, "bytes": None}, "text": "", "speaker_id": "", "gender": "",
           "accent": "", "locale": "", "duration": -1.0, "dataset": "", "error": ""}
    row.update(values)
    return row


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


# --- text files, read lazily in byte ranges -------------------------------------------------------------------

def _stamp(path: Path) -> tuple[str, int, int]:
    """A file's identity for caches: a file changed on disk is read again."""
    stat = os.stat(path)
    return str(path), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=16)
def _newline_checkpoints(path: str, size: int, mtime_ns: int) -> tuple[int, ...]:
    """How many newlines come before each multiple of NEWLINE_CHECKPOINT_BYTES: one pass over the file, made only
    when an error message needs a line number, and then every line number costs at most one block's read."""
    counts, total = [0], 0
    with open(path, "rb") as handle:
        while block := handle.read(NEWLINE_CHECKPOINT_BYTES):
            total += block.count(b"\n")
            counts.append(total)
    return tuple(counts)


def line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line that holds byte `offset`."""
    counts = _newline_checkpoints(*_stamp(path))
    block = offset // NEWLINE_CHECKPOINT_BYTES
    with open(path, "rb") as handle:
        handle.seek(block * NEWLINE_CHECKPOINT_BYTES)
        return counts[block] + handle.read(offset - block * NEWLINE_CHECKPOINT_BYTES).count(b"\n") + 1


def _encoding_error(path: Path, offset: int) -> DataSourceError:
    with open(path, "rb") as handle:
        start = handle.read(4096)
        handle.seek(offset)
        bad = handle.read(4)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in start:
        guess, source_encoding = "UTF-16", "UTF-16"
    else:
        guess, source_encoding = "a legacy 8-bit encoding such as cp1252/latin-1", "CP1252"
    converted = path.with_name(path.stem + ".utf8" + path.suffix)
    return DataSourceError(
        f"{path} is not UTF-8 text: line {line_number(path, offset)}, byte {offset} (0x{bad.hex()}); it looks like "
        f"{guess}. Convert it to UTF-8 and put it in place of the original: iconv -f {source_encoding} -t UTF-8 "
        f"{shlex.quote(str(path))} > {shlex.quote(str(converted))} && mv {shlex.quote(str(converted))} "
        f"{shlex.quote(str(path))}")


def _decode(line: bytes, path: Path, offset: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _encoding_error(path, offset + error.start) from None


def _refuse_utf16(path: Path) -> None:
    with open(path, "rb") as handle:
        start = handle.read(4096)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in start:  # a byte order mark, or NULs between letters
        raise _encoding_error(path, 0)


def _read_header(path: Path) -> tuple[list[str], int]:
    """A TSV's column names and the byte offset where its rows start (a UTF-8 byte order mark is skipped)."""
    _refuse_utf16(path)
    with open(path, "rb") as handle:
        line = handle.readline()
    if not line.strip():
        raise DataSourceError(f"{path} is empty: it should start with a header line naming its columns (is the "
                              "download complete?)")
    start = 3 if line.startswith(b"\xef\xbb\xbf") else 0
    return _decode(line[start:], path, start).rstrip("\r\n").split("\t"), len(line)


def _byte_shards(start: int, end: int, world_size: int) -> list[tuple[int, int]]:
    """[start, end) cut into a multiple of `world_size` byte ranges of about SHARD_BYTES each."""
    count = world_size * max(1, math.ceil((end - start) / (SHARD_BYTES * world_size)))
    return [(start + (end - start) * index // count, start + (end - start) * (index + 1) // count)
            for index in range(count)]


class ShardLines:
    """The lines of a text file that start in [start, end), decoded and without their line ending; empty lines are
    left out. Line numbers are found only when asked for (for an error message)."""

    def __init__(self, path: Path, start: int, end: int):
        self.path, self.start, self.end = path, start, end
        self._first_offset, self._first_number = None, None

    def __iter__(self):
        with open(self.path, "rb", buffering=READ_BUFFER_BYTES) as handle:
            if self.start > 0:
                handle.seek(self.start - 1)
                handle.readline()  # the rest of a line that started before `start` belongs to an earlier shard
            offset = handle.tell()
            index = 0
            while offset < self.end:
                line = handle.readline()
                if not line:
                    break
                if self._first_offset is None:
                    self._first_offset = offset
                if line.rstrip(b"\r\n"):
                    yield index, _decode(line, self.path, offset).rstrip("\r\n")
                offset += len(line)
                index += 1

    def line_number(self, index: int) -> int:
        """The file's line number of the shard's `index`-th line (counted once per shard)."""
        if self._first_number is None:
            self._first_number = line_number(self.path, self._first_offset)
        return self._first_number + index


def _count_lines(path: Path, start: int) -> int:
    """Non-empty lines from byte `start` on, without parsing them."""
    with open(path, "rb") as handle:
        handle.seek(start)
        return sum(1 for line in handle if line.rstrip(b"\r\n"))


@dataclass(frozen=True)
class LineTable:
    """A text file with one row per line. Subclasses turn a line into a row (`parse`, raising RowError for a bad
    line). Every field is a plain value: tables travel in gen_kwargs, to DataLoader workers and into fingerprints."""

    path: Path
    data_start: int
    label: str

    def shards(self, world_size: int) -> list[tuple[int, int]]:
        return _byte_shards(self.data_start, os.path.getsize(self.path), world_size)

    def parsed(self, start: int, end: int):
        lines = ShardLines(self.path, start, end)
        for index, line in lines:
            try:
                row = self.parse(line)
            except RowError as error:
                number = lines.line_number(index)
                row = _row(id=f"{self.path.name} line {number}", dataset=self.label,
                           error=f"{self.path} line {number}: {error}")
            yield row

    def rows(self, shard: tuple[int, int]):
        return self.parsed(*shard)

    def all_rows(self):
        return self.parsed(self.data_start, os.path.getsize(self.path))

    def count(self) -> int:
        return _count_lines(self.path, self.data_start)

    def parse(self, line: str) -> dict:
        raise NotImplementedError


def _generate(shards, table):
    for shard in shards:
        yield from table.rows(shard)


def to_dataset(table, world_size: int = 1) -> IterableDataset:
    """The table's rows as an IterableDataset whose shards are the table's shards for `world_size` processes."""
    return IterableDataset.from_generator(_generate, features=FEATURES,
                                          gen_kwargs={"shards": table.shards(world_size), "table": table})


def _require_audio(table, what: str, fix: str) -> None:
    """Fail unless some row's audio file exists: stops at the first one that does (the first row, normally), and
    reads the whole table only to say what went wrong."""
    looked_for, count, errors = [], 0, []
    for row in table.all_rows():
        if row["error"]:
            errors.append(row["error"])
            del errors[1:]
            continue
        count += 1
        if os.path.exists(row["audio"]["path"]):
            return
        looked_for.append(row["audio"]["path"])
        del looked_for[2:]
    if count == 0:
        raise DataSourceError(f"{table.path} lists no samples" + (f"; no row is readable: {errors[0]}" if errors else ""))
    raise DataSourceError(f"none of the {count} {what} listed in {table.path} exists (looked for "
                          f"{', '.join(looked_for)}{', ...' if count > 2 else ''}); {fix}")


# --- Common Voice ---------------------------------------------------------------------------------------------

def is_common_voice_folder(folder: Path) -> bool:
    return (folder / "clips").is_dir() and any((folder / f"{s}.tsv").is_file() for s in COMMON_VOICE_SPLITS)


@functools.lru_cache(maxsize=4)
def _clip_durations(path: str, size: int, mtime_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """clip_durations.tsv as two arrays sorted by the hash of the clip name: (hash, seconds), 12 bytes a clip where a
    dict would take about 200 (a 1M-clip release: 12 MB instead of ~200 MB in every process). pyarrow parses it in
    blocks of 1 MB that this function reads (its own streaming reader would read the whole file ahead). The table is
    built in the process that looks clips up (it is never pickled), so Python's per-process hash of a name is
    consistent; two of a million names share a 64-bit hash with a probability of about 3e-8."""
    import pyarrow
    import pyarrow.compute
    import pyarrow.csv

    columns, data_start = _read_header(Path(path))
    options = dict(
        read_options=pyarrow.csv.ReadOptions(column_names=columns, use_threads=False),
        parse_options=pyarrow.csv.ParseOptions(delimiter="\t", quote_char=False,
                                               invalid_row_handler=lambda row: "skip"),
        convert_options=pyarrow.csv.ConvertOptions(
            include_columns=["clip", "duration[ms]"],
            column_types={"clip": pyarrow.binary(), "duration[ms]": pyarrow.float64()}))
    keys, seconds = array("q"), array("f")
    with open(path, "rb") as handle:
        handle.seek(data_start)
        while block := handle.read(1 << 20):
            block += handle.readline()  # up to the end of the block's last line
            table = pyarrow.csv.read_csv(pyarrow.BufferReader(block), **options)
            keys.extend(map(hash, table.column(0).to_pylist()))
            milliseconds = pyarrow.compute.fill_null(table.column(1), -1000.0).to_numpy()
            seconds.frombytes((milliseconds / 1000).astype(np.float32).tobytes())
    order = np.argsort(np.frombuffer(keys, np.int64))
    return np.frombuffer(keys, np.int64)[order], np.frombuffer(seconds, np.float32)[order]


def _listed_duration(durations: tuple[np.ndarray, np.ndarray], clip: str) -> float:
    keys, seconds = durations
    key = hash(clip.encode())
    index = np.searchsorted(keys, key)
    return float(seconds[index]) if index < len(keys) and keys[index] == key else -1.0


@dataclass(frozen=True)
class CommonVoiceTable(LineTable):
    columns: tuple[str, ...]
    text_column: str
    clips: Path
    locale: str
    durations: Path | None  # clip_durations.tsv, where the release has one

    def parse(self, line: str) -> dict:
        fields = line.split("\t")
        if len(fields) != len(self.columns):
            raise RowError(f"{len(fields)} columns, the header has {len(self.columns)}")
        record = dict(zip(self.columns, fields))
        if not record["path"]:
            raise RowError("no clip file name in its 'path' column")
        return _row(id=record["path"], audio={"path": os.path.join(self.clips, record["path"]), "bytes": None},
                    text=record[self.text_column], speaker_id=record.get("client_id", ""),
                    gender=_gender(record.get("gender")), accent=record.get("accents", record.get("accent", "")),
                    locale=record.get("locale") or self.locale, dataset=self.label)

    def rows(self, shard: tuple[int, int]):
        durations = _clip_durations(*_stamp(self.durations)) if self.durations else None
        for row in self.parsed(*shard):
            if durations is not None and not row["error"]:
                row["duration"] = _listed_duration(durations, row["id"])
            yield row


def common_voice_table(folder: Path, split: str, text_column: str = "sentence", label: str = "") -> CommonVoiceTable:
    tsv = _split_file(folder, split)
    columns, data_start = _read_header(tsv)
    if "path" not in columns:
        raise DataSourceError(f"{tsv} has no column 'path' (each clip's file name in clips/); its columns are: "
                              f"{', '.join(columns)}. Is it a Common Voice release TSV? Its first line must be the "
                              "header (client_id, path, sentence, ...).")
    _require_column(columns, text_column, str(tsv))
    durations = folder / "clip_durations.tsv"  # newer releases list every clip's length in milliseconds
    if durations.is_file():
        duration_columns, _ = _read_header(durations)
        if not {"clip", "duration[ms]"} <= set(duration_columns):
            raise DataSourceError(f"{durations} has no columns 'clip' and 'duration[ms]'; its columns are: "
                                  f"{', '.join(duration_columns)}. Download the release again, or remove the file.")
    table = CommonVoiceTable(tsv, data_start, label or str(folder), tuple(columns), text_column, folder / "clips",
                             folder.name, durations if durations.is_file() else None)
    _require_audio(table, "clips", f"extract the release's clips into {folder / 'clips'}")
    return table


# --- FLEURS ---------------------------------------------------------------------------------------------------

def _fleurs_audio(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / "audio" / split, folder / "audio" / f"{split}.tar.gz"


def is_fleurs_folder(folder: Path) -> bool:
    """A FLEURS folder with its audio extracted (audio/{split}/) or as the Hub distributes it (audio/{split}.tar.gz)."""
    return any((folder / f"{split}.tsv").is_file() and any(p.exists() for p in _fleurs_audio(folder, split))
               for split in FLEURS_SPLITS)


@dataclass(frozen=True)
class FleursTable(LineTable):
    """A FLEURS split with its audio extracted into a folder."""

    text_column: str
    audio: Path
    locale: str

    def parse(self, line: str) -> dict:
        fields = line.split("\t")
        if len(fields) != len(FLEURS_COLUMNS):
            raise RowError(f"{len(fields)} columns, FLEURS rows have {len(FLEURS_COLUMNS)}")
        record = dict(zip(FLEURS_COLUMNS, fields))
        return _row(id=record["file_name"], audio={"path": os.path.join(self.audio, record["file_name"]), "bytes": None},
                    text=record[self.text_column], gender=_gender(record["gender"]), locale=self.locale,
                    duration=int(record["num_samples"]) / 16_000 if record["num_samples"].isdigit() else -1.0,
                    dataset=self.label)


@dataclass(frozen=True)
class FleursArchiveTable(FleursTable):
    """A FLEURS split whose audio is `audio/{split}.tar.gz`, read straight from the archive as a stream (no
    extraction step). Shards are (index, count): shard i owns the TSV's rows i, i + count, ... and streams the
    archive once, keeping the audio of its rows; members match on their base name ({split}/{file} or {file})."""

    def shards(self, world_size: int) -> list[tuple[int, int]]:
        return [(index, world_size) for index in range(world_size)]

    def rows(self, shard: tuple[int, int]):
        index, count = shard
        waiting = {}  # base name -> this shard's rows that need that file
        for position, row in enumerate(self.all_rows()):
            if position % count != index:
                continue
            if row["error"]:
                yield row
            else:
                waiting.setdefault(posixpath.basename(row["id"]), []).append(row)
        if not waiting:
            return
        for member, data in self._members():
            for row in waiting.pop(posixpath.basename(member), []):
                yield {**row, "audio": {"path": f"{self.audio}/{member}", "bytes": data}}
            if not waiting:
                return
        for name, rows in waiting.items():
            for row in rows:
                yield _row(id=row["id"], dataset=self.label,
                           error=f"{self.path} lists {name}, which is not in {self.audio} (an incomplete "
                                 "archive? download it again)")

    def _members(self):
        """(member name, bytes) of every file in the archive, in archive order."""
        try:
            with tarfile.open(self.audio, mode="r|gz") as archive:
                for member in archive:
                    if member.isfile():
                        yield member.name, archive.extractfile(member).read()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise DataSourceError(f"{self.audio} is damaged or incomplete ({error}); download it again") from error

    def first_listed_member(self) -> str | None:
        """The first archive member the TSV lists (normally the archive's first file), or None."""
        listed = {posixpath.basename(row["id"]) for row in self.all_rows() if not row["error"]}
        return next((member for member, _ in self._members() if posixpath.basename(member) in listed), None)


def fleurs_table(folder: Path, split: str, text_column: str = "raw_transcription", label: str = "") -> FleursTable:
    split = SPLIT_ALIASES.get(split, split)
    tsv = _split_file(folder, split)
    _require_column(FLEURS_COLUMNS, text_column, str(tsv))
    _refuse_utf16(tsv)
    audio_folder, archive = _fleurs_audio(folder, split)
    label = label or str(folder)
    if audio_folder.is_dir():
        table = FleursTable(tsv, 0, label, text_column, audio_folder, folder.name)
        _require_audio(table, "audio files", f"put them in {audio_folder}")
        return table
    if not archive.is_file():
        raise DataSourceError(f"{folder} has {tsv.name} but no audio for it: looked for {audio_folder}/ and {archive}")
    table = FleursArchiveTable(tsv, 0, label, text_column, archive, folder.name)
    if table.first_listed_member() is None:
        if not any(not row["error"] for row in table.all_rows()):
            raise DataSourceError(f"{tsv} lists no samples")
        raise DataSourceError(f"{archive} holds none of the audio files listed in {tsv} (looked for members named "
                              f"{{name}} or {split}/{{name}}); download the archive for this split again")
    return table


# --- audiofolder and manifests --------------------------------------------------------------------------------

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
    return _row(id=str(record.get("id", record[audio_column])), audio={"path": str(audio_path), "bytes": None},
                text=str(record[text_column]), speaker_id=str(record.get("speaker_id", "") or ""),
                gender=_gender(record.get("gender")), accent=str(record.get("accent", "") or ""),
                locale=str(record.get("locale", "") or ""), duration=duration, dataset=label)


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
        raise _encoding_error(path, error.start) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = next(reader, [])
    records = [(reader.line_num, fields) for fields in reader if fields]
    if not records:
        raise DataSourceError(f"{path} lists no samples")
    audio_column = _audio_column(columns, audio_column, path)
    _require_column(columns, text_column, str(path))
    rows = []
    for number, fields in records:
        try:
            if len(fields) != len(columns):
                raise RowError(f"{len(fields)} columns, the header has {len(columns)}")
            rows.append(_manifest_row(dict(zip(columns, fields)), audio_column, text_column, path.parent, label))
        except RowError as error:
            rows.append(_row(id=f"{path.name} line {number}", dataset=label, error=f"{path} line {number}: {error}"))
    return rows


def manifest_table(path: Path, text_column: str = "text", audio_column: str | None = None, label: str = ""):
    """A table of audio file paths (relative to the manifest's folder) and transcripts."""
    label = label or str(path)
    if path.suffix == ".jsonl":
        columns = list(_first_json_record(path))
        table = JsonLinesTable(path, 0, label, _audio_column(columns, audio_column, path), text_column)
    elif path.suffix == ".tsv":
        columns, data_start = _read_header(path)
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
        _require_column(list(records[0]), text_column, str(path))
        return _checked_row_list(path, [_manifest_row(r, audio_column, text_column, path.parent, label)
                                        for r in records])
    else:
        raise DataSourceError(f"{path}: manifests are .jsonl, .csv, .tsv or .parquet files")
    _require_column(columns, text_column, str(path))
    _require_audio(table, "audio files", "paths are relative to the manifest's folder")
    return table


def _checked_row_list(path: Path, rows: list[dict]) -> RowListTable:
    table = RowListTable(path, tuple(rows))
    _require_audio(table, "audio files", "paths are relative to the manifest's folder")
    return table


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
