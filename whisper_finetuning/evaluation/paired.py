"""Is one model really better than another on the same clips? A paired bootstrap of their WER difference.

Both models transcribed the same test clips (run_eval.py's predictions files). Drawing the clips again with
replacement, many times, and recomputing both corpus WERs on each draw shows how much the difference would move
with another sample of clips of the same kind (the paired bootstrap of Koehn 2004, used for ASR by Bisani and Ney
2004). When the whole 95 % interval lies below zero, the second model is clearly better on this kind of audio; when
it straddles zero, the test set cannot tell the two apart. It says nothing about training noise: a second training
run with another seed is another question.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer
import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


class PairedError(ValueError):
    pass


@dataclass(frozen=True)
class PairedDifference:
    clips: int  # scored by both models
    reference_wer: float  # %, on those clips
    other_wer: float
    difference: float  # other - reference, WER points: negative when the other model makes fewer errors
    low: float  # the 95 % bootstrap interval of `difference`
    high: float
    better: int  # clips where the other model makes fewer word errors
    worse: int  # ... more

    @property
    def verdict(self) -> str:
        if self.high < 0:
            return "lower"
        if self.low > 0:
            return "higher"
        return "no clear difference"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def read_predictions(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def word_errors(rows: list[dict]) -> dict[tuple[str, str], tuple[int, int, str]]:
    """(dataset, id) -> (word errors, reference words, normalized reference) per clip, from the texts run_eval scored.
    Clips whose normalized reference is empty are left out, as run_eval's WER leaves them out."""
    errors = {}
    for row in rows:
        reference = row["reference_normalized"]
        if not reference.strip():
            continue
        out = jiwer.process_words(reference, row["prediction_normalized"])
        errors[(row["dataset"], row["id"])] = (out.substitutions + out.deletions + out.insertions,
                                               out.substitutions + out.deletions + out.hits, reference)
    return errors


def paired_difference(reference_rows: list[dict], other_rows: list[dict], resamples: int = RESAMPLES,
                      seed: int = 0) -> PairedDifference:
    """The WER difference (other - reference) on the clips both models scored, with its bootstrap interval."""
    reference, other = word_errors(reference_rows), word_errors(other_rows)
    clips = sorted(reference.keys() & other.keys())
    if not clips:
        raise PairedError("the two prediction sets share no scored clip (were they made on the same test set?)")
    ref_errors = np.array([reference[clip][0] for clip in clips], dtype=np.float64)
    other_errors = np.array([other[clip][0] for clip in clips], dtype=np.float64)
    words = np.array([reference[clip][1] for clip in clips], dtype=np.float64)
    mismatched = next((clip for clip in clips if reference[clip][2] != other[clip][2]), None)
    if mismatched:
        raise PairedError(f"the two prediction sets have different references for clip {mismatched[1]!r} of "
                          f"{mismatched[0]} ({reference[mismatched][2]!r} vs {other[mismatched][2]!r}): score both "
                          "models on the same test set with the same normalizer")

    # Each resample is a count per clip (how often the draw picked it): the same as indexing, without an
    # (resamples x clips) index array, so that a 10,000-clip test set needs no gigabytes.
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, resamples, 1000):
        counts = rng.multinomial(len(clips), np.full(len(clips), 1 / len(clips)), size=min(1000, resamples - start))
        differences.append(100 * (counts @ (other_errors - ref_errors)) / (counts @ words))
    low, high = np.percentile(np.concatenate(differences), [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    total = words.sum()
    return PairedDifference(
        clips=len(clips), reference_wer=100 * ref_errors.sum() / total, other_wer=100 * other_errors.sum() / total,
        difference=100 * (other_errors.sum() - ref_errors.sum()) / total, low=float(low), high=float(high),
        better=int((other_errors < ref_errors).sum()), worse=int((other_errors > ref_errors).sum()))


def paired_differences(models: dict[str, dict[str, dict]], labels: list[str], reference: str) -> dict:
    """Every other model's difference from `reference` per label (an SNR), from the predictions files
    (`models`: name -> label -> scores holding "predictions", the path of run_eval's predictions file), as
    {"reference": name, "models": {name: {label: PairedDifference.to_dict()}}} for results.json."""
    reference_rows = {label: read_predictions(Path(models[reference][label]["predictions"])) for label in labels}
    return {"reference": reference, "confidence": CONFIDENCE, "resamples": RESAMPLES,
            "models": {name: {label: paired_difference(reference_rows[label],
                                                       read_predictions(Path(scores[label]["predictions"]))).to_dict()
                              for label in labels}
                       for name, scores in models.items() if name != reference}}


def paired_table(differences: dict, labels: list[str]) -> list[str]:
    """Markdown from `paired_differences`: how to read it, then one row per model, one cell per label, such as
    "-9.7 (-18.2 to -1.8), 21 clips better, 7 worse"."""
    lines = [f"WER difference from **{differences['reference']}** in points on the same clips (negative: fewer "
             f"errors), with its {differences['confidence']:.0%} paired-bootstrap interval over the clips: an interval "
             "that excludes 0 is a clear difference on this kind of audio (evaluation/paired.py).", "",
             "| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, by_label in differences["models"].items():
        cells = [f"{d['difference']:+.1f} ({d['low']:+.1f} to {d['high']:+.1f}), {d['better']} clips better, "
                 f"{d['worse']} worse" for d in (by_label[label] for label in labels)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
