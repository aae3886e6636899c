"""The streaming transcriber's logic without a model: LocalAgreement, buffer trimming, prompts, voice-activity
gating, lag and dropping.

The recogniser here reads a "word track": audio whose samples hold a word's number while the word is spoken and 0 in
pauses. Like Whisper on a real buffer it hears only whole words correctly; a word cut by either edge of the window
comes out as a fragment of itself, and a window without words comes out as " Thank you." (Whisper's favourite text
on silence), so the tests see what the policies make of a recogniser's real failure modes.
"""

import subprocess
import sys

import numpy as np
import pytest

from whisper_finetuning.backends.words import WindowTranscript, Word
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.inference.agreement import LocalAgreement
from whisper_finetuning.inference.guards import Guards
from whisper_finetuning.inference.replay import VirtualClock, replay
from whisper_finetuning.inference.streaming import StreamingTranscriber, StreamSettings
from whisper_finetuning.inference.vad import WINDOW

SR = SAMPLING_RATE


def word_track(timeline: list[tuple[str, float, float]], duration: float) -> tuple[np.ndarray, list[str]]:
    audio = np.zeros(int(duration * SR), dtype=np.float32)
    for number, (_, start, end) in enumerate(timeline, start=1):
        audio[int(start * SR):int(end * SR)] = number / 1000
    return audio, [text for text, _, _ in timeline]


