"""Text for the page: a transcript with its timestamps, live captions with committed and partial words told apart,
and the lag line."""

import html

from ..backends.words import Word
from ..inference.audio_input import format_duration
from ..inference.streaming import Update
from ..inference.subtitles import Cue

CSS = """
.captions { font-size: 1.15em; line-height: 1.6; min-height: 4em; }
.captions .committed { color: inherit; }
.captions .partial { color: #888; font-style: italic; }
.lag { font-family: monospace; font-size: 0.9em; color: #555; }
.lag .warning, .status .warning { color: #b45309; }
"""


def clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes:02d}:{secs:04.1f}"


def timed_transcript(cues: list[Cue]) -> str:
    """One line per cue: "[00:01.2 → 00:03.9] text"."""
    return "\n".join(f"[{clock(c.start)} → {clock(c.end)}] {c.text}" for c in cues)


def caption_html(committed: list[Word], partial: list[Word], keep_words: int = 300) -> str:
    """The newest `keep_words` committed words, then the partial words in grey italics."""
    shown = "".join(w.text for w in committed[-keep_words:]).strip()
    pending = "".join(w.text for w in partial)
    return (f'<div class="captions"><span class="committed">{html.escape(shown)}</span>'
            f'<span class="partial">{html.escape(pending)}</span></div>')


def transcript_html(cues: list[Cue]) -> str:
    """A whole transcript in the captions box, one timed line per cue (the Stream tab's "transcribe whole")."""
    lines = "<br>".join(html.escape(line) for line in timed_transcript(cues).splitlines())
    return f'<div class="captions"><span class="committed">{lines}</span></div>'


def lag_html(update: Update | None, warnings: list[str], state: str = "") -> str:
    """The lag figure (wall clock minus audio clock), the step and the audio time, and recent warnings."""
    parts = [state] if state else []
    if update is not None:
        parts.append(f"lag {update.lag:.1f} s · step {update.step:.1f} s · model {update.compute:.1f} s · "
                     f"audio {format_duration(update.audio_time)}")
    lines = [html.escape(" · ".join(parts))] + [f'<span class="warning">⚠ {html.escape(w)}</span>'
                                                for w in warnings[-3:]]
    return '<div class="lag">' + "<br>".join(lines) + "</div>"
