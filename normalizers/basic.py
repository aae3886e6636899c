"""Whisper's basic normalizer, and a language-aware version of it driven by languages.tsv.

Whisper's BasicTextNormalizer lower-cases, removes [bracketed] and (parenthesised) text, and turns every mark,
symbol and punctuation character into a space. That last step breaks words in many languages: the apostrophe of
Ukrainian п'ять, the vowel signs of Hindi नमस्ते, the dot of Turkish İ. `LanguageTextNormalizer` gives the same
output as Whisper's for languages without rules, and applies the rules of the table for the others.
"""

import re
import unicodedata

from whisper_normalizer.basic import ADDITIONAL_DIACRITICS, BasicTextNormalizer

from .languages import Language

__all__ = ["BasicTextNormalizer", "LanguageTextNormalizer"]

BRACKETED = re.compile(r"[<\[][^>\]]*[>\]]")
PARENTHESISED = re.compile(r"\(([^)]+?)\)")
APOSTROPHE_FORMS = re.compile("['\u2019\u02bc\u2018\u02bb`\u00b4\u2032]")
WORD_INTERNAL_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
ZERO_WIDTH_JOINERS = re.compile("[\u200c\u200d]")
SPACES = re.compile(r"\s+")


class LanguageTextNormalizer:
    """Normalize text of one language for WER/CER (see the module docstring)."""

    def __init__(self, rules: Language, remove_diacritics: bool = False):
        if remove_diacritics and rules.marks == "keep":
            raise ValueError(
                f"remove_diacritics would delete letters of {rules.name} (its combining marks are vowel signs); "
                "leave it off for this language"
            )
        self.rules = rules
        self.remove_diacritics = remove_diacritics

    def __call__(self, text: str) -> str:
        rules = self.rules
        text = unicodedata.normalize("NFKC", text)
        for source, target in rules.char_map:
            text = text.replace(source, target)
        text = rules.lower(text)
        text = BRACKETED.sub("", text)
        text = PARENTHESISED.sub("", text)
        if rules.drop_zero_width:
            text = ZERO_WIDTH_JOINERS.sub("", text)
        if rules.apostrophe_is_letter:
            text = APOSTROPHE_FORMS.sub("'", text)
        text = unicodedata.normalize("NFKD" if self.remove_diacritics else "NFKC", text)
        keep = {m.start() for m in WORD_INTERNAL_APOSTROPHE.finditer(text)} if rules.apostrophe_is_letter else set()
        clean = self._strip_diacritic if self.remove_diacritics else self._clean
        text = "".join(c if i in keep else clean(c) for i, c in enumerate(text))
        return SPACES.sub(" ", text.lower()).strip()

    def _clean(self, char: str) -> str:
        category = unicodedata.category(char)
        if category[0] in "SP":
            return " "
        if category[0] == "M":
            return {"keep": char, "drop": "", "space": " "}[self.rules.marks]
        return char

    @staticmethod
    def _strip_diacritic(char: str) -> str:
        # Whisper's remove_symbols_and_diacritics (after NFKD): drop accents, map ø/æ/ß..., symbols to spaces.
        if char in ADDITIONAL_DIACRITICS:
            return ADDITIONAL_DIACRITICS[char]
        category = unicodedata.category(char)
        if category == "Mn":
            return ""
        return " " if category[0] in "MSP" else char
