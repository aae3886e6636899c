"""Language-aware text normalization for Whisper training targets and leaderboard WER/CER.

    from normalizers import get_normalizer, get_target_normalizer
    norm = get_normalizer("uk")              # evaluation: compare references and predictions after this
    norm("П'ять хвилин!")  -> "п'ять хвилин"; norm.metric -> "wer"  (zh, ja, th, ... -> "cer")
    targets = get_target_normalizer("en", do_lower_case=True, do_remove_punctuation=True)
    targets("It's 3.5 km.") -> "it's 3.5 km"

English uses OpenAI Whisper's EnglishTextNormalizer; every other language Whisper's basic normalizer with the
per-language rules of languages.tsv, the kit's one language table (also its datasets' configs and locales).
`python -m normalizers --language uk "text"` shows what they do.
"""

from dataclasses import dataclass
from typing import Callable

from .basic import BasicTextNormalizer, LanguageTextNormalizer
from .english import EnglishNumberNormalizer, EnglishSpellingNormalizer, EnglishTextNormalizer
from .languages import Language, all_languages, get_language
from .targets import TargetTextNormalizer

__all__ = [
    "BasicTextNormalizer", "EnglishNumberNormalizer", "EnglishSpellingNormalizer", "EnglishTextNormalizer",
    "Language", "LanguageTextNormalizer", "Normalization", "TargetTextNormalizer", "all_languages",
    "get_language", "get_normalizer", "get_target_normalizer",
]


@dataclass
class Normalization:
    """An evaluation normalizer and the metric that goes with it."""

    language: Language
    metric: str  # "wer" or "cer"
    normalize: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.normalize(text)


def get_normalizer(language: str | None, remove_diacritics: bool = False) -> Normalization:
    """The evaluation normalizer and metric for a Whisper language code or name.

    `language=None` (unknown or mixed languages) gives Whisper's basic normalizer and WER.
    """
    rules = get_language(language or "en")
    if language is None:
        return Normalization(rules, "wer", BasicTextNormalizer(remove_diacritics=remove_diacritics))
    if rules.code == "en":
        return Normalization(rules, "wer", EnglishTextNormalizer())
    return Normalization(rules, rules.metric, LanguageTextNormalizer(rules, remove_diacritics=remove_diacritics))


def get_target_normalizer(language: str | None, do_lower_case: bool = False,
                          do_remove_punctuation: bool = False) -> TargetTextNormalizer:
    """The training-target normalizer (identity unless a switch is on)."""
    rules = get_language(language or "en")
    return TargetTextNormalizer(rules, do_lower_case=do_lower_case, do_remove_punctuation=do_remove_punctuation)
