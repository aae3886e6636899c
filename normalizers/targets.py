"""Normalization of training targets: the event script's do_lower_case / do_remove_punctuation, done safely.

Unlike the evaluation normalizers this one never deletes a character whose removal turns a word into another word:
apostrophes and hyphens inside words stay (English "it's" does not become "its", "re-cover" not "recover"), as do
the separators inside numbers ("3.14", "1,000", "10:30"), symbols and the punctuation that is read aloud ("$5",
"50%", "R&D", "a@b") and every combining mark.
"""

import re
import unicodedata

from .languages import Language

INSIDE_WORD = re.compile(r"(?<=\w)['\u2019\u02bc\-\u2010\u2011](?=\w)")
INSIDE_NUMBER = re.compile(r"(?<=\d)[.,:](?=\d)")
SPACES = re.compile(r"\s+")
SPOKEN_PUNCTUATION = set("%‰‱&@")  # Unicode calls these punctuation, but removing them changes what is said


class TargetTextNormalizer:
    def __init__(self, rules: Language, do_lower_case: bool = False, do_remove_punctuation: bool = False):
        self.rules = rules
        self.do_lower_case = do_lower_case
        self.do_remove_punctuation = do_remove_punctuation

    def __call__(self, text: str) -> str:
        if self.do_lower_case:
            text = self.rules.lower(text)
        if self.do_remove_punctuation:
            keep = {m.start() for m in INSIDE_WORD.finditer(text)} | {m.start() for m in INSIDE_NUMBER.finditer(text)}
            text = "".join(
                " " if unicodedata.category(c).startswith("P") and i not in keep and c not in SPOKEN_PUNCTUATION else c
                for i, c in enumerate(text)
            )
            text = SPACES.sub(" ", text).strip()
        return text
