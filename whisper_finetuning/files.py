"""Writing files so that a crash or a full disk never leaves a half-written one: write a temporary file in the
same folder, flush it to disk, then rename it over the target (a rename within a folder is atomic)."""

import functools
import json
import os
import tempfile
from pathlib import Path


@functools.cache
def new_file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask): mkstemp's temporary files are 0o600, which would
    leave cards, results and plots unreadable to the rest of a team sharing the folder."""
    umask = os.umask(0o022)  # reading the umask means setting it; put it back at once (once per process)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
            os.fchmod(file.fileno(), path.stat().st_mode & 0o7777 if path.exists() else new_file_mode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, value, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(value, indent=indent, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