class TrackRecogniser:
    def __init__(self, vocabulary: list[str], clock: VirtualClock | None = None, compute_seconds: float = 0.0):
        self.vocabulary = vocabulary
        self.clock = clock
        self.compute_seconds = compute_seconds
        self.prompts, self.calls = [], 0

    def __call__(self, audio: np.ndarray, prompt: str) -> WindowTranscript:
        self.calls += 1
        self.prompts.append(prompt)
        if self.clock is not None:  # the model's time passes on the replay's clock
            self.clock.skip_to(self.clock.now() + self.compute_seconds)
        numbers = np.round(audio * 1000).astype(int)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], numbers, [0]])))
        words = []
        for start, end in zip(edges[:-1], edges[1:]):
            number = numbers[start]
            if number == 0:
                continue
            text = self.vocabulary[number - 1]
            if start == 0:
                text = text[len(text) // 2:]  # its beginning is before the window
            elif end == len(numbers):
                text = text[:len(text) // 2]  # its end has not arrived
            words.append(Word(" " + text, start / SR, end / SR))
        if not words:
            words = [Word(" Thank", 0.0, 0.5), Word(" you.", 0.5, 1.0)]
        return WindowTranscript(words, "en", no_speech_prob=0.1, avg_logprob=-0.2)


def stream(audio, recogniser, settings=None, vad=None, clock=None):
    clock = clock or VirtualClock()
    transcriber = StreamingTranscriber(recogniser, settings or StreamSettings(), vad=vad, clock=clock.now)
    updates = replay(audio, transcriber, clock)
    return transcriber, updates


def committed_text(transcriber) -> list[str]:
    return [w.text.strip() for w in transcriber.committed]


def test_agreement_recovers_the_word_that_fixed_five_second_chunks_cut():
    timeline = [("the", 0.5, 1.0), ("quick", 1.2, 1.9), ("elephant", 4.4, 5.6), ("walks", 6.0, 6.6),
                ("home", 6.8, 7.4)]
    audio, vocabulary = word_track(timeline, 9.0)
    recogniser = TrackRecogniser(vocabulary)

    chunked = []  # the lab team's fixed 5 s chunks, each transcribed on its own
    for start in range(0, len(audio), 5 * SR):
        chunked += [w.text.strip() for w in recogniser(audio[start:start + 5 * SR], "").words]
    assert "elephant" not in chunked and "elep" in chunked and "hant" in chunked

    transcriber, _ = stream(audio, TrackRecogniser(vocabulary), StreamSettings(min_step=1.0))
    assert committed_text(transcriber) == vocabulary
    ends = [w.end for w in transcriber.committed]
    assert ends == sorted(ends)


def test_a_word_is_committed_only_when_two_transcriptions_agree():
    agreement = LocalAgreement(2)
    assert agreement.insert([Word(" I", 0.0, 0.2), Word(" sa", 0.3, 0.5)]) == []
    assert [w.text for w in agreement.pending] == [" I", " sa"]
    committed = agreement.insert([Word(" I", 0.0, 0.2), Word(" saw", 0.3, 0.6), Word(" a", 0.7, 0.8)])
    assert [w.text for w in committed] == [" I"]
    committed = agreement.insert([Word(" I", 0.0, 0.2), Word(" Saw,", 0.3, 0.6), Word(" a", 0.7, 0.8),
                                  Word(" cat.", 0.9, 1.3)])
    assert [w.text for w in committed] == [" Saw,", " a"]  # case and punctuation do not block agreement
    assert [w.text for w in agreement.flush()] == [" cat."]
    assert [w.text for w in agreement.committed] == [" I", " Saw,", " a", " cat."]


def test_words_repeated_with_shifted_times_are_not_committed_twice():
    agreement = LocalAgreement(2)
    first = [Word(" one", 0.0, 0.4), Word(" two", 0.5, 0.9)]
    agreement.insert(first)
    agreement.insert(first + [Word(" three", 1.0, 1.4)])
    # The same audio again: the alignment moved "two" earlier than the committed end; it must not come back.
    agreement.insert([Word(" one", 0.0, 0.3), Word(" two", 0.35, 0.8), Word(" three", 1.0, 1.4)])
    agreement.insert([Word(" one", 0.0, 0.3), Word(" two", 0.35, 0.8), Word(" three", 1.0, 1.4)])
    assert [w.text for w in agreement.committed] == [" one", " two", " three"]


def test_long_speech_keeps_the_buffer_short_and_feeds_committed_text_as_the_prompt():
    # 40 s of words without a pause long enough to end an utterance.
    timeline = [(f"word{k}.", 0.2 + k * 0.8, 0.2 + k * 0.8 + 0.6) for k in range(50)]
    audio, vocabulary = word_track(timeline, 41.0)
    recogniser = TrackRecogniser(vocabulary)
    settings = StreamSettings(min_step=1.0, trim_after=8.0, max_buffer=12.0)
    transcriber, updates = stream(audio, recogniser, settings)
    assert committed_text(transcriber) == vocabulary
    assert max(u.buffer for u in updates) <= settings.max_buffer
    assert max(u.buffer for u in updates[len(updates) // 2:]) < settings.trim_after + 2 * settings.min_step
    late_prompt = recogniser.prompts[-1]
    assert late_prompt.endswith("word") is False and "word20." in late_prompt  # text from before the buffer
    assert len(late_prompt) <= settings.prompt_chars


class TrackVoiceActivity:
    """Voice activity of a word track: a window is speech when any of its samples is a word."""

    def __init__(self):
        self.leftover = np.zeros(0, dtype=np.float32)

    def reset(self):
        self.leftover = np.zeros(0, dtype=np.float32)

    def __call__(self, samples):
        audio = np.concatenate([self.leftover, samples])
        count = len(audio) // WINDOW
        self.leftover = audio[count * WINDOW:]
        return np.abs(audio[:count * WINDOW]).reshape(count, WINDOW).max(axis=1) > 0


def test_silence_is_not_transcribed_and_an_utterance_is_committed_when_it_ends():
    timeline = [("hello", 1.0, 1.6), ("there", 1.8, 2.4), ("again", 14.0, 14.6)]
    audio, vocabulary = word_track(timeline, 20.0)

    without_vad, _ = stream(audio, TrackRecogniser(vocabulary))
    assert "Thank" in committed_text(without_vad)  # what gating prevents

    recogniser = TrackRecogniser(vocabulary)
    transcriber, updates = stream(audio, recogniser, vad=TrackVoiceActivity())
    assert committed_text(transcriber) == vocabulary
    assert all(not u.compute for u in updates if 5.0 < u.audio_time < 13.0)  # the model was idle in the pause
    there = next(u for u in updates if any(w.text == " there" for w in u.committed))
    assert there.audio_time <= 2.4 + StreamSettings().end_of_speech + 2 * StreamSettings().min_step


def test_a_slow_model_makes_the_step_grow_and_the_lag_stays_bounded():
    timeline = [(f"w{k}", 0.3 + k * 0.9, 0.9 + k * 0.9) for k in range(40)]
    audio, vocabulary = word_track(timeline, 37.0)
    clock = VirtualClock()
    transcriber, updates = stream(audio, TrackRecogniser(vocabulary, clock, compute_seconds=2.5),
                                  StreamSettings(min_step=1.0), clock=clock)
    steady = [u for u in updates[2:] if u.audio_time < 36.0]  # (the recording's end is a shorter step)
    assert min(u.step for u in steady) >= 2.4  # the audio that arrived while the model worked
    assert max(u.lag for u in steady) < 2.5 + 0.5 and transcriber.dropped_seconds == 0
    assert all(abs(u.compute - 2.5) < 0.5 for u in steady)
    assert committed_text(transcriber) == vocabulary


def test_a_model_slower_than_max_pending_drops_audio_with_a_warning():
    timeline = [(f"w{k}", 0.3 + k * 0.9, 0.9 + k * 0.9) for k in range(40)]
    audio, vocabulary = word_track(timeline, 37.0)
    clock = VirtualClock()
    settings = StreamSettings(min_step=1.0, max_pending=4.0)
    transcriber, updates = stream(audio, TrackRecogniser(vocabulary, clock, compute_seconds=6.0), settings,
                                  clock=clock)
    warnings = [w for u in updates for w in u.warnings if "fell behind" in w]
    assert warnings and transcriber.dropped_seconds > 0
    assert [w for u in updates for w in u.committed] == transcriber.committed  # (words committed at a drop too)
    assert max(u.lag for u in updates[:-1]) < 6.0 + 0.5  # dropping keeps the lag from growing
    ends = [w.end for w in transcriber.committed]
    assert ends == sorted(ends)


class DisagreeingRecogniser(TrackRecogniser):
    """Spells every word differently on each call (a model unsure of a long sentence), so nothing is agreed."""

    def __call__(self, audio: np.ndarray, prompt: str) -> WindowTranscript:
        self.longest = max(getattr(self, "longest", 0.0), len(audio) / SR)
        transcript = super().__call__(audio, prompt)
        transcript.words = [Word(f"{w.text}{self.calls}", w.start, w.end) for w in transcript.words]
        return transcript


def test_a_slow_model_without_agreement_never_gets_more_than_max_buffer():
    timeline = [(f"w{k}", 0.3 + k * 0.9, 0.9 + k * 0.9) for k in range(60)]
    audio, vocabulary = word_track(timeline, 55.0)
    clock = VirtualClock()
    settings = StreamSettings(min_step=1.0, max_pending=10.0)
    recogniser = DisagreeingRecogniser(vocabulary, clock, compute_seconds=7.5)  # steps of 1, 8.5, 16, 23.5, 31 s
    transcriber, updates = stream(audio, recogniser, settings, clock=clock)
    assert recogniser.longest <= settings.max_buffer  # (without the cap: 31 s, more than the model's window)
    assert any("outgrew" in w for u in updates for w in u.warnings)
    ends = [w.end for w in transcriber.committed]
    assert transcriber.committed and ends == sorted(ends)


def test_guards_reject_loops_and_text_on_noise_but_not_speech():
    guards = Guards()

    def transcript(text, no_speech=0.1, logprob=-0.3, truncated=False):
        words = [Word(" " + w, 0.0, 0.1) for w in text.split()]
        return WindowTranscript(words, "en", no_speech, logprob, truncated)

    assert guards.rejection(transcript("We walked along the river after dinner.")) is None
    assert "compression" in guards.rejection(transcript(" ".join(["the river"] * 20)))
    assert "repeated" in guards.rejection(transcript("so I said no no no no to him"))
    assert "no speech" in guards.rejection(transcript("Thank you.", no_speech=0.9, logprob=-1.5))
    assert guards.rejection(transcript("Thank you.", no_speech=0.9, logprob=-0.5)) is None  # OpenAI's rule: both
    assert "token limit" in guards.rejection(transcript("a b c", truncated=True))


def test_settings_refuse_a_buffer_longer_than_the_model_window():
    with pytest.raises(ValueError, match="max_buffer"):
        StreamSettings(max_buffer=31.0)
    with pytest.raises(ValueError, match="min_step"):
        StreamSettings(min_step=12.0, max_pending=10.0)
    with pytest.raises(ValueError, match="encoder_seconds"):
        StreamSettings(encoder_seconds=40.0)


def test_a_shortened_encoder_input_covers_the_buffer_and_two_seconds_of_padding():
    from whisper_finetuning.backends.ctranslate2_backend import encoder_frames

    seconds = 16000
    assert encoder_frames(int(7.5 * seconds), 30.0) == 3000  # the default: the model's whole window
    assert encoder_frames(int(7.5 * seconds), 10.0) == 1000  # a short buffer: the floor
    assert encoder_frames(int(12.3 * seconds), 10.0) == 1430  # a longer one: itself and 2 s of padding
    assert encoder_frames(int(29.0 * seconds), 10.0) == 3000  # never past the window
    assert encoder_frames(int(3.333 * seconds), 1.0) == 534  # 5.333 s = 533.3 frames: rounded up to an even count


def test_a_shortened_encoder_input_is_refused_for_a_transformers_model():
    from types import SimpleNamespace

    from whisper_finetuning.backends.transformers_backend import TransformersBackend
    from whisper_finetuning.inference.streaming import ModelWindows

    with pytest.raises(ValueError, match="needs a CTranslate2 export"):
        ModelWindows(TransformersBackend(SimpleNamespace(name_or_path="m"), None), "en", encoder_seconds=10.0)


def test_voice_activity_leaves_the_process_thread_count_alone():
    # silero_vad sets torch's threads to 1 when imported, which would leave Whisper on one core: a fresh process,
    # since the import happens once.
    code = ("import torch; torch.set_num_threads(2); from whisper_finetuning.inference.vad import VoiceActivity; "
            "VoiceActivity(); print(torch.get_num_threads())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split()[-1] == "2"
