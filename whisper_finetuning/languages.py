"""Whisper language codes and their FLEURS configs and Common Voice locales (data/languages.tsv)."""

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

from normalizers import language_rules


@dataclass(frozen=True)
class Language:
    code: str  # Whisper's, e.g. "sv"
    name: str  # Whisper's, e.g. "swedish"
    fleurs: str | None  # e.g. "sv_se"
    common_voice: tuple[str, ...]  # locales in the newest release table, e.g. ("sv-SE",)


@lru_cache(maxsize=None)
def _table() -> dict[str, Language]:
    lines = files("whisper_finetuning").joinpath("data/languages.tsv").read_text("utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")][1:]
    return {
        code: Language(code, name, None if fleurs == "-" else fleurs,
                       tuple(dict.fromkeys(l for l in f"{cv17},{cv11}".split(",") if l != "-")))
        for code, name, fleurs, cv11, cv17 in rows
    }


def get_language(language: str) -> Language:
    """Look up by Whisper code or name (errors list the options, like the normalizers)."""
    return _table()[language_rules(language).code]
