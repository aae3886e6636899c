"""What the page's events do. Every handler answers bad input with a message in the page (the status line), never
a stack trace: the details of unexpected failures go to the server's log."""

import html
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..data.audio import SAMPLING_RATE
from ..inference.audio_input import AudioInputError, AudioSource, format_duration, read_audio_file
from ..inference.live import caption_live, dropped_audio
from ..inference.long_audio import transcribe_long
from ..inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings
from ..inference.subtitles import Cue, cues_from_words, ordered, write_subtitles
from ..inference.vad import VoiceActivity
from .captions import caption_html, lag_html, timed_transcript, transcript_html
from .sessions import MicrophoneCaptions

logger = logging.getLogger(__name__)

DETECT = "detect"


def status(message: str, warning: bool = False) -> str:
    css = "status warning" if warning else "status"
    return f'<div class="{css}">{html.escape(message)}</div>'


@dataclass
class Handlers:
    loaded: object  # a backends.base.Backend
    stream_settings: StreamSettings
    max_audio_seconds: float
    stall_seconds: float = 20.0

    def _language(self, choice: str | None) -> str | None:
        return None if choice in (None, "", DETECT) else choice

    def _subtitle_files(self, cues: list[Cue], stem: str) -> tuple[str, str]:
        folder = Path(tempfile.mkdtemp(prefix="captions-"))
        srt, vtt = folder / f"{stem}.srt", folder / f"{stem}.vtt"
        write_subtitles(srt, cues)
        write_subtitles(vtt, cues)
        return str(srt), str(vtt)

    # -- a file or a recording -----------------------------------------------------------------------------------
    def transcribe_file(self, path: str | None, language: str | None, task: str, prompt: str = ""):
        """Generator: a status line first, then (transcript, srt, vtt, status). `prompt`: text the model reads first
        (Backend.generate_kwargs)."""
        if not path:
            yield "", None, None, status("Upload an audio file (or record one) first.", warning=True)
            return
        name = Path(path).name
        try:
            audio = read_audio_file(path, max_seconds=self.max_audio_seconds)
        except AudioInputError as error:
            limit = (" For longer recordings raise --max_audio_minutes, or caption the file as a stream "
                     "(python -m whisper_finetuning.live_captions --source FILE).") if "limit" in str(error) else ""
            yield "", None, None, status(f"{error}.{limit}", warning=True)
            return
        duration = len(audio) / SAMPLING_RATE
        yield "", None, None, status(f"Transcribing {format_duration(duration)} of audio from {name} …")
        began = time.perf_counter()
        cues, problem = self._transcribe(audio, name, language, task, prompt or "")
        if problem:
            yield "", None, None, status(problem, warning=True)
            return
        seconds = time.perf_counter() - began
        srt, vtt = self._subtitle_files(cues, Path(name).stem or "transcript")
        yield (timed_transcript(cues), srt, vtt,
               status(f"Transcribed {format_duration(duration)} of {name} in {seconds:.1f} s."))

    def _transcribe(self, audio, name: str, language: str | None, task: str,
                    prompt: str = "") -> tuple[list[Cue], str | None]:
        """A whole recording's cues by long-form decoding, and None; or no cues and what went wrong."""
        try:
            generate_kwargs = self.loaded.generate_kwargs(self._language(language), task, prompt)
            segments = transcribe_long(self.loaded, audio, generate_kwargs)
        except ValueError as error:  # e.g. another language on an English-only model
            return [], str(error)
        except Exception as error:
            logger.exception("transcribing %s failed", name)
            return [], f"Transcription failed: {error}"
        cues = ordered([Cue(s.start, s.end, s.text) for s in segments])
        if not cues:
            return [], f"No speech found in {name} ({format_duration(len(audio) / SAMPLING_RATE)})."
        return cues, None

    # -- live microphone -----------------------------------------------------------------------------------------
    def microphone_piece(self, piece, session: MicrophoneCaptions | None, language: str | None, task: str,
                         prompt: str = ""):
        """`prompt`: read by the model before every window of this recording (taken when it starts)."""
        if piece is None:
            return session, *self._microphone_view(session)
        if session is None or session.done.is_set():
            session = MicrophoneCaptions(self.loaded, self._language(language), task, self.stream_settings,
                                         prompt or "")
        session.feed(*piece)
        return session, *self._microphone_view(session)

    def microphone_stop(self, session: MicrophoneCaptions | None):
        if session is None:
            return None, *self._microphone_view(None), None, None
        session.stop()
        captions, lag = self._microphone_view(session)
        cues = cues_from_words(session.transcriber.committed)
        files = self._subtitle_files(cues, "microphone") if cues else (None, None)
        return None, captions, lag, *files

    def _microphone_view(self, session: MicrophoneCaptions | None) -> tuple[str, str]:
        if session is None:
            return caption_html([], []), lag_html(None, [], "waiting for the microphone")
        partial = session.latest.partial if session.latest else []
        state = f"error: {session.error}" if session.error else ("stopped" if session.done.is_set() else "live")
        shortfall = session.shortfall()
        return (caption_html(session.transcriber.committed, partial),
                lag_html(session.latest, session.warnings + ([shortfall] if shortfall else []), state))

    # -- a stream URL --------------------------------------------------------------------------------------------
    def caption_stream(self, source: str, language: str | None, task: str, whole: bool = False, prompt: str = ""):
        """Generator of (captions, lag line, status, srt, vtt) while the stream plays. A finite source (a file, an
        HTTP file, an HLS VOD playlist) plays at real time; with `whole` it is read at once and transcribed like a
        file instead. `prompt`: names or domain words the model reads first (before every window when live)."""
        source = (source or "").strip()
        empty = caption_html([], [])
        if not source:
            yield empty, "", status("Enter a stream URL (HTTP/Icecast or HLS .m3u8) or a file path.", True), None, None
            return
        try:
            audio_source = AudioSource(source, read_timeout=self.stall_seconds)
            transcriber = None if whole else StreamingTranscriber(
                ModelWindows(self.loaded, self._language(language), task, self.stream_settings.encoder_seconds,
                             prompt or ""),
                self.stream_settings, vad=VoiceActivity())
        except (AudioInputError, ValueError) as error:
            yield empty, "", status(str(error), warning=True), None, None
            return
        if whole:
            yield from self._transcribe_source_whole(audio_source, language, task, prompt or "")
            return
        yield empty, lag_html(None, [], "connecting"), status(f"Opening {source} …"), None, None
        warnings, files, saved_words, last = [], (None, None), 0, None
        try:
            for update in caption_live(audio_source, transcriber, source, self.stall_seconds):
                warnings, last = warnings + update.warnings, update
                if len(transcriber.committed) != saved_words:  # the rolling subtitle files
                    saved_words = len(transcriber.committed)
                    files = self._subtitle_files(cues_from_words(transcriber.committed), "stream")
                yield (caption_html(transcriber.committed, update.partial), lag_html(update, warnings, "live"),
                       status(f"Captioning {source} ({audio_source.describe()})"), *files)
            ended, warning = (f"The stream ended after {format_duration(transcriber.audio_time)} "
                              f"({audio_source.describe()})"), False
        except AudioInputError as error:
            ended, warning = str(error), True
        except Exception as error:
            logger.exception("captioning %s failed", source)
            ended, warning = f"Captioning failed: {error}", True
        dropped = dropped_audio(transcriber)
        if dropped:  # never a plain "ended" when the captions have gaps
            ended, warning = f"{ended}; {dropped}", True
            if audio_source.info.get("finite"):
                ended += ('. This source is finite: tick "Transcribe a finite source whole" to transcribe it like '
                          'the File tab')
        if len(transcriber.committed) != saved_words:
            files = self._subtitle_files(cues_from_words(transcriber.committed), "stream")
        yield (caption_html(transcriber.committed, []), lag_html(last, warnings, "stopped"),
               status(f"{ended}.", warning), *files)

    def _transcribe_source_whole(self, audio_source: AudioSource, language: str | None, task: str, prompt: str):
        """A finite source read as fast as it comes and transcribed like the File tab's files (live sources are
        refused: they have no end)."""
        source, empty = audio_source.source, caption_html([], [])
        yield empty, "", status(f"Reading {source} …"), None, None
        try:
            audio = audio_source.read_whole(self.max_audio_seconds)
        except AudioInputError as error:  # a live source, too long, unreachable, not audio
            yield empty, "", status(f"{error}.", warning=True), None, None
            return
        duration = len(audio) / SAMPLING_RATE
        yield empty, "", status(f"Transcribing {format_duration(duration)} of {source} whole "
                                f"({audio_source.describe()}) …"), None, None
        began = time.perf_counter()
        cues, problem = self._transcribe(audio, source, language, task, prompt)
        if problem:
            yield empty, "", status(problem, warning=True), None, None
            return
        seconds = time.perf_counter() - began
        srt, vtt = self._subtitle_files(cues, "stream")
        yield (transcript_html(cues), "", status(f"Transcribed {format_duration(duration)} of {source} whole in "
                                                 f"{seconds:.1f} s ({audio_source.describe()})."), srt, vtt)
