"""Long-form skills of a model, measured: what a fine-tune must keep for subtitles, the app's File tab and live
captions (Whisper's timestamps, its quiet on silence), which clip-by-clip WER does not see.

Recordings are built from a test split: consecutive clips joined with pauses (some long, as between a podcast's
segments), so where each utterance starts is known (the clip's offset plus its speech onset, by the same energy trim
that training's timestamp targets use). A model's long-form transcript of a recording, as timed segments (cues), is
scored on:
- long-form WER: the joined references against the joined cue texts;
- cue-start error: for each utterance, the cue that overlaps it most, |cue start - speech start| in seconds (median
  and 90th percentile); an utterance no cue overlaps counts as missed;
- cues outside the audio: cues that start before 0 or end more than 0.5 s after the recording;
- words on silence and on noise: a recording of digital silence and one of noise, each 60 s, should get no words.
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..backends.base import Segment as Cue  # a timed piece of a transcript: a subtitle cue
from ..backends.transformers_backend import TransformersBackend
from ..data.audio import SAMPLING_RATE, AudioError, decode_row_audio
from ..data.mixing import load_mixture
from ..features.targets import no_speech_audio, speech_bounds
from ..metrics import error_rate
from ..training.long_form_guard import CLIPS_PER_RECORDING, PREFIX, QUIET_SECONDS

OUTSIDE_TOLERANCE_SECONDS = 0.5


@dataclass(frozen=True)
class Utterance:
    start: float  # where the speech starts in the recording, seconds
    end: float
    text: str


@dataclass
class LongRecording:
    name: str
    audio: np.ndarray  # 16 kHz mono float32
    utterances: list[Utterance] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLING_RATE


def join_clips(name: str, clips: list[tuple[np.ndarray, str]], pauses: list[float]) -> LongRecording:
    """One recording: the clips (16 kHz audio, reference text) in order, `pauses[i]` seconds of silence before clip
    i. Each utterance starts where its clip's speech starts (energy trim), not where the clip's file starts."""
    if len(pauses) != len(clips):
        raise ValueError(f"one pause per clip: {len(clips)} clips, {len(pauses)} pauses")
    pieces, utterances, offset = [], [], 0.0
    for (audio, text), pause in zip(clips, pauses):
        silence = np.zeros(int(round(pause * SAMPLING_RATE)), np.float32)
        pieces += [silence, np.asarray(audio, np.float32)]
        offset += len(silence) / SAMPLING_RATE
        bounds = speech_bounds(audio) or (0.0, len(audio) / SAMPLING_RATE)
        utterances.append(Utterance(round(offset + bounds[0], 3), round(offset + bounds[1], 3), text))
        offset += len(audio) / SAMPLING_RATE
    return LongRecording(name, np.concatenate(pieces) if pieces else np.zeros(0, np.float32), utterances)


def recordings_from_clips(clips: list[tuple[np.ndarray, str]], per_recording: int = 12, seed: int = 0,
                          pause_range: tuple[float, float] = (0.3, 1.5), long_pause: float = 8.0) -> list[LongRecording]:
    """Consecutive clips in recordings of `per_recording` each, with pauses drawn from `pause_range` and one pause of
    `long_pause` seconds in the middle of each recording (where fine-tunes lose their timestamps)."""
    generator = np.random.default_rng(seed)
    recordings = []
    for number, first in enumerate(range(0, len(clips), per_recording)):
        group = clips[first:first + per_recording]
        pauses = [float(generator.uniform(*pause_range)) for _ in group]
        pauses[0] = 0.5
        if len(group) > 2:
            pauses[len(group) // 2] = long_pause
        recordings.append(join_clips(f"joined-{number + 1}", group, pauses))
    return recordings


def quiet_recordings(seconds: float = 60.0, seed: int = 0) -> list[LongRecording]:
    """60 s of digital silence and 60 s of pink noise (no speech: every word on them is made up)."""
    samples = int(seconds * SAMPLING_RATE)
    return [LongRecording("silence", np.zeros(samples, np.float32)),
            LongRecording("noise", no_speech_audio("pink noise", samples, seed))]


def match_cues(utterances: list[Utterance], cues: list[Cue]) -> list[Cue | None]:
    """For each utterance, the cue overlapping it most in time (None when none does)."""
    matched = []
    for utterance in utterances:
        overlaps = [(min(cue.end, utterance.end) - max(cue.start, utterance.start), -index)  # ties: the earlier
                    for index, cue in enumerate(cues)]
        overlap, index = max(overlaps, default=(0.0, 0))
        matched.append(cues[-index] if overlap > 0 else None)
    return matched


@dataclass
class LongFormScores:
    wer: float  # percent
    cue_start_errors: list[float]  # seconds, one per matched utterance
    missed_utterances: int
    cues_outside: int
    words_on_silence: int | None = None
    words_on_noise: int | None = None

    def summary(self) -> dict:
        errors = np.asarray(self.cue_start_errors, dtype=float)
        return {"long_form_wer": round(self.wer, 2),
                "cue_start_error_median_s": round(float(np.median(errors)), 3) if errors.size else None,
                "cue_start_error_p90_s": round(float(np.percentile(errors, 90)), 3) if errors.size else None,
                "utterances_missed": self.missed_utterances, "cues_outside_audio": self.cues_outside,
                "words_on_silence": self.words_on_silence, "words_on_noise": self.words_on_noise}


def score_recordings(recordings: list[LongRecording], cues: list[list[Cue]], normalize,
                     quiet: dict[str, list[Cue]] | None = None) -> LongFormScores:
    """Scores of a model's cues on the joined recordings (same order), and the words it wrote on the quiet ones
    (`quiet`: recording name -> cues)."""
    references = [" ".join(u.text for u in recording.utterances) for recording in recordings]
    hypotheses = [" ".join(cue.text for cue in found) for found in cues]
    errors, missed, outside = [], 0, 0
    for recording, found in zip(recordings, cues):
        for utterance, cue in zip(recording.utterances, match_cues(recording.utterances, found)):
            if cue is None:
                missed += 1
            else:
                errors.append(abs(cue.start - utterance.start))
        outside += sum(cue.start < 0 or cue.end > recording.duration + OUTSIDE_TOLERANCE_SECONDS for cue in found)
    wer = error_rate(references, hypotheses, "wer", normalize).percent
    words = {name: sum(len(normalize(cue.text).split()) for cue in found) for name, found in (quiet or {}).items()}
    return LongFormScores(wer, errors, missed, outside, words.get("silence"), words.get("noise"))


def evaluate_long_form(backend, clips: list[tuple[np.ndarray, str]], generate_kwargs: dict, normalize,
                       clips_per_recording: int = 12, quiet_seconds: float = 60.0, progress=None) -> dict:
    """The long-form skills of a model (`backends.Backend`): its long-form decoding (the kit's guards, as the app's
    File tab decodes; cue starts as the model gives them) of the recordings joined from `clips` and of the silence
    and noise, scored (`LongFormScores.summary`), with the number of recordings and their hours. `progress()` is
    called after each recording."""
    recordings = recordings_from_clips(clips, clips_per_recording)
    quiet = quiet_recordings(quiet_seconds)

    def cues(recording: LongRecording) -> list[Cue]:
        found = backend.transcribe_long(recording.audio, generate_kwargs).segments
        if progress is not None:
            progress()
        return found

    joined = [cues(recording) for recording in recordings]
    scores = score_recordings(recordings, joined, normalize, {r.name: cues(r) for r in quiet}).summary()
    hours = sum(recording.duration for recording in recordings) / 3600
    return {**scores, "recordings": len(recordings), "audio_hours": round(hours, 4)}


def clips_of(rows, max_clips: int) -> list[tuple[np.ndarray, str]]:
    """(audio, text) of the first `max_clips` readable rows with a transcript, in order (broken rows are left out;
    the clip-by-clip evaluation counts them)."""
    clips = []
    for row in rows:
        if len(clips) == max_clips:
            break
        if row.get("error") or not (row.get("text") or "").strip():
            continue
        try:
            clips.append((decode_row_audio(row["audio"]), row["text"]))
        except AudioError:
            continue
    return clips


@dataclass
class LongFormCheck:
    """The forgetting guard's long-form check (training/long_form_guard.py) on the evaluation set's first clips."""

    clips: list[tuple[np.ndarray, str]]  # (16 kHz audio, reference text)
    language: str
    normalize: Callable[[str], str]

    @property
    def description(self) -> str:
        recordings = -(-len(self.clips) // CLIPS_PER_RECORDING)
        return f"{len(self.clips)} evaluation clips joined into {recordings} recording{'s' * (recordings > 1)}"

    def score(self, model, processor) -> dict:
        """The eval_long_form_* metrics of a transformers Whisper model in training (in eval mode meanwhile)."""
        backend = TransformersBackend(model, processor, "the model in training")
        was_training = model.training
        model.eval()
        try:
            found = evaluate_long_form(backend, self.clips, backend.generate_kwargs(self.language), self.normalize,
                                       CLIPS_PER_RECORDING, QUIET_SECONDS)
        finally:
            model.train(was_training)
        return {PREFIX + key.removeprefix("long_form_"): value for key, value in found.items()
                if key not in ("recordings", "audio_hours")}


def long_form_check(specs, max_clips: int, language: str, normalize, streaming: bool = True) -> LongFormCheck | None:
    """The check on the first `max_clips` readable clips of the evaluation datasets `specs`; None for 0 clips."""
    if not max_clips:
        return None
    clips = clips_of(load_mixture(specs, streaming=streaming), max_clips)
    if len(clips) < 2:
        raise ValueError(f"--long_form_eval_clips {max_clips}: the evaluation set has {len(clips)} readable clip(s) "
                         "with a transcript, and a long-form recording needs at least 2")
    return LongFormCheck(clips, language, normalize)
