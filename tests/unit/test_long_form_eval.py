"""The long-form skills measurement (evaluation/long_form.py): recordings joined from clips with known speech starts,
cues matched to utterances, cue-start errors, cues outside the audio, words on silence and noise."""

import numpy as np
import pytest

from normalizers import get_normalizer
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.evaluation.long_form import (Cue, Utterance, join_clips, match_cues, quiet_recordings,
                                                     recordings_from_clips, score_recordings)


def clip(lead: float, speech: float, tail: float) -> np.ndarray:
    """A clip with `lead` s of silence, `speech` s of a tone standing in for speech, `tail` s of silence."""
    tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(int(speech * SAMPLING_RATE)) / SAMPLING_RATE)
    return np.concatenate([np.zeros(int(lead * SAMPLING_RATE)), tone,
                           np.zeros(int(tail * SAMPLING_RATE))]).astype(np.float32)


def test_joined_clips_know_where_each_utterance_starts():
    recording = join_clips("r", [(clip(0.4, 1.0, 0.2), "ett"), (clip(0.1, 2.0, 0.5), "två")], [0.5, 8.0])
    first, second = recording.utterances
    assert first.start == pytest.approx(0.5 + 0.4, abs=0.021) and first.end == pytest.approx(1.9, abs=0.021)
    # 0.5 + 1.6 (the first clip) + 8.0 (the pause) + 0.1 (the second clip's own silence)
    assert second.start == pytest.approx(10.2, abs=0.021) and second.text == "två"
    assert recording.duration == pytest.approx(0.5 + 1.6 + 8.0 + 2.6, abs=1e-3)
    with pytest.raises(ValueError, match="one pause per clip"):
        join_clips("r", [(clip(0, 1, 0), "a")], [])


def test_recordings_group_consecutive_clips_with_one_long_pause_each():
    clips = [(clip(0.2, 1.0, 0.2), f"ord {i}") for i in range(10)]
    recordings = recordings_from_clips(clips, per_recording=4, seed=1, long_pause=8.0)
    assert [len(r.utterances) for r in recordings] == [4, 4, 2]
    assert [u.text for u in recordings[1].utterances] == ["ord 4", "ord 5", "ord 6", "ord 7"]
    gaps = np.diff([u.start for u in recordings[0].utterances])
    assert gaps[1] == pytest.approx(1.4 + 8.0, abs=0.03)  # the long pause sits before the middle clip
    assert recordings_from_clips(clips, 4, seed=1)[0].audio.tobytes() == recordings[0].audio.tobytes()


def test_each_utterance_takes_the_cue_that_overlaps_it_most():
    utterances = [Utterance(1.0, 3.0, "a"), Utterance(10.0, 12.0, "b"), Utterance(20.0, 21.0, "c")]
    cues = [Cue(0.9, 2.5, "a"), Cue(2.5, 11.0, "a b"), Cue(11.5, 12.5, "b")]
    assert match_cues(utterances, cues) == [cues[0], cues[1], None]
    assert match_cues([Utterance(1.0, 3.0, "a")], [Cue(0.0, 2.0, "x"), Cue(2.0, 4.0, "y")])[0].text == "x"  # a tie


def test_scores_of_a_perfect_and_of_a_drifting_model():
    recording = join_clips("r", [(clip(0.3, 1.0, 0.2), "hej på dig"), (clip(0.3, 1.0, 0.2), "och du")], [0.5, 8.0])
    truth = [Cue(u.start, u.end, u.text) for u in recording.utterances]
    normalize = get_normalizer("sv")
    perfect = score_recordings([recording], [truth], normalize, {"silence": [], "noise": []}).summary()
    assert perfect == {"long_form_wer": 0.0, "cue_start_error_median_s": 0.0, "cue_start_error_p90_s": 0.0,
                       "utterances_missed": 0, "cues_outside_audio": 0, "words_on_silence": 0, "words_on_noise": 0}
    # The failure of fine-tunes: after the long pause the cue starts at the window edge, seconds early; a cue runs
    # past the end; words are made up on silence and noise.
    second = recording.utterances[1]
    drifting = [truth[0], Cue(second.start - 3.0, recording.duration + 2.0, "och du")]
    scores = score_recordings([recording], [drifting], normalize,
                              {"silence": [Cue(0.0, 2.0, "Tack för att du tittade.")], "noise": [Cue(0, 1, "you")]})
    summary = scores.summary()
    assert sorted(scores.cue_start_errors) == pytest.approx([0.0, 3.0])
    assert summary["cue_start_error_p90_s"] == pytest.approx(2.7) and summary["cues_outside_audio"] == 1
    assert (summary["words_on_silence"], summary["words_on_noise"]) == (5, 1)
    missed = score_recordings([recording], [[truth[0]]], normalize)
    assert missed.missed_utterances == 1 and missed.summary()["long_form_wer"] == pytest.approx(40.0)


def test_the_quiet_recordings_hold_no_speech():
    silence, noise = quiet_recordings(seconds=5.0)
    assert silence.duration == noise.duration == 5.0 and not silence.utterances and not noise.utterances
    assert not silence.audio.any() and 0 < float(np.sqrt(np.mean(noise.audio ** 2))) < 0.05
