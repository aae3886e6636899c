"""Evaluation speed: run_eval.py's transcriber vs the transformers ASR pipeline's batch path, same model and data.

    python benchmarks/eval_speed.py [--model openai/whisper-base] [--languages en de] [--corpus DIR] [--batch_size 16]

The data is every clip of the Common Voice (validated) and FLEURS (train, dev, test) layouts of each language,
spoken by eSpeak NG voices (generated unless --corpus points at a corpus made by `synthetic_corpus`). Every setup
transcribes the same clips with the language forced, the same number of beams and batch size, timed from reading
the audio to text after one warm-up call; the model is loaded afresh for each. The anchor kit's method is the
pipeline in float32 with SDPA; run_eval.py's default on a CPU with native bfloat16 is bfloat16 (`--dtype auto`).
The pipeline in bfloat16 is shown too, so the share of the speed-up that is only the dtype is visible.

Prints per setup RTFx (audio seconds per wall second), normalized WER over all clips (the per-language WERs are
in the table), and how many clips are transcribed differently from the anchor, and two speed-ups: against the
anchor, and against the pipeline in the same dtype (the fair comparison for the kit's own work). On a CPU without
native bfloat16 (no AVX-512 BF16 or AMX), bfloat16 is emulated and slow for both, so those rows are left out.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import pipeline

from normalizers import get_language, get_normalizer
from whisper_finetuning.data.audio import load_audio
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.backends.cpu_attention import enable_fast_cpu_attention
from whisper_finetuning.backends.transformers_backend import TransformersBackend
from whisper_finetuning.evaluation.transcriber import Transcriber
from whisper_finetuning.loading import cpu_has_native_bfloat16, language_kwargs, load_whisper
from whisper_finetuning.metrics import error_rate
from whisper_finetuning.synthetic.corpus import generate

ANCHOR = "pipeline float32"


def corpus_rows(corpus: Path, language: str) -> list[dict]:
    lang = get_language(language)
    rows = list(load_source(str(corpus / "common_voice"), lang.common_voice[0], "validated"))
    for split in ("train", "dev", "test"):
        rows += list(load_source(str(corpus / "fleurs"), lang.fleurs, split))
    return rows


def run_transcriber(args, dtype: str, rows: list[dict], language: str) -> tuple[list, float]:
    model, processor = load_whisper(args.model, dtype=getattr(torch, dtype))
    enable_fast_cpu_attention(model)
    kwargs = {**language_kwargs(model, language), "num_beams": args.num_beams}
    transcriber = Transcriber(TransformersBackend(model, processor), kwargs, batch_size=args.batch_size)
    start = time.perf_counter()
    texts = {row["id"]: text for row, text, _, _ in transcriber(rows)}
    return [texts[row["id"]] for row in rows], time.perf_counter() - start


def run_pipeline(args, dtype: str, rows: list[dict], language: str) -> tuple[list, float]:
    model, processor = load_whisper(args.model, dtype=getattr(torch, dtype))
    kwargs = {**language_kwargs(model, language), "num_beams": args.num_beams}
    asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                   feature_extractor=processor.feature_extractor, device="cpu")
    asr({"raw": load_audio(rows[0]["audio"]["path"]), "sampling_rate": 16_000}, generate_kwargs=kwargs)  # warm-up
    start = time.perf_counter()
    inputs = ({"raw": load_audio(row["audio"]["path"]), "sampling_rate": 16_000} for row in rows)
    texts = [output["text"] for output in asr(inputs, batch_size=args.batch_size, generate_kwargs=kwargs)]
    return texts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--languages", nargs="+", default=["en", "de"])
    parser.add_argument("--corpus", type=Path, help="a synthetic_corpus folder with these languages (default: make one)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_beams", type=int, default=1, help="the pipeline's own default is 5, run_eval.py's 1")
    args = parser.parse_args()
    torch.manual_seed(0)
    setups = [(ANCHOR, run_pipeline, "float32"), ("pipeline bfloat16", run_pipeline, "bfloat16"),
              ("run_eval float32", run_transcriber, "float32"), ("run_eval bfloat16", run_transcriber, "bfloat16")]
    if not cpu_has_native_bfloat16():
        print("This CPU has no native bfloat16 (AVX-512 BF16 or AMX): the bfloat16 setups are left out")
        setups = [setup for setup in setups if setup[2] == "float32"]

    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus or Path(scratch)
        if args.corpus is None:
            generate(corpus, args.languages, ["common_voice", "fleurs"])
        data = {language: corpus_rows(corpus, language) for language in args.languages}
        audio_seconds = sum(len(load_audio(r["audio"]["path"])) for rows in data.values() for r in rows) / 16_000
        print(f"{sum(map(len, data.values()))} clips ({', '.join(args.languages)}), {audio_seconds:.0f} s of audio, "
              f"{args.model}, batch size {args.batch_size}, {args.num_beams} beam(s), {torch.get_num_threads()} threads")

        results = {}
        for name, run, dtype in setups:
            texts, seconds = {}, 0.0
            for language, rows in data.items():
                texts[language], elapsed = run(args, dtype, rows, language)
                seconds += elapsed
            results[name] = texts, seconds

        print(f"\n| setup | RTFx | vs anchor | vs pipeline, same dtype | WER % ({' / '.join(args.languages)}) | "
              "WER % all | clips unlike anchor |")
        print("|---|---|---|---|---|---|---|")
        anchor_texts, anchor_seconds = results[ANCHOR]
        for name, (texts, seconds) in results.items():
            references, hypotheses, per_language, differing = [], [], [], 0
            for language, rows in data.items():
                normalizer = get_normalizer(language)
                refs = [normalizer(r["text"]) for r in rows]
                hyps = [normalizer(t) for t in texts[language]]
                per_language.append(f"{error_rate(refs, hyps, normalizer.metric, str.strip).percent:.2f}")
                differing += sum(h != normalizer(a) for h, a in zip(hyps, anchor_texts[language]))
                references += refs
                hypotheses += hyps
            overall = error_rate(references, hypotheses, "wer", str.strip).percent
            dtype = name.split()[-1]
            same_dtype = results.get(ANCHOR if dtype == "float32" else f"pipeline {dtype}")
            versus_pipeline = f"{same_dtype[1] / seconds:.2f}x" if same_dtype else "-"
            print(f"| {name} | {audio_seconds / seconds:.2f} | {anchor_seconds / seconds:.2f}x | {versus_pipeline} | "
                  f"{' / '.join(per_language)} | {overall:.2f} | {differing} |")


if __name__ == "__main__":
    main()
