"""OpenAI Whisper's English normalizer (numbers, British spellings, contractions, titles), from whisper-normalizer."""

from whisper_normalizer.english import EnglishNumberNormalizer, EnglishSpellingNormalizer, EnglishTextNormalizer

__all__ = ["EnglishNumberNormalizer", "EnglishSpellingNormalizer", "EnglishTextNormalizer"]
