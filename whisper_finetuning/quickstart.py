"""Quickstart: transcribe a few clips in English, German and Swedish with pretrained Whisper, offline, and score them.

The clips are spoken by eSpeak NG from the sentence lists in synthetic/sentences/ and written as an audiofolder
(metadata.csv + wav). Each model is loaded from the Hub if it can be reached, otherwise from its offline copy.
Writes OUTPUT_DIR/results.md, results.json and predictions.jsonl, and prints the table.
"""

import argparse
import csv
import json
import logging
from pathlib import Path

import soundfile
from tqdm.auto import tqdm

from normalizers import get_normalizer

from .data.audio import SAMPLING_RATE, to_model_rate
from .backends.transformers_backend import TransformersBackend
from .evaluation.transcriber import Transcriber
from .loading import language_kwargs
from .metrics import error_rate
from .synthetic.corpus import read_sentences
from .synthetic.tts import synthesize

VOICE_VARIANTS = ["", "+m3", "+f2", "+m7", "+f4"]  # eSpeak NG voice variants, cycled over the sentences


def make_clips(language: str, clip_dir: Path) -> list[dict]:
    """Speak the quickstart sentences of `language` into clip_dir (once) and return the audiofolder rows."""
    metadata = clip_dir / "metadata.csv"
    if metadata.is_file():
        with open(metadata, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    clip_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    sentences = read_sentences(f"quickstart_{language}")
    for index, sentence in enumerate(tqdm(sentences, desc=f"speaking {language}", leave=False)):
        voice = language + VOICE_VARIANTS[index % len(VOICE_VARIANTS)]
        samples, rate = synthesize(sentence, voice=voice, rate=130)
        name = f"{language}_{index:03d}.wav"
        soundfile.write(clip_dir / name, to_model_rate(samples, rate), SAMPLING_RATE)
        rows.append({"file_name": name, "transcription": sentence, "voice": voice})
    with open(metadata, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="quickstart_output")
    parser.add_argument("--models", nargs="+", default=["openai/whisper-base", "openai/whisper-tiny.en"])
    parser.add_argument("--languages", nargs="+", default=["en", "de", "sv"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    output_dir = Path(args.output_dir)

    clips = {lang: make_clips(lang, output_dir / "clips" / lang) for lang in args.languages}
    results, predictions = [], []
    for model_name in args.models:
        backend = TransformersBackend.load(model_name, dtype="float32")  # with the fast CPU attention
        model = backend.model
        english_only = not model.generation_config.is_multilingual
        for language in tqdm(args.languages, desc=model_name):
            if english_only and language != "en":
                continue
            rows = clips[language]
            paths = [str(output_dir / "clips" / language / row["file_name"]) for row in rows]
            transcriber = Transcriber(backend, language_kwargs(model, language))
            by_path = {row["audio"]["path"]: text
                       for row, text, _, _ in transcriber([{"audio": {"path": path}} for path in paths])}
            texts = [by_path[path] for path in paths]
            normalization = get_normalizer(language)
            score = error_rate([r["transcription"] for r in rows], texts, normalization.metric, normalization)
            results.append({"model": model_name, "language": language, "samples": len(rows),
                            **score.to_dict(), "rtfx": transcriber.throughput.rtfx})
            predictions += [{"model": model_name, "language": language, "file_name": r["file_name"],
                             "voice": r["voice"], "reference": r["transcription"], "prediction": t,
                             "reference_normalized": normalization(r["transcription"]),
                             "prediction_normalized": normalization(t)} for r, t in zip(rows, texts)]

    table = ["| model | language | clips | metric | error rate | RTFx |", "|---|---|---|---|---|---|"]
    table += [f"| {r['model']} | {r['language']} | {r['samples']} | {r['metric'].upper()} | "
              f"{100 * r['value']:.1f}% | {r['rtfx']:.1f} |" for r in results]
    examples = ["", "| model | reference | prediction |", "|---|---|---|"]
    examples += [f"| {p['model']} | {p['reference']} | {p['prediction']} |" for p in predictions]
    (output_dir / "results.md").write_text("\n".join(table + examples) + "\n", encoding="utf-8")
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    with open(output_dir / "predictions.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions)
    print("\n".join(table + examples))
    print(f"\nWrote {output_dir}/results.md, results.json and predictions.jsonl")


if __name__ == "__main__":
    main()
