"""The per-language normalization rules of languages.tsv, and lookup of a language by Whisper code or name."""

import difflib
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files


@dataclass(frozen=True)
class LanguageRules:
    code: str
    name: str
    metric: str  # "wer" or "cer"
    marks: str  # "space" (Whisper's basic normalizer), "keep" or "drop"
    apostrophe_is_letter: bool
    turkic_casing: bool
    drop_zero_width: bool
    char_map: tuple[tuple[str, str], ...]

    @property
    def is_default(self) -> bool:
        """True when the language follows Whisper's basic normalizer exactly."""
        return (self.marks == "space" and not self.apostrophe_is_letter and not self.turkic_casing
                and not self.drop_zero_width and not self.char_map)


def _parse_row(fields: list[str]) -> LanguageRules:
    code, name, metric, marks, apostrophe, casing, zero_width, char_map = fields
    pairs = tuple(tuple(item.split("=", 1)) for item in char_map.split()) if char_map != "-" else ()
    return LanguageRules(code, name, metric, marks, apostrophe == "letter", casing == "turkic", zero_width == "drop",
                         pairs)


@lru_cache(maxsize=None)
def all_languages() -> dict[str, LanguageRules]:
    """Whisper code -> rules, for every language Whisper knows, in Whisper's order."""
    lines = files("normalizers").joinpath("languages.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return {fields[0]: _parse_row(fields) for fields in rows[1:]}


def language_rules(language: str) -> LanguageRules:
    """Rules for a Whisper language code ("sv"), name ("swedish") or token ("<|sv|>"); case-insensitive."""
    languages = all_languages()
    key = language.strip().lower().removeprefix("<|").removesuffix("|>")
    if key in languages:
        return languages[key]
    by_name = {rules.name: rules for rules in languages.values()}
    if key in by_name:
        return by_name[key]
    close = difflib.get_close_matches(key, [*languages, *by_name], n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown language {language!r}: give a Whisper language code such as 'sv' or a name such as 'swedish' "
        f"(python -m normalizers --list shows all {len(languages)}).{hint}"
    )
