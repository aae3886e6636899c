"""The rows every source gives, the errors a source raises, and the small helpers every loader shares.

    id, audio {path, bytes}, text, speaker_id, gender, accent, locale, duration, dataset, prompt, error

A row the loader cannot read (a TSV line with the wrong number of columns, a JSON line that does not parse, a listed
file missing from an archive) is still a row: `error` names the file (and line) and what is wrong, and the text is
empty; training and evaluation count it as a broken sample. `error` is "" for every good row.
"""

from pathlib import Path

from datasets import Features, Value

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
    # A manifest's or Hub dataset's `prompt` column (names, domain words): the previous-text prompt of the row's
    # prompted samples (--prompt_probability) instead of the text of the row before; "" elsewhere.
    "prompt": Value("string"),
    "error": Value("string"),  # "" for a good row; else why the row cannot be used, naming file and line
})
COLUMNS = list(FEATURES)
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "eval": "dev"}  # Hub split names -> release file names


class DataSourceError(ValueError):
    pass


class RowError(ValueError):
    """A row that cannot be read; it becomes a row with `error` set (see the module docstring)."""


def normalize_gender(value) -> str:
    """Common Voice 17 says male_masculine, older releases male, FLEURS MALE: all become male/female/other."""
    value = str(value or "").strip().lower()
    for gender in ("female", "male", "other"):
        if value.startswith(gender):
            return gender
    return value


def make_row(**values) -> dict:
    row = {"id": "", "audio": {"path": None, "bytes": None}, "text": "", "speaker_id": "", "gender": "",
           "accent": "", "locale": "", "duration": -1.0, "dataset": "", "prompt": "", "error": ""}
    row.update(values)
    return row


def require_column(columns, wanted: str, where: str) -> None:
    if wanted not in columns:
        raise DataSourceError(f"{where} has no column {wanted!r}; its columns are: {', '.join(columns)}. "
                              "Pass the right one with --text_column_name.")


def split_file(folder: Path, split: str, suffix: str = ".tsv") -> Path:
    split = SPLIT_ALIASES.get(split, split)
    path = folder / f"{split}{suffix}"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob(f"*{suffix}"))
        raise DataSourceError(f"{folder} has no split {split!r} ({path.name} is missing); available: "
                              f"{', '.join(available) or 'none'}")
    return path
