"""Word and character error rates with jiwer, after normalization, dropping (and counting) empty references."""

import math
from dataclasses import asdict, dataclass
from typing import Callable

import jiwer


@dataclass
class ErrorRate:
    metric: str  # "wer" or "cer"
    value: float  # a fraction; nan when no reference was left to score
    substitutions: int
    deletions: int
    insertions: int
    hits: int
    num_scored: int
    num_empty_references: int  # references that were empty after normalization, left out of the score

    @property
    def percent(self) -> float:
        return 100 * self.value

    def to_dict(self) -> dict:
        return asdict(self)


def error_rate(references: list[str], predictions: list[str], metric: str = "wer",
               normalize: Callable[[str], str] | None = None) -> ErrorRate:
    """Corpus-level WER or CER (errors summed over all samples, divided by the reference length).

    For CER, whitespace is removed first: languages scored by CER are written without spaces between words.
    """
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    if metric not in ("wer", "cer"):
        raise ValueError(f"metric must be 'wer' or 'cer', not {metric!r}")
    normalize = normalize or (lambda text: text)
    pairs = [(normalize(r), normalize(p)) for r, p in zip(references, predictions)]
    if metric == "cer":
        pairs = [("".join(r.split()), "".join(p.split())) for r, p in pairs]
    kept = [(r, p) for r, p in pairs if r.strip()]
    empty = len(pairs) - len(kept)
    if not kept:
        return ErrorRate(metric, math.nan, 0, 0, 0, 0, 0, empty)
    refs, preds = [r for r, _ in kept], [p for _, p in kept]
    out = jiwer.process_words(refs, preds) if metric == "wer" else jiwer.process_characters(refs, preds)
    errors = out.substitutions + out.deletions + out.insertions
    value = errors / (out.substitutions + out.deletions + out.hits)
    return ErrorRate(metric, value, out.substitutions, out.deletions, out.insertions, out.hits, len(kept), empty)
