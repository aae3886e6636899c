"""The kit's one language table (languages.tsv): every Whisper language with its datasets and normalization rules.

    get_language("swedish") -> Language(code="sv", name="swedish", fleurs="sv_se", common_voice=("sv-SE",), ...)

Every part of the kit looks languages up here: the normalizers, the Common Voice / FLEURS test sets of run_eval.py,
the synthetic corpus, and argument parsing, which turns a name or token into its code once.
"""

import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files


@dataclass(frozen=True)
class Language:
    code: str  # Whisper's, e.g. "sv"
    name: str  # Whisper's, e.g. "swedish"
    fleurs: str | None  # the google/fleurs config, e.g. "sv_se"
    common_voice: tuple[str, ...]  # Common Voice locales, newest release table first, e.g. ("sv-SE",)
    metric: str  # "wer" or "cer"
    marks: str  # "space" (Whisper's basic normalizer), "keep" or "drop"
    apostrophe_is_letter: bool
    turkic_casing: bool
    drop_zero_width: bool
    char_map: tuple[tuple[str, str], ...]

    @property
    def token(self) -> str:
        """The tokenizer's language token, e.g. "<|sv|>"."""
        return f"<|{self.code}|>"

    @property
    def is_default(self) -> bool:
        """True when the language follows Whisper's basic normalizer exactly."""
        return (self.marks == "space" and not self.apostrophe_is_letter and not self.turkic_casing
                and not self.drop_zero_width and not self.char_map)

    def lower(self, text: str) -> str:
        """Lower-case, with Turkish and Azerbaijani dotted and dotless i where the language has them."""
        if self.turkic_casing:
            text = text.replace("İ", "i").replace("I", "ı")
        return text.lower()


def _optional(value: str) -> str | None:
    return None if value == "-" else value


def _parse_row(fields: list[str]) -> Language:
    code, name, fleurs, cv11, cv17, metric, marks, apostrophe, casing, zero_width, char_map = fields
    locales = tuple(dict.fromkeys(locale for locale in f"{cv17},{cv11}".split(",") if locale != "-"))
    pairs = tuple(tuple(item.split("=", 1)) for item in char_map.split()) if char_map != "-" else ()
    return Language(code, name, _optional(fleurs), locales, metric, marks, apostrophe == "letter",
                    casing == "turkic", zero_width == "drop", pairs)


@lru_cache(maxsize=None)
def all_languages() -> dict[str, Language]:
    """Whisper code -> Language, for every language Whisper knows, in Whisper's order."""
    lines = files("normalizers").joinpath("languages.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return {fields[0]: _parse_row(fields) for fields in rows[1:]}


def get_language(language: str) -> Language:
    """A language by Whisper code ("sv"), name ("swedish") or token ("<|sv|>"); case-insensitive. Unknown names
    raise ValueError listing the closest matches."""
    languages = all_languages()
    key = language.strip().lower().removeprefix("<|").removesuffix("|>")
    if key in languages:
        return languages[key]
    by_name = {entry.name: entry for entry in languages.values()}
    if key in by_name:
        return by_name[key]
    close = difflib.get_close_matches(key, [*languages, *by_name], n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown language {language!r}: give a Whisper language code such as 'sv' or a name such as 'swedish' "
        f"(python -m normalizers --list shows all {len(languages)}).{hint}"
    )
