"""Long-form skills of Whisper models, side by side: what fine-tuning must not lose for subtitles, the app's File tab
and live captions (evaluation/long_form.py says how each number is measured).

    python benchmarks/long_form_skills.py --model_name_or_path openai/whisper-base demo_output/models/plain \
        --dataset_name demo_output/data/fleurs --dataset_config_name sv_se --language sv [--output long_form.json] \
        [--retention_dataset_name demo_output/data/fleurs --retention_dataset_config_name en_us \
         --retention_language en]

Each model transcribes
- the test clips one by one (run_eval.py's way: clip-by-clip WER);
- recordings joined from the same clips in order (`--clips_per_recording`, pauses of 0.3-1.5 s and one of 8 s in the
  middle), through the app's File-tab path (long-form decoding with timestamps), scored on long-form WER, cue-start
  error (median, p90; raw, and after `start_on_speech` moves cue starts onto the voice) and cues outside the audio;
- 60 s of digital silence and 60 s of pink noise: the words it writes there are made up;
- language identification: the share of the test clips in which it detects --language, and with --retention_*, the
  share of the retention clips (English, say: what the base model knew) in which it detects theirs, and their WER.
Prints one table (and writes the numbers as JSON with --output). With --plot, the metrics against the training step
of the checkpoints given (RUN/checkpoint-N; the other models, such as the base model, at step 0 of every run).
--from_json reads earlier --output files instead of measuring, to put runs measured apart into one table and plot:

    python benchmarks/long_form_skills.py --from_json base.json plain.json targets.json --plot long_form_steps.png
"""

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

from normalizers import get_language, get_normalizer
from whisper_finetuning.args import DTYPE_HELP
from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.data.audio import decode_row_audio
from whisper_finetuning.data.mixing import parse_dataset_specs
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.evaluation.long_form import Cue, quiet_recordings, recordings_from_clips, score_recordings
from whisper_finetuning.evaluation.transcriber import Transcriber
from whisper_finetuning.features.log_mel import LogMelExtractor
from whisper_finetuning.figures import pyplot, save_png
from whisper_finetuning.files import write_json_atomic
from whisper_finetuning.inference.long_audio import transcribe_long
from whisper_finetuning.inference.subtitles import Cue as SubtitleCue
from whisper_finetuning.inference.subtitles import start_on_speech
from whisper_finetuning.inference.vad import VoiceActivity
from whisper_finetuning.metrics import error_rate

COLUMNS = ["model", "clip WER", "long-form WER", "cue start median s", "cue start p90 s", "snapped median s",
           "snapped p90 s", "missed", "cues outside", "words on silence", "words on noise", "language ID %",
           "retention WER", "retention language ID %", "seconds"]


def test_rows(name: str, config: str | None, split: str, limit: int | None) -> list[dict]:
    """The clips of one dataset or of several ('+'-separated, one after the other), with readable audio and text."""
    rows = [row for spec in parse_dataset_specs(name, config, split, None)
            for row in load_source(spec.name, spec.config, spec.split)
            if not row["error"] and (row["text"] or "").strip()]
    return rows[:limit]


def cues_of(backend, audio: np.ndarray, generate_kwargs: dict, start_on_voice: bool = False) -> list[Cue]:
    """The File tab's cues of a recording; by default with the starts the model gave (`start_on_voice` False)."""
    return transcribe_long(backend, audio, generate_kwargs, start_on_voice)


def snapped(cues: list[Cue], audio: np.ndarray) -> list[Cue]:
    """The same cues with their starts moved onto the voice, as the app shows them."""
    moved = start_on_speech([SubtitleCue(c.start, c.end, c.text) for c in cues], VoiceActivity()(audio))
    return [Cue(c.start, c.end, c.text) for c in moved]


def language_accuracy(backend, rows: list[dict], language: str, batch_size: int = 16) -> float:
    """Percent of the clips in which the model detects `language` (Whisper's language identification)."""
    extract = LogMelExtractor(backend.processor.feature_extractor)
    detected = []
    for first in range(0, len(rows), batch_size):
        features = torch.stack([torch.from_numpy(extract(decode_row_audio(row["audio"])))
                                for row in rows[first:first + batch_size]])
        detected += backend.detect_languages(features)
    return round(100 * sum(code == language for code in detected) / len(detected), 2)


def clip_wer(backend, rows: list[dict], language: str, normalize) -> float:
    """run_eval.py's clip-by-clip WER (greedy, the language forced)."""
    transcriber = Transcriber(backend, {**backend.generate_kwargs(language), "num_beams": 1})
    texts = {t.row["id"]: t.text or "" for t in transcriber(rows)}
    return round(error_rate([row["text"] for row in rows], [texts[row["id"]] for row in rows], "wer",
                            normalize).percent, 2)


def measure(model: str, rows: list[dict], recordings, quiet, language: str, normalize, dtype: str,
            retention: tuple[list[dict], str] | None = None) -> dict:
    began = time.perf_counter()
    backend = load_backend(model, dtype=dtype)
    generate_kwargs = backend.generate_kwargs(language)
    raw = [cues_of(backend, r.audio, generate_kwargs) for r in recordings]
    on_quiet = {r.name: cues_of(backend, r.audio, generate_kwargs) for r in quiet}
    scores = score_recordings(recordings, raw, normalize, on_quiet).summary()
    moved = score_recordings(recordings, [snapped(c, r.audio) for c, r in zip(raw, recordings)], normalize).summary()
    kept = {"retention_wer": None, "retention_language_accuracy": None}
    if retention is not None:
        retention_rows, retention_language = retention
        kept = {"retention_wer": clip_wer(backend, retention_rows, retention_language,
                                          get_normalizer(retention_language)),
                "retention_language_accuracy": language_accuracy(backend, retention_rows, retention_language)}
    return {"model": model, "clip_wer": clip_wer(backend, rows, language, normalize), **scores,
            "snapped_cue_start_error_median_s": moved["cue_start_error_median_s"],
            "snapped_cue_start_error_p90_s": moved["cue_start_error_p90_s"],
            "language_accuracy": language_accuracy(backend, rows, language), **kept,
            "seconds": round(time.perf_counter() - began, 1),
            "cues": [[{"start": c.start, "end": c.end, "text": c.text} for c in found] for found in raw]}


