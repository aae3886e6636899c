"""Live captions from the command line:

    python -m whisper_finetuning.live_captions --model_name_or_path M --source URL_OR_FILE --language xx \
        [--output captions.vtt]

The source is an HTTP/Icecast URL, an HLS playlist (.m3u8) or a local file. A finite source (a local file, an HTTP
file whose duration FFmpeg knows such as a podcast episode, an HLS VOD playlist with #EXT-X-ENDLIST) is played at
real time, as a listener hears it; a live one (Icecast, an HLS playlist without #EXT-X-ENDLIST) is captioned as it
arrives. --transcribe_whole reads a finite source at once and transcribes it like the app's File tab instead.

Committed text is printed as it is committed; the subtitle file (.vtt or .srt) is rewritten after every step
(atomically). Warnings (audio dropped because the model is too slow, transcriptions discarded by the guards) go to
stderr with the lag. The last line on stderr says how it ended. Exit status: 0 when the source ended (or Ctrl-C),
1 when it failed, 3 when it ended but audio was dropped because the model fell behind.
"""

import argparse
import logging
import sys
from dataclasses import fields

import transformers

from .args import add_model_arguments
from .backends.base import ModelFormatError
from .backends.load import load_backend
from .data.audio import SAMPLING_RATE
from .inference.audio_input import AudioInputError, AudioSource
from .inference.live import caption_live, dropped_audio
from .inference.long_audio import transcribe_long
from .inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings
from .inference.subtitles import Cue, cues_from_words, ordered, write_subtitles
from .inference.vad import VoiceActivity

EXIT_AUDIO_DROPPED = 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m whisper_finetuning.live_captions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, "checkpoint folder, LoRA adapter, CTranslate2 export (run by faster-whisper) or Hub id",
                        "language code (e.g. sv); default: detected from the first speech")
    parser.add_argument("--source", required=True, help="stream URL (HTTP/Icecast, HLS .m3u8) or audio file")
    parser.add_argument("--task", default="transcribe", choices=["transcribe", "translate"], help="Whisper's task")
    parser.add_argument("--prompt", default="", help="names, domain words or a spelling the model reads before "
                        "every window, ahead of the captions so far (its last 100 tokens)")
    parser.add_argument("--output", default="captions.vtt", help="rolling subtitle file, .vtt or .srt")
    parser.add_argument("--realtime", choices=["auto", "true", "false"], default="auto",
                        help="play the source at real time (auto: finite sources (files, HTTP files with a known "
                        "duration, HLS VOD playlists) yes, live streams as they arrive)")
    parser.add_argument("--transcribe_whole", action="store_true",
                        help="read a finite source at once and transcribe it like the app's File tab (long-form "
                        "decoding), instead of captioning it as it plays; live streams are refused")
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
    if args.transcribe_whole and args.realtime != "auto":
        raise SystemExit("error: --transcribe_whole reads the source as fast as it comes; leave out --realtime")
    try:
        settings = StreamSettings(**{f.name: getattr(args, f.name) for f in fields(StreamSettings)})
        source = AudioSource(args.source, realtime={"auto": None, "true": True, "false": False}[args.realtime],
                             read_timeout=args.stall_seconds)
        loaded = load_backend(args.model_name_or_path, dtype=args.dtype)
        windows = None if args.transcribe_whole else ModelWindows(loaded, args.language, args.task,
                                                                  settings.encoder_seconds, args.prompt)
    except (ModelFormatError, AudioInputError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    if args.transcribe_whole:
        return transcribe_whole(source, loaded, args)
    transcriber = StreamingTranscriber(windows, settings, vad=VoiceActivity())
    failure, described = None, False
    try:
        for update in caption_live(source, transcriber, args.source, args.stall_seconds):
            if not described:  # the source is open: say how it is read
                print(f"[source] {args.source}: {source.describe()}", file=sys.stderr, flush=True)
                described = True
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
    summary = (f"{transcriber.audio_time:.1f} s of audio, {len(transcriber.committed)} words, "
               f"{len(transcriber.rejections)} transcriptions discarded; subtitles in {args.output}")
    dropped = dropped_audio(transcriber)
    if dropped:  # never a plain "end of stream" when the captions have gaps
        hint = ("; the source is finite: --transcribe_whole transcribes it like a file"
                if source.info.get("finite") else "")
        print(f"\n[{failure or 'warning: audio dropped'}] {dropped}{hint}. {summary}", file=sys.stderr)
    else:
        print(f"\n[{failure or 'end of stream'}] {summary}", file=sys.stderr)
    if failure and failure != "stopped":
        return 1
    return EXIT_AUDIO_DROPPED if dropped else 0


def transcribe_whole(source: AudioSource, loaded, args) -> int:
    """--transcribe_whole: the whole of a finite source, transcribed like the app's File tab."""
    try:
        audio = source.read_whole()
        segments = transcribe_long(loaded, audio, loaded.generate_kwargs(args.language, args.task, args.prompt))
    except (AudioInputError, ValueError) as error:
        raise SystemExit(f"error: {error}")
    cues = ordered([Cue(s.start, s.end, s.text) for s in segments])
    for cue in cues:
        print(cue.text, flush=True)
    write_subtitles(args.output, cues)
    found = f"{len(cues)} segments" if cues else "no speech found"
    print(f"\n[end of source] transcribed whole: {len(audio) / SAMPLING_RATE:.1f} s of audio ({source.describe()}), "
          f"{found}; subtitles in {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
