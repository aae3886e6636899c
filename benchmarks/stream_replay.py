"""Live captions, measured: a recording replayed as a live stream, and the same recording transcribed offline.

    python benchmarks/stream_replay.py [--model openai/whisper-base] [--min_steps 1.0 2.0]
        [--encoder_seconds 30 10] [--output_dir DIR]

The recording: the kit's English sentence lists (35 sentences), read twice in different orders by eight eSpeak NG
voices, one sentence after the other with pauses of 0.3-1.5 s and one 6 s silence in the middle: 4.0 minutes.
The replay is computation-aware: the audio at stream time t arrives at clock time t, the clock runs while the model
works, and only idle waits are skipped (whisper_streaming's simulation), so lag and latency are what a live stream
would see on this machine.

Reported per chunk size (and, for a CTranslate2 export, per encoder input length: StreamSettings.encoder_seconds): WER of the committed text (the English normalizer; the streaming WER should be at most 1.2x
the offline one), word latency (the clock when a word is committed minus the word's end in the audio as the model
timed it, median and 90th percentile; cross-attention times put a pause at the end of the word before it, up to
~0.4 s, so latencies of sentence-final words read a little short), first-word latency, real-time factor (model time
/ audio time), the lag (clock minus arrival of the newest audio handled) in the first and last third of the
recording and its maximum, how often the partial text was rewritten (steps whose displayed text did not extend the
previous one), audio dropped, transcriptions discarded by the guards, and the mean step. Offline: long-form and
chunked-with-stride WER and real-time factor. Writes results.json and results.md to --output_dir.
"""

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np

from normalizers import get_normalizer
from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.backends.transformers_backend import TransformersBackend
from whisper_finetuning.data.audio import SAMPLING_RATE, to_model_rate
from whisper_finetuning.files import write_json_atomic, write_text_atomic
from whisper_finetuning.inference.agreement import word_key
from whisper_finetuning.inference.long_audio import transcribe_long
from whisper_finetuning.inference.replay import VirtualClock, replay
from whisper_finetuning.inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings
from whisper_finetuning.inference.vad import VoiceActivity
from whisper_finetuning.metrics import error_rate
from whisper_finetuning.synthetic.corpus import read_sentences, speakers_for
from whisper_finetuning.synthetic.tts import synthesize

LONG_SILENCE_SECONDS = 6.0
OFFLINE_METHODS = ("long-form", "pipeline-chunked")


def pipeline_chunked(loaded, audio: np.ndarray, generate_kwargs: dict, batch_size: int = 4) -> str:
    """The baseline: the transformers pipeline's 30 s chunks with 5 s strides, merged where the overlaps agree.

    Greedy like the long-form path: the pipeline's own default is 5 beams (transformers 5), which alone made it
    several times slower here and would compare another decoder."""
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=loaded.model, tokenizer=loaded.processor.tokenizer,
                   feature_extractor=loaded.processor.feature_extractor, device=loaded.model.device)
    output = asr({"raw": audio, "sampling_rate": SAMPLING_RATE}, chunk_length_s=30, stride_length_s=5,
                 batch_size=batch_size, return_timestamps=True, generate_kwargs={**generate_kwargs, "num_beams": 1})
    return " ".join(chunk["text"].strip() for chunk in output["chunks"] if chunk["text"].strip())


