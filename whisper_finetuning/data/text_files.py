"""Text files (Common Voice and FLEURS TSVs, .tsv and .jsonl manifests) read lazily, line by line, in byte ranges.

A table's shards are byte ranges of the file (a shard owns the lines that start inside its range), so memory stays
flat however long the file is, and `datasets.distributed.split_dataset_by_node` gives each process its own ranges
without it reading the rest. The number of shards is a multiple of the number of processes (`world_size`), which is
what makes datasets hand out whole shards instead of having every process read everything and keep one row in
`world_size`. A file that is not UTF-8 is refused with the command that converts it.

`to_dataset` streams any table (a `LineTable` here, or a manifest's in-memory `RowListTable`) and `require_audio`
checks that its rows point at audio files.
"""

import functools
import math
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from datasets import IterableDataset

from .rows import FEATURES, DataSourceError, RowError, make_row

# About 130 Common Voice rows a shard. A streaming shuffle reorders shards and mixes rows within its buffer, so
# small shards mix a large file well (a 500-row buffer holds rows of about four random parts of the file); a
# 1M-row file has 8,000 shards, still a small list.
SHARD_BYTES = 32 << 10
# Reads of 1 kB: a process reads past the end of each of its shards by about one read (measured on 32 kB shards:
# 1.0 kB, 3 %; with 4 kB reads 3.6 kB, 11 %). Smaller reads cost more system calls, nothing next to parsing rows.
READ_BUFFER_BYTES = 1 << 10
NEWLINE_CHECKPOINT_BYTES = 1 << 20


def file_stamp(path: Path) -> tuple[str, int, int]:
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
    counts = _newline_checkpoints(*file_stamp(path))
    block = offset // NEWLINE_CHECKPOINT_BYTES
    with open(path, "rb") as handle:
        handle.seek(block * NEWLINE_CHECKPOINT_BYTES)
        return counts[block] + handle.read(offset - block * NEWLINE_CHECKPOINT_BYTES).count(b"\n") + 1


def encoding_error(path: Path, offset: int) -> DataSourceError:
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
        raise encoding_error(path, offset + error.start) from None


def refuse_utf16(path: Path) -> None:
    with open(path, "rb") as handle:
        start = handle.read(4096)
    if start[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in start:  # a byte order mark, or NULs between letters
        raise encoding_error(path, 0)


def read_header(path: Path) -> tuple[list[str], int]:
    """A TSV's column names and the byte offset where its rows start (a UTF-8 byte order mark is skipped)."""
    refuse_utf16(path)
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
                row = make_row(id=f"{self.path.name} line {number}", dataset=self.label,
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


def require_audio(table, what: str, fix: str) -> None:
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
        raise DataSourceError(f"{table.path} lists no samples"
                              + (f"; no row is readable: {errors[0]}" if errors else ""))
    raise DataSourceError(f"none of the {count} {what} listed in {table.path} exists (looked for "
                          f"{', '.join(looked_for)}{', ...' if count > 2 else ''}); {fix}")
