"""Live captions of a browser's microphone. The page sends the recording in pieces (Gradio stream events, every
half second); each piece is queued, and a thread per recording runs the streaming transcriber on the queue, so a
slow step never holds up the page and the audio that arrives meanwhile is taken in by the next step."""

import logging
import queue
import threading
import time

import numpy as np

from ..data.audio import to_model_rate
from ..inference.audio_input import AudioInputError
from ..inference.live import EndOfStream, caption_live
from ..inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings, Update
from ..inference.vad import VoiceActivity

logger = logging.getLogger(__name__)

STALL_SECONDS = 30.0  # a page that stops sending (closed, disconnected) ends its session after this
SHORTFALL_AFTER_SECONDS = 5.0  # judge the audio the page sends against the wall clock after this long


class MicrophoneCaptions:
    def __init__(self, loaded, language: str | None, task: str, settings: StreamSettings, prompt: str = ""):
        self.pieces: queue.Queue = queue.Queue()
        windows = ModelWindows(loaded, language, task, settings.encoder_seconds, prompt)
        self.transcriber = StreamingTranscriber(windows, settings, vad=VoiceActivity())
        self.latest: Update | None = None
        self.warnings: list[str] = []
        self.error: str | None = None
        self.done = threading.Event()
        self.first_piece: float | None = None  # time.monotonic() when the page's first piece came
        self.received_seconds = 0.0
        self.thread = threading.Thread(target=self._run, name="microphone captions", daemon=True)
        self.thread.start()

    def feed(self, sample_rate: int, data: np.ndarray) -> None:
        """A piece as Gradio gives it: int16 samples, (samples,) or (samples, channels), at the browser's rate."""
        if self.first_piece is None:
            self.first_piece = time.monotonic()
        samples = np.asarray(data)
        self.received_seconds += len(samples) / int(sample_rate)
        if samples.dtype.kind == "i":
            samples = samples.astype(np.float32) / np.iinfo(samples.dtype).max
        self.pieces.put(to_model_rate(samples, int(sample_rate)))

    def shortfall(self) -> str | None:
        """A warning when the page sends less audio than real time. Gradio's microphone sends 0.1 s pieces and
        drops the pieces recorded while its stream waits on a busy server (gradio 6.31): the
        captions then miss words, which the page must say."""
        if self.first_piece is None or self.done.is_set():
            return None
        elapsed = time.monotonic() - self.first_piece
        if elapsed < SHORTFALL_AFTER_SECONDS or self.received_seconds >= 0.8 * elapsed:
            return None
        return (f"the browser sent {self.received_seconds:.0f} s of microphone audio in {elapsed:.0f} s: audio is "
                f"being lost on the way (the server is too busy to take it in); captions will miss words")

    def stop(self, timeout: float = 60.0) -> None:
        """The recording ended: transcribe what is left and commit everything."""
        self.pieces.put(EndOfStream)
        self.done.wait(timeout)

    def _queued(self):
        while (piece := self.pieces.get()) is not EndOfStream:
            yield piece

    def _run(self) -> None:
        try:
            for update in caption_live(self._queued(), self.transcriber, "the microphone", STALL_SECONDS):
                self.latest = update
                self.warnings += update.warnings
        except AudioInputError as error:
            self.error = str(error)
        except Exception as error:  # shown in the page; the details go to the server's log
            logger.exception("microphone captions failed")
            self.error = f"captioning failed: {error}"
        finally:
            self.done.set()
