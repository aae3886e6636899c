"""Transcribe and score a stream of rows: normalized WER (the leaderboard number), orthographic WER and CER."""

from tqdm.auto import tqdm

from normalizers import Normalization

from ..metrics import error_rate
from .transcriber import Transcriber


def evaluate_rows(transcriber: Transcriber, rows, normalization: Normalization, total: int | None = None,
                  description: str = "", max_samples: int | None = None, block_size: int = 256):
    """Transcribe and score a stream of rows; returns (scores dict, per-sample predictions)."""
    predictions, unreadable = [], []
    block = []
    progress = tqdm(total=min(total, max_samples) if total and max_samples else (max_samples or total),
                    desc=description, unit=" samples")

    def flush():
        for row, text, duration, error in transcriber(block):
            progress.update(1)
            if error is not None:
                unreadable.append({"id": row["id"], "path": row["audio"].get("path"), "error": error})
                continue
            predictions.append({"id": row["id"], "dataset": row["dataset"], "duration": round(duration, 3),
                                "reference": row["text"], "prediction": text,
                                "reference_normalized": normalization(row["text"]),
                                "prediction_normalized": normalization(text)})
        block.clear()

    for index, row in enumerate(rows):
        if max_samples is not None and index >= max_samples:
            break
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
        "samples": len(predictions), "empty_references": normalized_wer.num_empty_references,
        "unreadable": len(unreadable), "unreadable_files": unreadable[:20],
        "audio_hours": sum(p["duration"] for p in predictions) / 3600,
    }
    return scores, predictions
