"""LocalAgreement-n (Macháček et al. 2023, whisper_streaming): the growing audio buffer is transcribed again and
again; a word is committed once the last n transcriptions agree on it, i.e. it is in the longest common prefix of
their not yet committed words. A word cut by the end of the buffer changes from one transcription to the next, so
it waits until the audio after it has arrived; nothing is ever cut at a fixed border.

Words carry absolute times (seconds since the stream began). A transcription of the buffer repeats the words
already committed whose audio is still in the buffer; those are recognised by time and, where the times moved, by
matching the committed words' tail (up to 5 words) against the new hypothesis's head, as whisper_streaming does.
Words match when they are equal after case folding and without punctuation ("dog" and "Dog." agree); the newest
transcription's spelling is the one committed.
"""

from collections import deque

from ..backends.words import Word

TIME_TOLERANCE = 0.1  # seconds: a word starting this much before the last committed end is not new
OVERLAP_WINDOW = 1.0  # only a hypothesis that starts this close to the last committed end can repeat its tail
MAX_OVERLAP_WORDS = 5


def word_key(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum())


class LocalAgreement:
    def __init__(self, n: int = 2):
        if n < 2:
            raise ValueError(f"LocalAgreement needs n >= 2 transcriptions to agree, got {n}")
        self.n = n
        self.committed: list[Word] = []
        self.previous: deque[list[Word]] = deque(maxlen=n - 1)  # earlier hypotheses, committed words removed

    @property
    def last_committed_end(self) -> float:
        return self.committed[-1].end if self.committed else 0.0

    @property
    def pending(self) -> list[Word]:
        """The newest hypothesis's words that are not committed yet (the partial text)."""
        return list(self.previous[-1]) if self.previous else []

    def insert(self, hypothesis: list[Word]) -> list[Word]:
        """Add a transcription of the buffer (absolute times); returns the words committed by it."""
        new = self._unseen(hypothesis)
        history = [*self.previous, new]
        if len(history) < self.n:
            self.previous.append(new)
            return []
        agreed = 0
        while all(agreed < len(h) for h in history) and len({word_key(h[agreed].text) for h in history}) == 1:
            agreed += 1
        commit = new[:agreed]
        self.committed += commit
        self.previous = deque((h[agreed:] for h in history[1:]), maxlen=self.n - 1)
        return commit

    def flush(self) -> list[Word]:
        """Commit the newest hypothesis as it is (the speech ended, or the stream did)."""
        commit = self.pending
        self.committed += commit
        self.previous.clear()
        return commit

    def forget_pending(self) -> None:
        """Drop the hypotheses (the audio they came from is gone: dropped, or trimmed without agreement)."""
        self.previous.clear()

    def _unseen(self, hypothesis: list[Word]) -> list[Word]:
        if not self.committed:
            return list(hypothesis)
        new = [w for w in hypothesis if w.start > self.last_committed_end - TIME_TOLERANCE]
        if new and abs(new[0].start - self.last_committed_end) < OVERLAP_WINDOW:
            tail = [word_key(w.text) for w in self.committed[-MAX_OVERLAP_WORDS:]]
            head = [word_key(w.text) for w in new]
            for size in range(min(len(tail), len(head)), 0, -1):
                if tail[-size:] == head[:size]:
                    return new[size:]
        return new