def spoken_recording(seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """(audio, sentences with their text, start and end in seconds)."""
    rng = random.Random(seed)
    sentences = read_sentences("corpus_en") + read_sentences("quickstart_en")
    sentences += rng.sample(sentences, len(sentences))  # read twice, in another order, by other voices
    speakers = speakers_for("en", 8, seed)
    pieces, timeline, position = [], [], 0
    for index, text in enumerate(sentences):
        speaker = speakers[index % len(speakers)]
        speech = to_model_rate(*synthesize(text, speaker.voice, speaker.rate, speaker.pitch))
        pause = LONG_SILENCE_SECONDS if index == len(sentences) // 2 else rng.uniform(0.3, 1.5)
        silence = np.zeros(int(pause * SAMPLING_RATE), dtype=np.float32)
        timeline.append({"text": text, "start": position / SAMPLING_RATE,
                         "end": (position + len(speech)) / SAMPLING_RATE})
        pieces += [speech, silence]
        position += len(speech) + len(silence)
    return np.concatenate(pieces), timeline


def wer(reference: str, hypothesis: str) -> float:
    return error_rate([reference], [hypothesis], "wer", get_normalizer("en")).percent


def stream_metrics(updates, transcriber, reference: str, duration: float) -> dict:
    committed, latencies, display, partial_shown, rewrites, steps_with_partial = [], [], [], 0, 0, 0
    for update in updates:
        for word in update.committed:
            committed.append(word)
            latencies.append(update.time - word.end)
        new_display = [word_key(w.text) for w in committed + update.partial]
        if partial_shown:  # was anything shown as partial rewritten (changed or removed) by this step?
            steps_with_partial += 1
            rewrites += new_display[:len(display)] != display
        display, partial_shown = new_display, len(update.partial)
    if not latencies:
        raise SystemExit(f"streaming committed no words ({transcriber.dropped_seconds:.0f} s of audio dropped, "
                         f"{len(transcriber.rejections)} transcriptions discarded): the machine is too slow or busy "
                         f"for this model; try a larger --min_steps or a smaller --model")
    thirds = [[u.lag for u in updates if k * duration / 3 <= u.audio_time < (k + 1) * duration / 3] for k in range(3)]
    transcript = "".join(w.text for w in committed).strip()
    return {
        "wer": wer(reference, transcript),
        "words": len(committed),
        "latency_median": statistics.median(latencies),
        "latency_p90": float(np.percentile(latencies, 90)),
        "first_word_latency": latencies[0],
        "rtf": sum(u.compute for u in updates) / duration,
        "lag_first_third": statistics.median(thirds[0]),
        "lag_last_third": statistics.median(thirds[2]),
        "lag_max": max(u.lag for u in updates),
        "rewrite_rate": rewrites / steps_with_partial if steps_with_partial else 0.0,
        "dropped_seconds": transcriber.dropped_seconds,
        "discarded": len(transcriber.rejections),
        "mean_step": statistics.mean(u.step for u in updates if u.step),
        "transcript": transcript,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="openai/whisper-base", help="Hub id, checkpoint folder or CTranslate2 "
                        "export (`python -m whisper_finetuning.export --to ctranslate2`, run by faster-whisper)")
    parser.add_argument("--min_steps", type=float, nargs="+", default=[1.0, 2.0],
                        help="chunk sizes (StreamSettings.min_step) to replay with")
    parser.add_argument("--encoder_seconds", type=float, nargs="+", default=[30.0],
                        help="shortest encoder inputs to replay with (CTranslate2 exports; 30: the model's window)")
    parser.add_argument("--offline_methods", nargs="*", default=list(OFFLINE_METHODS), choices=OFFLINE_METHODS,
                        help="offline methods to compare: the kit's long-form decoding, the pipeline's chunking")
    parser.add_argument("--output_dir", type=Path, default=Path("output/stream_replay"))
    args = parser.parse_args()

    audio, timeline = spoken_recording()
    duration = len(audio) / SAMPLING_RATE
    reference = " ".join(s["text"] for s in timeline)
    print(f"recording: {len(timeline)} sentences, {duration:.1f} s")
    loaded = load_backend(args.model, dtype="float32")
    results = {"model": args.model, "audio_seconds": duration, "offline": {}, "streaming": {}}

    for method in args.offline_methods:
        if method == "pipeline-chunked" and not isinstance(loaded, TransformersBackend):
            print(f"offline {method}: skipped, the transformers pipeline does not run a {loaded.name} model")
            continue
        began = time.perf_counter()
        if method == "long-form":
            text = " ".join(s.text for s in transcribe_long(loaded, audio, loaded.generate_kwargs("en")))
        else:
            text = pipeline_chunked(loaded, audio, loaded.generate_kwargs("en"))
        seconds = time.perf_counter() - began
        results["offline"][method] = {"wer": wer(reference, text), "rtf": seconds / duration, "transcript": text}
        print(f"offline {method}: WER {results['offline'][method]['wer']:.2f} %, RTF {seconds / duration:.3f}")

    for encoder_seconds in args.encoder_seconds:
        for min_step in args.min_steps:
            clock = VirtualClock()
            settings = StreamSettings(min_step=min_step, encoder_seconds=encoder_seconds)
            transcriber = StreamingTranscriber(ModelWindows(loaded, "en", encoder_seconds=encoder_seconds), settings,
                                               vad=VoiceActivity(), clock=clock.now)
            updates = replay(audio, transcriber, clock)
            metrics = stream_metrics(updates, transcriber, reference, duration)
            results["streaming"][f"{min_step:g} s, encoder {encoder_seconds:g} s"] = metrics
            print(f"streaming, chunk {min_step:g} s, encoder {encoder_seconds:g} s: " + ", ".join(
                f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float)))

    args.output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output_dir / "results.json", results)
    write_text_atomic(args.output_dir / "results.md", markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    offline = results["offline"]
    best = min((r["wer"] for r in offline.values()), default=float("nan"))
    lines = [f"Model {results['model']}, {results['audio_seconds']:.1f} s of audio.", "",
             "| offline method | WER % | RTF |", "|---|---|---|"]
    lines += [f"| {name} | {r['wer']:.2f} | {r['rtf']:.3f} |" for name, r in offline.items()]
    lines += ["", "| chunk (min step), encoder input | WER % | x offline | latency median / p90 s | first word s | RTF | "
              "lag first / last third, max s | rewrites | dropped s | discarded | mean step s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for setting, r in results["streaming"].items():
        lines.append(f"| {setting} | {r['wer']:.2f} | {r['wer'] / best:.2f} | {r['latency_median']:.2f} / "
                     f"{r['latency_p90']:.2f} | {r['first_word_latency']:.2f} | {r['rtf']:.3f} | "
                     f"{r['lag_first_third']:.2f} / {r['lag_last_third']:.2f}, {r['lag_max']:.2f} | "
                     f"{r['rewrite_rate']:.2f} | {r['dropped_seconds']:.1f} | {r['discarded']} | "
                     f"{r['mean_step']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
