"""Live captions from the command line:

    python -m whisper_finetuning.stream --model M --source URL_OR_FILE --language xx [--output captions.vtt]

The source is an HTTP/Icecast URL, an HLS playlist (.m3u8) or a local file played in real time. Committed text is
printed as it is committed; the subtitle file (.vtt or .srt) is rewritten after every step (atomically). Warnings
(audio dropped because the model is too slow, transcriptions discarded by the guards) go to stderr with the lag.
"""

import argparse
import logging
import sys
from dataclasses import fields

import transformers

from .inference.audio_input import AudioInputError, AudioSource
from .inference.live import caption_live
from .inference.model import ModelFormatError, load_for_inference
from .inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings
from .inference.subtitles import cues_from_words, write_subtitles
from .inference.vad import VoiceActivity


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m whisper_finetuning.stream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint folder, LoRA adapter, CTranslate2 export (run by "
                        "faster-whisper) or Hub id")
    parser.add_argument("--source", required=True, help="stream URL (HTTP/Icecast, HLS .m3u8) or audio file")
    parser.add_argument("--language", help="language code (e.g. sv); default: detected from the first speech")
    parser.add_argument("--task", default="transcribe", choices=["transcribe", "translate"], help="Whisper's task")
    parser.add_argument("--output", default="captions.vtt", help="rolling subtitle file, .vtt or .srt")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    parser.add_argument("--realtime", choices=["auto", "true", "false"], default="auto",
                        help="pace the source at real time (auto: files yes, URLs as they arrive)")
    parser.add_argument("--stall_seconds", type=float, default=20.0,
                        help="give up when the source sends no audio for this long")
    for setting in fields(StreamSettings):
        parser.add_argument(f"--{setting.name}", type=setting.type,
                            default=setting.default, help=setting.metadata["help"])
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()  # per-call generation notices would flood the log
    if not args.output.endswith((".vtt", ".srt")):
        raise SystemExit(f"error: --output must end in .vtt or .srt, not {args.output!r}")
    try:
        settings = StreamSettings(**{f.name: getattr(args, f.name) for f in fields(StreamSettings)})
        source = AudioSource(args.source, realtime={"auto": None, "true": True, "false": False}[args.realtime],
                             read_timeout=args.stall_seconds)
        loaded = load_for_inference(args.model, dtype=args.dtype)
        windows = ModelWindows(loaded, args.language, args.task, settings.encoder_seconds)
    except (ModelFormatError, AudioInputError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    transcriber = StreamingTranscriber(windows, settings, vad=VoiceActivity())
    failure = None
    try:
        for update in caption_live(source, transcriber, args.source, args.stall_seconds):
            if update.committed:
                print("".join(w.text for w in update.committed), end="", flush=True)
                write_subtitles(args.output, cues_from_words(transcriber.committed))
            for warning in update.warnings:
                print(f"\n[warning] {warning} (lag {update.lag:.1f} s)", file=sys.stderr, flush=True)
    except AudioInputError as error:
        failure = str(error)
    except KeyboardInterrupt:
        failure = "stopped"
    write_subtitles(args.output, cues_from_words(transcriber.committed))
    print(f"\n[{failure or 'end of stream'}] {transcriber.audio_time:.1f} s of audio, "
          f"{len(transcriber.committed)} words, {transcriber.dropped_seconds:.1f} s dropped, "
          f"{len(transcriber.rejections)} transcriptions discarded; subtitles in {args.output}", file=sys.stderr)
    return 1 if failure and failure != "stopped" else 0


if __name__ == "__main__":
    sys.exit(main())
