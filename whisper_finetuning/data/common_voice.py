"""Common Voice: a release's locale folder (train/dev/test/validated/other .tsv and clips/), any release's TSV
columns, with each clip's duration from the release's clip_durations.tsv where it has one."""

import functools
import os
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .rows import DataSourceError, RowError, make_row, normalize_gender, require_column, split_file
from .text_files import LineTable, file_stamp, read_header, require_audio

COMMON_VOICE_SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")


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

    columns, data_start = read_header(Path(path))
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
        return make_row(id=record["path"], audio={"path": os.path.join(self.clips, record["path"]), "bytes": None},
                        text=record[self.text_column], speaker_id=record.get("client_id", ""),
                        gender=normalize_gender(record.get("gender")),
                        accent=record.get("accents", record.get("accent", "")),
                        locale=record.get("locale") or self.locale, dataset=self.label)

    def rows(self, shard: tuple[int, int]):
        durations = _clip_durations(*file_stamp(self.durations)) if self.durations else None
        for row in self.parsed(*shard):
            if durations is not None and not row["error"]:
                row["duration"] = _listed_duration(durations, row["id"])
            yield row


def common_voice_table(folder: Path, split: str, text_column: str = "sentence", label: str = "") -> CommonVoiceTable:
    tsv = split_file(folder, split)
    columns, data_start = read_header(tsv)
    if "path" not in columns:
        raise DataSourceError(f"{tsv} has no column 'path' (each clip's file name in clips/); its columns are: "
                              f"{', '.join(columns)}. Is it a Common Voice release TSV? Its first line must be the "
                              "header (client_id, path, sentence, ...).")
    require_column(columns, text_column, str(tsv))
    durations = folder / "clip_durations.tsv"  # newer releases list every clip's length in milliseconds
    if durations.is_file():
        duration_columns, _ = read_header(durations)
        if not {"clip", "duration[ms]"} <= set(duration_columns):
            raise DataSourceError(f"{durations} has no columns 'clip' and 'duration[ms]'; its columns are: "
                                  f"{', '.join(duration_columns)}. Download the release again, or remove the file.")
    table = CommonVoiceTable(tsv, data_start, label or str(folder), tuple(columns), text_column, folder / "clips",
                             folder.name, durations if durations.is_file() else None)
    require_audio(table, "clips", f"extract the release's clips into {folder / 'clips'}")
    return table