def table(results: list[dict]) -> str:
    keys = ["model", "clip_wer", "long_form_wer", "cue_start_error_median_s", "cue_start_error_p90_s",
            "snapped_cue_start_error_median_s", "snapped_cue_start_error_p90_s", "utterances_missed",
            "cues_outside_audio", "words_on_silence", "words_on_noise", "language_accuracy", "retention_wer",
            "retention_language_accuracy", "seconds"]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join("-" if r[k] is None else str(r[k]) for k in keys) + " |" for r in results]
    return "\n".join(lines)


def run_and_step(model: str) -> tuple[str, int | None]:
    """(run, step) of a checkpoint folder RUN/checkpoint-N; (name, None) for any other model."""
    path = Path(model)
    found = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return (path.parent.name, int(found.group(1))) if found else (path.name, None)


def plot_steps(results: list[dict], path: str) -> Path:
    """Clip and long-form WER, cue-start error and words on silence + noise against the training step, one colour
    per run; models that are not checkpoints (the base model) at step 0 of every run."""
    plt = pyplot()
    runs: dict[str, list[tuple[int, dict]]] = {}
    start = [r for r in results if run_and_step(r["model"])[1] is None]
    for result in results:
        run, step = run_and_step(result["model"])
        if step is not None:
            runs.setdefault(run, []).append((step, result))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    panels = [("WER %", [("clip_wer", "--", "clip"), ("long_form_wer", "-", "long-form")]),
              ("cue-start error s", [("cue_start_error_median_s", "--", "median"),
                                     ("cue_start_error_p90_s", "-", "p90")]),
              ("words on 60 s of silence + noise", [(None, "-", "")])]
    for axis, (label, series) in zip(axes, panels):
        for colour, (run, points) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], sorted(runs.items())):
            points = sorted([(0, r) for r in start[:1]] + points, key=lambda point: point[0])
            for key, style, name in series:
                values = [(r["words_on_silence"] or 0) + (r["words_on_noise"] or 0) if key is None else r[key]
                          for _, r in points]
                axis.plot([step for step, _ in points], values, style, marker="o", color=colour,
                          label=f"{run} {name}".strip())
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return save_png(figure, path)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_name_or_path", "--model", nargs="+",
                        help="the models to compare (Hub ids, training outputs, checkpoints, exports)")
    parser.add_argument("--language", help="language of the test clips (code, name or token)")
    parser.add_argument("--dtype", default="auto", help=DTYPE_HELP)
    parser.add_argument("--dataset_name", help="the test clips: a FLEURS or Common Voice folder, ... ('+' for "
                                                 "several, one after the other)")
    parser.add_argument("--dataset_config_name", default=None, help="its config (sv_se, sv-SE)")
    parser.add_argument("--split", default="test", help="its split")
    parser.add_argument("--max_clips", type=int, default=None, help="the first N clips only")
    parser.add_argument("--clips_per_recording", type=int, default=12, help="clips joined into one recording")
    parser.add_argument("--quiet_seconds", type=float, default=60.0, help="length of the silence and noise clips")
    parser.add_argument("--retention_dataset_name", default=None,
                        help="clips of what the base model knew (English, say): their WER and language ID")
    parser.add_argument("--retention_dataset_config_name", default=None, help="its config (en_us, en)")
    parser.add_argument("--retention_language", default="en", help="their language")
    parser.add_argument("--output", default=None, help="write the numbers (and every cue) here as JSON")
    parser.add_argument("--plot", default=None, help="draw the metrics against the training step into this PNG")
    parser.add_argument("--from_json", nargs="+", default=None,
                        help="--output files of earlier runs: their table (and --plot) without measuring")
    args = parser.parse_args(argv)
    if args.from_json:
        results = [result for file in args.from_json for result in json.loads(Path(file).read_text())]
        return report(results, args)
    if not (args.model_name_or_path and args.language and args.dataset_name):
        parser.error("give --model_name_or_path, --language and --dataset_name (or --from_json)")
    language = get_language(args.language).code
    normalize = get_normalizer(language)
    rows = test_rows(args.dataset_name, args.dataset_config_name, args.split, args.max_clips)
    clips = [(decode_row_audio(row["audio"]), row["text"]) for row in rows]
    recordings = recordings_from_clips(clips, args.clips_per_recording)
    quiet = quiet_recordings(args.quiet_seconds)
    print(f"{len(clips)} clips; {len(recordings)} joined recordings of "
          f"{', '.join(f'{r.duration:.0f}' for r in recordings)} s; silence and noise of {args.quiet_seconds:.0f} s")
    retention = None
    if args.retention_dataset_name:
        retention = (test_rows(args.retention_dataset_name, args.retention_dataset_config_name, args.split,
                               args.max_clips), get_language(args.retention_language).code)
    results = [measure(model, rows, recordings, quiet, language, normalize, args.dtype, retention)
               for model in args.model_name_or_path]
    return report(results, args)


def report(results: list[dict], args) -> list[dict]:
    print(table(results))
    if args.output:
        write_json_atomic(args.output, results)
    if args.plot:
        print(f"Plot: {plot_steps(results, args.plot)}")
    return results


if __name__ == "__main__":
    main()
