"""One check for everything the kit shares (Hub pushes, evaluation reports): no file may hold a path on this machine
or a token. Each file is searched as raw bytes (binary files included: weights, TensorBoard event files), as text,
as parsed JSON (escaped characters undone), and, for torch pickles (training_args.bin, optimizer.pt), as the
unpickled object's repr and every string reachable from its fields."""

import io
import json
import os
from pathlib import Path

import torch

PICKLES = (".bin", ".pt", ".pth")


def forms_of(paths) -> list[str]:
    """Each (absolute) path as given and with symbolic links resolved (a temporary folder may sit behind a link):
    a file could hold either."""
    forms = set()
    for path in paths:
        text = str(path).rstrip("/")
        assert os.path.isabs(text), f"{text}: give an absolute path (a relative one would match unrelated text)"
        forms.update({text, os.path.realpath(text)})
    return sorted(form for form in forms if form)


def folder_files(folder) -> dict[str, bytes]:
    """Every file under a folder, by its path relative to it."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def strings_in(value, where: str = "", seen=None):
    """(where, string) for every string reachable from a value: containers, and objects through their fields."""
    seen = set() if seen is None else seen
    if isinstance(value, str):
        yield where, value
        return
    if isinstance(value, (bytes, int, float, bool, type(None), torch.Tensor)) or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key, f"{where}[key]", seen)
            yield from strings_in(item, f"{where}[{key!r}]", seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{where}[{index}]", seen)
    elif hasattr(value, "__dict__"):
        for name, item in vars(value).items():
            yield from strings_in(item, f"{where}.{name}", seen)


def readings(name: str, content: bytes):
    """(how it was read, string) for each way a file can be read."""
    yield "bytes", content.decode("latin-1")  # byte for byte: finds any UTF-8 or ASCII path in a binary file
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        yield "text", text
    if text is not None and name.endswith((".json", ".jsonl")):
        lines = text.splitlines() if name.endswith(".jsonl") else [text]
        for number, line in enumerate(lines):
            if line.strip():
                yield from ((f"json{where}", string) for where, string in strings_in(json.loads(line), f"@{number}"))
    if name.endswith(PICKLES):
        loaded = torch.load(io.BytesIO(content), weights_only=False, map_location="cpu")  # fails loudly if broken
        yield "unpickled repr", repr(loaded)
        yield from ((f"unpickled{where}", string) for where, string in strings_in(loaded))


def leaks(files: dict[str, bytes], forbidden: list[str]) -> list[str]:
    """Each file holding a forbidden string: "file: 'string' (found reading it as ...)", naming the longest string
    found (a path inside a forbidden folder holds that folder's path too)."""
    found = []
    for name, content in files.items():
        hits, hows = set(), []
        for how, text in readings(name, content):
            if how == "bytes":  # compare bytes with bytes: a non-ASCII path is its UTF-8 encoding in a file
                here = [form for form in forbidden if form.encode("utf-8").decode("latin-1") in text]
            else:
                here = [form for form in forbidden if form in text]
            if here:
                hits.update(here)
                hows.append(how)
        if hits:
            found.append(f"{name}: {max(hits, key=len)!r} (found reading it as {', '.join(dict.fromkeys(hows))})")
    return found


def assert_nothing_local(files: dict[str, bytes], local_paths, secrets=(), what: str = "the files") -> None:
    """Fail, listing each file at fault, if any file holds one of the (absolute) local paths, in any form, or a
    secret. `files`: name -> content, e.g. folder_files(folder), or every file of every upload of a push."""
    assert files, f"{what}: no file to check"
    found = leaks(files, forms_of(local_paths) + [secret for secret in secrets if secret])
    assert not found, f"{what} hold local paths or tokens:\n" + "\n".join(found)
