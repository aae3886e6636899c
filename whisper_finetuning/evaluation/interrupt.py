"""Stop an evaluation cleanly on SIGTERM (a scheduler's pre-emption, `kill`) or SIGINT (Ctrl-C).

    with StopOnSignal() as stop:
        transcriber.stop = stop.event   # the transcriber finishes its current batch (or 30 s window), then stops
        ...
    if stop.received: ...               # write what was done, marked incomplete

A second signal stops at once (KeyboardInterrupt). The previous handlers are back when the block ends.
"""

import logging
import signal
import threading

logger = logging.getLogger(__name__)


class StopOnSignal:
    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = signals
        self.event = threading.Event()
        self.received: signal.Signals | None = None
        self.previous_handlers = {}

    def __enter__(self) -> "StopOnSignal":
        self.previous_handlers = {signum: signal.signal(signum, self._handle) for signum in self.signals}
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous_handlers.items():
            signal.signal(signum, handler)
        self.previous_handlers = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum)
        logger.warning("Received %s: stopping after the current batch and writing the results so far (send it "
                       "again to stop at once)", self.received.name)
        self.event.set()
