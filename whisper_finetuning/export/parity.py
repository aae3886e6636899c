"""Does the exported model transcribe like the trained one? The same clips through both, scored with the same
normalizer: both WERs, the share of identical transcripts, and a verdict against a tolerance in WER points.

The trained model runs in float32 with the kit's own transcriber (what run_eval.py measures); the export runs as it
will be deployed. The report (parity.json, parity.md) goes into the export folder.
"""

import math

from ..evaluation.scoring import check_scores, evaluate_rows
from ..files import write_json_atomic, write_text_atomic

# How much worse (WER points, absolute) an export may be before the check fails: float32 must transcribe as the
# trained model does, up to the order of float operations; 16-bit weights round, int8 quantizes (and costs accuracy).
DEFAULT_TOLERANCE = {"float32": 0.5, "float16": 1.0, "bfloat16": 1.0, "int16": 1.0}
INT8_TOLERANCE = 2.0
SHOWN_DIFFERENCES = 10  # differing transcripts listed in the report


class ParityError(RuntimeError):
    """The export transcribes worse than the trained model beyond the tolerance."""


def default_tolerance(quantization: str) -> float:
    return DEFAULT_TOLERANCE.get(quantization, INT8_TOLERANCE)


def transcribe_and_score(transcriber, rows: list[dict], normalization, label: str) -> tuple[dict, list[dict]]:
    scores, predictions = evaluate_rows(transcriber, rows, normalization, total=len(rows), description=label)
    check_scores(scores, label)
    return {**scores, "rtfx": transcriber.throughput.rtfx}, predictions


def compare(trained: list[dict], exported: list[dict]) -> dict:
    """Identical transcripts (as written, and after normalization) and the samples that differ."""
    exported_by_id = {p["id"]: p for p in exported}
    if set(exported_by_id) != {p["id"] for p in trained}:
        raise ParityError(f"the two models transcribed different clips ({len(trained)} and {len(exported)}): "
                          "the audio of some clips could be decoded for one but not for the other")
    pairs = [(p, exported_by_id[p["id"]]) for p in trained]
    differing = [{"id": a["id"], "reference": a["reference"], "trained": a["prediction"], "exported": b["prediction"]}
                 for a, b in pairs if a["prediction"] != b["prediction"]]
    same_normalized = sum(a["prediction_normalized"] == b["prediction_normalized"] for a, b in pairs)
    return {"identical": 1 - len(differing) / len(pairs), "identical_normalized": same_normalized / len(pairs),
            "differences": differing}


def check_parity(trained_transcriber, export_transcriber, rows: list[dict], normalization, tolerance: float,
                 settings: dict) -> dict:
    """Transcribe `rows` with both and compare; `settings` (model, format, quantization, compute type, dataset)
    go into the report. Raises ParityError when the export's WER is worse by more than `tolerance`."""
    trained, trained_predictions = transcribe_and_score(trained_transcriber, rows, normalization, "trained model")
    exported, export_predictions = transcribe_and_score(export_transcriber, rows, normalization, "exported model")
    comparison = compare(trained_predictions, export_predictions)
    difference = exported["wer"] - trained["wer"]
    if not math.isfinite(difference):
        raise ParityError(f"the WER difference is not a number (trained {trained['wer']}, exported {exported['wer']})")
    report = {**settings, "samples": trained["samples"], "tolerance": tolerance,
              "trained": {key: trained[key] for key in ("wer", "cer", "wer_orthographic", "rtfx")},
              "exported": {key: exported[key] for key in ("wer", "cer", "wer_orthographic", "rtfx")},
              "wer_difference": difference, "passed": difference <= tolerance, **comparison}
    return report


def verdict(report: dict) -> str:
    return (f"exported WER {report['exported']['wer']:.2f} vs trained {report['trained']['wer']:.2f} "
            f"({report['wer_difference']:+.2f} points, tolerance {report['tolerance']:g}), "
            f"{100 * report['identical']:.1f} % identical transcripts on {report['samples']} clips")


def markdown(report: dict) -> str:
    rows = [f"| {name} | {report[key]['wer']:.2f} | {report[key]['cer']:.2f} | {report[key]['rtfx']:.2f} |"
            for name, key in (("trained (transformers, float32)", "trained"),
                              (f"exported ({report['format']}, {report['compute_type']})", "exported"))]
    lines = [f"# Export parity: {'passed' if report['passed'] else 'FAILED'}", "",
             f"Model {report['model']}, exported to {report['format']} {report['quantization']}, checked on "
             f"{report['dataset']} ({report['samples']} clips, {report['device']}).", "",
             "| model | WER | CER | RTFx |", "|---|---|---|---|", *rows, "",
             f"WER difference {report['wer_difference']:+.2f} points (tolerance {report['tolerance']:g}); identical "
             f"transcripts {100 * report['identical']:.1f} %, identical after normalization "
             f"{100 * report['identical_normalized']:.1f} %."]
    if report["differences"]:
        lines += ["", f"## Transcripts that differ (first {SHOWN_DIFFERENCES})", "",
                  "| id | reference | trained | exported |", "|---|---|---|---|"]
        lines += [f"| {d['id']} | {d['reference']} | {d['trained']} | {d['exported']} |".replace("\n", " ")
                  for d in report["differences"][:SHOWN_DIFFERENCES]]
    return "\n".join(lines) + "\n"


def write_report(export_dir, report: dict) -> None:
    write_json_atomic(export_dir / "parity.json", report)
    write_text_atomic(export_dir / "parity.md", markdown(report))
