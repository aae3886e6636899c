"""Evaluation speed: run_eval.py's transcriber vs the transformers ASR pipeline's batch path, same model and data.

    python benchmarks/eval_speed.py [--model openai/whisper-base] [--language en] [--corpus DIR] [--batch_size 16]

Both decode the same Common Voice clips (48 kHz mp3) and transcribe them with the language forced and the same
number of beams (the pipeline's own default is 5 beams, run_eval.py's 1); both are timed from reading the audio to
text, after one warm-up call each. Prints RTFx (audio seconds per wall second) and the normalized WER of each, so
the speed-up is compared at equal accuracy.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import pipeline

from normalizers import get_normalizer
from whisper_finetuning.audio import load_audio
from whisper_finetuning.evaluation import Transcriber
from whisper_finetuning.metrics import error_rate
from whisper_finetuning.sources import load_source
from whisper_finetuning.synthetic_corpus import generate
from whisper_finetuning.transcription import language_kwargs, load_whisper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="openai/whisper-base")
    parser.add_argument("--language", default="en")
    parser.add_argument("--corpus", type=Path, help="folder with common_voice/<locale>/ (default: generate one)")
    parser.add_argument("--locale", default="en")
    parser.add_argument("--split", default="validated")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"],
                        help="dtypes to run run_eval's transcriber in (the pipeline runs in float32)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus or Path(scratch)
        if args.corpus is None:
            generate(corpus, [args.language], ["common_voice"])
        rows = list(load_source(str(corpus / "common_voice"), args.locale, args.split))
        model, processor = load_whisper(args.model)
        kwargs = {**language_kwargs(model, args.language), "num_beams": args.num_beams}
        normalization = get_normalizer(args.language)
        references = [r["text"] for r in rows]
        audio_seconds = sum(len(load_audio(r["audio"]["path"])) for r in rows) / 16_000
        timings = {}
        print(f"{len(rows)} clips, {audio_seconds:.0f} s of audio, {args.model}, batch size {args.batch_size}, "
              f"{args.num_beams} beam(s), {torch.get_num_threads()} threads")

        for dtype in args.dtypes:
            model_in_dtype = model.to(getattr(torch, dtype))
            transcriber = Transcriber(model_in_dtype, processor, kwargs, batch_size=args.batch_size)  # warms up
            start = time.perf_counter()
            results = {r["id"]: text for r, text, _, _ in transcriber(rows)}
            seconds = time.perf_counter() - start
            score = error_rate(references, [results[r["id"]] for r in rows], normalization.metric, normalization)
            print(f"run_eval transcriber, {dtype:8s}: RTFx {audio_seconds / seconds:6.1f}   "
                  f"WER {score.percent:5.2f}%   speed-up over the pipeline: see below")
            timings[dtype] = seconds
        model = model.to(torch.float32)

        asr = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                       feature_extractor=processor.feature_extractor, device="cpu")
        asr({"raw": load_audio(rows[0]["audio"]["path"]), "sampling_rate": 16_000}, generate_kwargs=kwargs)  # warm-up
        start = time.perf_counter()
        inputs = ({"raw": load_audio(r["audio"]["path"]), "sampling_rate": 16_000} for r in rows)
        outputs = [o["text"] for o in asr(inputs, batch_size=args.batch_size, generate_kwargs=kwargs)]
        pipeline_seconds = time.perf_counter() - start
        baseline = error_rate(references, outputs, normalization.metric, normalization)

        print(f"pipeline batch path, float32: RTFx {audio_seconds / pipeline_seconds:6.1f}   "
              f"WER {baseline.percent:5.2f}%")
        for dtype, seconds in timings.items():
            print(f"speed-up of run_eval ({dtype}) over the pipeline: {pipeline_seconds / seconds:.2f}x")


if __name__ == "__main__":
    main()
