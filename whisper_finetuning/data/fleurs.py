"""FLEURS: `{split}.tsv` without header (id, file name, raw transcription, transcription, phonemes, num_samples,
gender), audio in `audio/{split}/`, or in `audio/{split}.tar.gz` as the Hub distributes it.

An archive cannot be split by bytes (a gzip stream is read from its start), so it has one shard per process and a
shard owns every `world_size`-th row of the TSV: each process streams the archive once and keeps its rows' audio.
"""

import os
import posixpath
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from .rows import SPLIT_ALIASES, DataSourceError, RowError, make_row, normalize_gender, require_column, split_file
from .text_files import LineTable, refuse_utf16, require_audio

FLEURS_SPLITS = ("train", "dev", "test")
FLEURS_COLUMNS = ["id", "file_name", "raw_transcription", "transcription", "phonemes", "num_samples", "gender"]


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
        return make_row(id=record["file_name"],
                        audio={"path": os.path.join(self.audio, record["file_name"]), "bytes": None},
                        text=record[self.text_column], gender=normalize_gender(record["gender"]), locale=self.locale,
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
                yield make_row(id=row["id"], dataset=self.label,
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
    tsv = split_file(folder, split)
    require_column(FLEURS_COLUMNS, text_column, str(tsv))
    refuse_utf16(tsv)
    audio_folder, archive = _fleurs_audio(folder, split)
    label = label or str(folder)
    if audio_folder.is_dir():
        table = FleursTable(tsv, 0, label, text_column, audio_folder, folder.name)
        require_audio(table, "audio files", f"put them in {audio_folder}")
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
