"""Whisper's known failure modes on live audio, checked on each hypothesis before it counts: repetition loops
("the the the ...", a phrase over and over) and text on silence or noise ("Thank you.", "you").

The thresholds are OpenAI's transcribe() defaults: a gzip compression ratio above 2.4 means repetitive text, and a
no-speech probability above 0.6 together with a mean log-probability below -1 means the model is guessing.
"""

import zlib
from dataclasses import dataclass

MAX_REPEATS = 4  # a phrase of 1-4 words said this many times in a row is a loop, not speech


@dataclass
class Guards:
    compression_ratio_threshold: float = 2.4
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0

    def rejection(self, transcript) -> str | None:
        """Why a WindowTranscript must be thrown away, or None when it may be used."""
        text = transcript.text
        if transcript.truncated:
            return "generation ran to its token limit (a repetition loop)"
        if compression_ratio(text) > self.compression_ratio_threshold:
            return f"repetitive text (compression ratio {compression_ratio(text):.1f})"
        if repeated_phrase(text):
            return f"a phrase repeated {MAX_REPEATS} or more times ({repeated_phrase(text)!r})"
        if transcript.no_speech_prob > self.no_speech_threshold and transcript.avg_logprob < self.logprob_threshold:
            return (f"no speech (no-speech probability {transcript.no_speech_prob:.2f}, "
                    f"mean log-probability {transcript.avg_logprob:.2f})")
        return None


def compression_ratio(text: str) -> float:
    encoded = text.encode("utf-8")
    return len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0


def repeated_phrase(text: str) -> str | None:
    """The first phrase of 1-4 words that occurs MAX_REPEATS times in a row (case and punctuation ignored)."""
    words = ["".join(c for c in word.casefold() if c.isalnum()) for word in text.split()]
    for size in range(1, 5):
        for start in range(len(words) - size * MAX_REPEATS + 1):
            phrase = words[start:start + size]
            if all(words[start + k * size:start + (k + 1) * size] == phrase for k in range(1, MAX_REPEATS)):
                return " ".join(phrase)
    return None
