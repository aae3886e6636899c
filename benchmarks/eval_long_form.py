"""Long-form decoding (clips over 30 s) before and after Whisper's guards: silence, and silence around one sentence.

    python benchmarks/eval_long_form.py [--model openai/whisper-tiny.en] [--minutes 3] [--speech] [--setups ...]

Clips (16 kHz): `--minutes` of digital silence; the same with one sentence spoken by eSpeak NG in the middle; the
sentence in quiet noise instead (Gaussian, -80 dBFS RMS, so not digital silence); with --speech also 30 sentences
of the synthetic English corpus with 0.5 s pauses (about 90 s), scored by WER. Each clip is transcribed in float32,
after one warm-up, with:
- "before": the generate() call of run_eval before the guards (timestamps; no fallback, no no-speech skip);
- "guards, conditioned": transformers' long-form guards with OpenAI's defaults (temperature fallback 0-1,
  compression ratio 1.35 on tokens, average log-probability -1, no-speech 0.6, conditioned on the previous window);
- "guards": the same, not conditioned on the previous window (run_eval's default);
- "run_eval now": the guards (run_eval's defaults) after dropping stretches of digital silence.
Prints wall seconds per clip and the text (or the WER for the speech clip).
"""

import argparse
import time

import numpy as np
import torch

from normalizers import get_normalizer
from whisper_finetuning.data.audio import SAMPLING_RATE, to_model_rate
from whisper_finetuning.backends.cpu_attention import enable_fast_cpu_attention
from whisper_finetuning.backends.guards import LONG_FORM_GUARDS
from whisper_finetuning.backends.transformers_backend import TransformersBackend
from whisper_finetuning.evaluation.transcriber import Transcriber
from whisper_finetuning.loading import language_kwargs, load_whisper
from whisper_finetuning.metrics import error_rate
from whisper_finetuning.synthetic.corpus import read_sentences
from whisper_finetuning.synthetic.tts import synthesize

SENTENCE = "The library is closed on Sundays."
SETUPS = ["before", "guards, conditioned", "guards", "run_eval now"]


def speak(text: str) -> np.ndarray:
    return to_model_rate(*synthesize(text, "en-us", rate=140))


def without_silence_dropping(transcriber: Transcriber, audio: np.ndarray) -> str:
    """Long-form decoding of the whole clip, with the transcriber's generate arguments and guards."""
    return transcriber.backend.transcribe_long(audio, transcriber.generate_kwargs, transcriber.long_form_kwargs).text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="openai/whisper-tiny.en")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--speech", action="store_true", help="add the 90 s speech clip (WER)")
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=SETUPS, help="which setups to run (default: all)")
    args = parser.parse_args()
    half = np.zeros(int(args.minutes * 60 * SAMPLING_RATE / 2), np.float32)
    sentence = speak(SENTENCE)
    noise = np.random.default_rng(0).normal(0, 1e-4, 2 * len(half) + len(sentence)).astype(np.float32)
    clips = {f"{args.minutes:g} min digital silence": (np.concatenate([half, half]), ""),
             "... + 1 sentence": (np.concatenate([half, sentence, half]), SENTENCE),
             f"{args.minutes:g} min -80 dBFS noise + 1 sentence": (noise + np.concatenate([half, sentence, half]),
                                                                  SENTENCE)}
    if args.speech:
        texts = read_sentences("corpus_en")[:30]
        pause = np.zeros(SAMPLING_RATE // 2, np.float32)
        clips[f"{len(texts)} sentences"] = (np.concatenate([piece for t in texts for piece in (speak(t), pause)]),
                                            " ".join(texts))
    model, processor = load_whisper(args.model, dtype=torch.float32)
    enable_fast_cpu_attention(model)
    normalization = get_normalizer("en")
    conditioned = {**LONG_FORM_GUARDS, "condition_on_prev_tokens": True}
    setups = [("before", {}, without_silence_dropping), ("guards, conditioned", conditioned, without_silence_dropping),
              ("guards", LONG_FORM_GUARDS, without_silence_dropping),
              ("run_eval now", LONG_FORM_GUARDS, lambda t, audio: t._long_form({"id": "clip"}, audio))]
    setups = [setup for setup in setups if setup[0] in args.setups]
    print(f"{args.model}, float32, {torch.get_num_threads()} threads\n")
    print("| setup | clip | audio s | wall s | text (WER for many sentences) |\n|---|---|---|---|---|")
    for setup, guards, transcribe in setups:
        transcriber = Transcriber(TransformersBackend(model, processor), language_kwargs(model, "en"),
                                  long_form_kwargs=dict(guards))
        for name, (audio, reference) in clips.items():
            started = time.perf_counter()
            text = transcribe(transcriber, audio)
            seconds = time.perf_counter() - started
            if len(reference) > 100:
                text = f"WER {error_rate([reference], [text], 'wer', normalization).percent:.2f} %"
            else:
                text = repr(text)
            print(f"| {setup} | {name} | {len(audio) / SAMPLING_RATE:.0f} | {seconds:.1f} | {text} |", flush=True)


if __name__ == "__main__":
    main()
