"""SRT and WebVTT output, read back with independent parsers (srt, webvtt-py)."""

import io

import numpy as np
import pytest
import srt
import webvtt

from whisper_finetuning.backends.words import Word
from whisper_finetuning.inference.subtitles import (Cue, cues_from_words, ordered, start_on_speech, to_srt, to_vtt,
                                                write_subtitles)


def words(*items):
    return [Word(text, start, end) for text, start, end in items]


def test_cues_end_at_sentences_and_pauses_and_stay_short():
    cues = cues_from_words(words((" Hello", 0.0, 0.4), (" there.", 0.5, 0.9), (" How", 1.0, 1.2),
                                 (" are", 1.3, 1.5), (" you", 3.0, 3.2), (" today?", 3.3, 3.8)))
    assert [c.text for c in cues] == ["Hello there.", "How are", "you today?"]
    many = cues_from_words([Word(" word", k * 0.3, k * 0.3 + 0.25) for k in range(60)])
    assert all(len(c.text) <= 84 and c.end - c.start <= 6.0 for c in many)
    assert " ".join(c.text for c in many).split() == ["word"] * 60


def test_cues_never_overlap_or_go_back_in_time():
    cues = ordered([Cue(1.0, 2.5, "a"), Cue(2.0, 2.1, "b"), Cue(1.5, 3.0, "c")])
    for previous, cue in zip(cues, cues[1:]):
        assert cue.start >= previous.end and cue.end > cue.start


def test_srt_parses_back_with_hours_and_milliseconds():
    cues = [Cue(0.0, 1.5, "First line."), Cue(3725.25, 3727.125, "An hour later.")]
    parsed = list(srt.parse(to_srt(cues)))
    assert [p.content for p in parsed] == ["First line.", "An hour later."]
    assert [p.index for p in parsed] == [1, 2]
    assert parsed[1].start.total_seconds() == 3725.25 and parsed[1].end.total_seconds() == 3727.125
    assert "01:02:05,250 --> 01:02:07,125" in to_srt(cues)


def test_vtt_parses_back_and_has_no_arrow_in_text():
    cues = [Cue(0.5, 2.0, "Left --> right"), Cue(2.0, 4.25, "Next.")]
    text = to_vtt(cues)
    assert text.startswith("WEBVTT\n\n")
    parsed = webvtt.from_buffer(io.StringIO(text))
    assert [c.text for c in parsed] == ["Left -> right", "Next."]
    assert [(c.start, c.end) for c in parsed] == [("00:00:00.500", "00:00:02.000"), ("00:00:02.000", "00:00:04.250")]


def test_write_subtitles_by_suffix(tmp_path):
    cues = [Cue(0.0, 1.0, "Hi.")]
    write_subtitles(tmp_path / "a.srt", cues)
    write_subtitles(tmp_path / "a.vtt", cues)
    assert (tmp_path / "a.srt").read_text() == to_srt(cues)
    assert (tmp_path / "a.vtt").read_text() == to_vtt(cues)
    with pytest.raises(ValueError, match=".srt or .vtt"):
        write_subtitles(tmp_path / "a.txt", cues)


def test_a_cue_starts_where_the_voice_starts_inside_it():
    # 32 ms windows: speech from window 100 (3.2 s) to 150, and from 400 on
    speech = np.zeros(500, bool)
    speech[100:150] = speech[400:] = True
    cues = [Cue(0.0, 5.0, "early by seconds"), Cue(12.7, 14.0, "close enough"), Cue(6.0, 8.0, "no voice inside")]
    moved = start_on_speech(cues, speech, window_seconds=0.032)
    assert moved[0] == Cue(3.2, 5.0, "early by seconds")
    assert moved[1] == cues[1]  # 12.8 - 12.7 < 0.3 s: left alone
    assert moved[2] == cues[2]
    assert start_on_speech([Cue(0.0, 3.3, "x")], speech, 0.032)[0].start == pytest.approx(3.1)  # keeps 0.2 s


def test_cue_starts_follow_real_speech_after_silence():
    """eSpeak sentences after pauses, Silero VAD: cues that start seconds early are moved onto the voice."""
    from spoken_audio import spoken_recording

    from whisper_finetuning.inference.vad import VoiceActivity

    audio, timeline = spoken_recording(pause=4.0, lead=3.0)
    speech = VoiceActivity()(audio)
    early = [Cue(round(max(0.0, t["start"] - 2.5), 3), t["end"], t["text"]) for t in timeline]
    moved = start_on_speech(early, speech)
    errors = [abs(cue.start - t["start"]) for cue, t in zip(moved, timeline)]
    assert max(errors) < 0.15, errors
