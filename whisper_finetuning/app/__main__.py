"""python -m whisper_finetuning.app --model_name_or_path PATH_OR_ID [--host 127.0.0.1] [--port 7860] [--share]"""

import argparse
import logging

import transformers

from ..args import add_model_arguments
from ..backends.base import ModelFormatError
from ..backends.load import load_backend
from ..inference.streaming import StreamSettings
from .captions import CSS
from .handlers import Handlers
from .ui import build_demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m whisper_finetuning.app", description=(
        "A web app around one Whisper model: transcribe files and microphone recordings, caption the microphone "
        "and stream URLs live, download SRT and WebVTT."))
    add_model_arguments(parser, "a folder the kit wrote (training output, checkpoint-N, LoRA adapter, or a "
                        "CTranslate2 export, run by faster-whisper) or a Hub id such as openai/whisper-base",
                        "language selected at start (a code such as sv); default: detect")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link (needs internet)")
    parser.add_argument("--max_audio_minutes", type=float, default=60.0,
                        help="longest file or recording the File and Microphone tabs accept")
    parser.add_argument("--min_step", type=float, default=StreamSettings.min_step,
                        help="live captions: seconds of new audio before the buffer is transcribed again")
    parser.add_argument("--encoder_seconds", type=float, default=StreamSettings.encoder_seconds,
                        help="live captions with a CTranslate2 export: the encoder sees the buffer plus 2 s, at least "
                        "this many seconds, instead of 30 (faster, lower latency, some accuracy lost; "
                        "benchmarks/stream_replay.py measures both)")
    parser.add_argument("--max_streams", type=int, default=2, help="live captions running at the same time")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    transformers.logging.set_verbosity_error()  # per-call generation notices would flood the log
    try:
        loaded = load_backend(args.model_name_or_path, dtype=args.dtype)
    except ModelFormatError as error:
        raise SystemExit(f"error: {error}")
    try:
        settings = StreamSettings(min_step=args.min_step, encoder_seconds=args.encoder_seconds)
        loaded.check_encoder_seconds(settings.encoder_seconds)
    except ValueError as error:
        raise SystemExit(f"error: {error}")
    handlers = Handlers(loaded, settings, args.max_audio_minutes * 60)
    demo = build_demo(handlers, default_language=args.language, max_streams=args.max_streams)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, css=CSS, ssr_mode=False)


if __name__ == "__main__":
    main()
