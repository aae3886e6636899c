"""Transcribe and score a stream of rows: normalized WER (the leaderboard number), orthographic WER and CER; and
the check that a dataset's scores mean something."""

import math
from collections import Counter

from tqdm.auto import tqdm

from normalizers import Normalization

from ..metrics import error_rate
from .transcriber import MALFORMED_ROW, TOO_LONG, UNREADABLE_AUDIO, Transcriber

SCORES = ("wer", "wer_orthographic", "cer")
FIXES = {  # what to do when every sample of a dataset was skipped for this reason
    UNREADABLE_AUDIO: "check that the audio files exist where the dataset says and decode (WAV, FLAC, OGG or MP3; "
                      "`python -c \"import soundfile; print(soundfile.info('FILE'))\"` shows what libsndfile reads)",
    MALFORMED_ROW: "repair the rows named above in the dataset's files (each error names the file and line)",
    TOO_LONG: "raise --max_duration_in_seconds",
}


class ScoringError(RuntimeError):
    """A dataset gave nothing to score, or a score that is not a number."""


def evaluate_rows(transcriber: Transcriber, rows, normalization: Normalization, total: int | None = None,
                  description: str = "", max_samples: int | None = None, block_size: int = 256):
    """Transcribe and score a stream of rows; returns (scores dict, per-sample predictions). Stops early, with
    scores["complete"] false, when `transcriber.stop` is set."""
    predictions, skipped = [], []
    block = []
    seen = 0
    progress = tqdm(total=min(total, max_samples) if total and max_samples else (max_samples or total),
                    desc=description, unit=" samples")

    def flush():
        for row, text, duration, skip in transcriber(block):
            progress.update(1)
            if skip is not None:
                skipped.append({"id": row["id"], "path": row["audio"].get("path"), "reason": skip.reason,
                                "error": skip.detail})
                continue
            predictions.append({"id": row["id"], "dataset": row["dataset"], "duration": round(duration, 3),
                                "reference": row["text"], "prediction": text,
                                "reference_normalized": normalization(row["text"]),
                                "prediction_normalized": normalization(text)})
        block.clear()

    for row in rows:
        if (max_samples is not None and seen >= max_samples) or transcriber.stop.is_set():
            break
        seen += 1
        block.append(row)
        if len(block) == block_size:
            flush()
    flush()
    progress.close()
    references = [p["reference"] for p in predictions]
    hypotheses = [p["prediction"] for p in predictions]
    normalized_wer = error_rate(references, hypotheses, "wer", normalization)
    scores = {
        "metric": normalization.metric,
        "wer": normalized_wer.percent,
        "wer_orthographic": error_rate(references, hypotheses, "wer", str.strip).percent,
        "cer": error_rate(references, hypotheses, "cer", normalization).percent,
        "substitutions": normalized_wer.substitutions, "insertions": normalized_wer.insertions,
        "deletions": normalized_wer.deletions, "hits": normalized_wer.hits,
        "rows": seen, "samples": len(predictions), "empty_references": normalized_wer.num_empty_references,
        "skipped": len(skipped), "skipped_by_reason": dict(Counter(s["reason"] for s in skipped)),
        "skipped_samples": skipped[:20],
        "audio_hours": sum(p["duration"] for p in predictions) / 3600,
        "complete": not transcriber.stop.is_set(),
    }
    return scores, predictions


def check_scores(scores: dict, label: str) -> None:
    """Raise ScoringError, naming the dataset, the problem and the fix, when nothing could be scored."""
    if scores["rows"] == 0:
        raise ScoringError(f"{label}: the dataset has no rows. Check --split, --dataset_config_name and that the "
                           "dataset folder or Hub id is the one you meant")
    if scores["samples"] == 0:
        reasons = scores["skipped_by_reason"]
        first = "; ".join(f"{s['id']}: {s['error'].rstrip('.')}" for s in scores["skipped_samples"][:3])
        fixes = "; ".join(FIXES[reason] for reason in reasons)
        raise ScoringError(f"{label}: 0 of {scores['rows']} clips could be transcribed "
                           f"({', '.join(f'{n} {reason}' for reason, n in reasons.items())}); first failures: "
                           f"{first}. To fix: {fixes}")
    not_numbers = [name for name in SCORES if not math.isfinite(scores[name])]
    if not_numbers:
        raise ScoringError(f"{label}: {', '.join(not_numbers)} is not a number: the references of all "
                           f"{scores['samples']} transcribed clips are empty after normalization, so there is nothing "
                           "to score. Check that --text_column_name names the transcript column")
