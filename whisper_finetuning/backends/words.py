"""The words of one window of audio (up to 30 s) with start and end times, as both backends' window transcribers
return them (transformers_backend.WordTranscriber, ctranslate2_backend.CT2WordTranscriber), and the clipping of the
words next to a pause that both apply.
"""

from dataclasses import dataclass

import numpy as np

WINDOW_SECONDS = 30.0
TOKENS_PER_SECOND_LIMIT = 8  # speech is ~3-4 tokens a second; more than this is a repetition loop


@dataclass
class Word:
    text: str  # as decoded, with its leading space and punctuation
    start: float  # seconds
    end: float

    def shifted(self, offset: float) -> "Word":
        return Word(self.text, round(self.start + offset, 3), round(self.end + offset, 3))


@dataclass
class WindowTranscript:
    words: list[Word]
    language: str  # Whisper code, forced or detected
    no_speech_prob: float  # probability of <|nospeech|> at the start of the transcript
    avg_logprob: float  # mean log-probability of the text tokens and the end token
    truncated: bool = False  # generation stopped at its token limit (more than 8 tokens a second: a loop)

    @property
    def text(self) -> str:
        return "".join(word.text for word in self.words).strip()


SENTENCE_END = ".。!！?？"


def clip_long_words(words: list[Word]) -> list[Word]:
    """DTW gives a pause to the word next to it: the last word of a sentence ends when the next one starts, the
    first word after a pause starts where the pause does. As OpenAI's add_word_timestamps, cut such words to twice
    the median word duration (at most 1.4 s): a sentence's last word at its end, a first word at its start."""
    durations = [w.end - w.start for w in words if w.end > w.start]
    if not durations:
        return words
    longest = 2 * min(0.7, float(np.median(durations)))
    clipped = []
    for index, word in enumerate(words):
        start, end = word.start, word.end
        if end - start > longest and word.text.rstrip()[-1:] in SENTENCE_END:
            end = start + longest
        elif end - start > longest and (index == 0 or words[index - 1].text.rstrip()[-1:] in SENTENCE_END):
            start = end - longest
        clipped.append(Word(word.text, round(start, 3), round(end, 3)))
    return clipped
