"""Turn rows (see `data.rows`) into model inputs: decode, resample, filter, log-mel, tokenize; count what is skipped.

Every skipped sample is counted by reason (empty text, unreadable audio, too short, too long, labels longer than
the decoder's positions, ...), and the samples each dataset contributed are counted too; `report()` logs both.
A broken sample (a malformed row, unreadable audio, audio much shorter than its dataset lists) never stops a run by
itself, but more than `max_failure_fraction` of broken samples does, with an error: that is a wrong path, a missing
codec or a damaged download, not a few bad files. The rule is checked while rows stream (from
`min_samples_for_failure_check` samples on) and by `finish()` at the end of a pass, whatever the number of samples.

With `augment` (an `augmentation.Augmenter`, training only), the decoded audio is augmented right after decoding,
before the duration filter (speed perturbation changes the duration) and the log-mel; the draws are keyed by the
row's (pass, row), which `training.stream.TrainingStream` adds, and the transforms applied are counted.
"""

import itertools
import logging
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from normalizers import get_target_normalizer

from ..data.audio import SAMPLING_RATE, AudioError, ShorterThanListedError, check_listed_duration, decode_row_audio
from ..data.rows import DataSourceError
from .log_mel import LogMelExtractor
from .targets import SampleChoice, TargetSettings, build_labels, choose, no_speech_audio, speech_bounds, timed_labels
from .windows import lay_out

logger = logging.getLogger(__name__)


@dataclass
class FilterSettings:
    min_duration_in_seconds: float = 0.0
    max_duration_in_seconds: float = 30.0  # Whisper sees 30 s windows; longer clips would be cut silently
    max_label_length: int = 448  # the decoder's positions (model.config.max_target_positions), not config.max_length
    max_failure_fraction: float = 0.05
    min_samples_for_failure_check: int = 100


@dataclass
class PipelineStats:
    kept: Counter = field(default_factory=Counter)  # per dataset
    skipped: Counter = field(default_factory=Counter)  # per reason
    broken: list = field(default_factory=list)  # (path or id, error), the first 20
    augmented: Counter = field(default_factory=Counter)  # per transform
    targets: Counter = field(default_factory=Counter)  # timestamps, prompts, no-speech samples (targets.py)


BROKEN_REASONS = ("malformed row", "unreadable audio", "audio shorter than listed")


def make_preprocessor(processor, language: str, preprocessing_args, max_label_length: int,
                      durations: tuple[float, float] | None = None, augment=None,
                      targets: TargetSettings | None = None) -> "Preprocessor":
    """The Preprocessor of a run: the target normalizer of `language` with the run's case and punctuation settings
    (PreprocessingArguments), its duration filters (or `durations`, as (min, max) seconds) and the label limit."""
    normalize = get_target_normalizer(language, preprocessing_args.do_lower_case,
                                      preprocessing_args.do_remove_punctuation)
    low, high = durations or (preprocessing_args.min_duration_in_seconds, preprocessing_args.max_duration_in_seconds)
    return Preprocessor(processor, FilterSettings(low, high, max_label_length), normalize_text=normalize,
                        augment=augment, targets=targets)

class Preprocessor:
    """Callable on a row: its input_features, labels and skip_reason ("" when kept); `prepare` runs it."""

    def __init__(self, processor, settings: FilterSettings | None = None, normalize_text=None,
                 num_threads: int | None = None, augment=None, targets: TargetSettings | None = None):
        self.tokenizer = processor.tokenizer
        self.log_mel = LogMelExtractor(processor.feature_extractor)
        self.settings = settings or FilterSettings()
        self.normalize_text = normalize_text or (lambda text: text)
        self.augment = augment  # None: the audio as decoded
        self.targets = targets if targets is not None and targets.enabled else None  # None: plain text labels
        self.stats = PipelineStats()
        self.lock = threading.Lock()
        # Decoding (libsndfile), resampling (soxr) and the STFT release the GIL, so threads use every core; two per
        # core overlap the short GIL-bound parts (measured on 2 cores: 1 thread 297, 2: 416, 4: 521 samples/s).
        self.num_threads = num_threads or 2 * (os.cpu_count() or 1)
        self._pool = None

    def _skip(self, reason: str) -> dict:
        with self.lock:
            self.stats.skipped[reason] += 1
        return self._skipped(reason)

    @staticmethod
    def _skipped(reason: str) -> dict:
        return {"input_features": None, "labels": None, "input_length": 0.0, "skip_reason": reason}

    def process(self, rows: list[dict]) -> list[dict]:
        """The results of a batch of rows, processed in threads."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.num_threads)  # created lazily: DataLoader workers fork
        return list(self._pool.map(self, rows))

    def _broken(self, reason: str, where: str, error: str) -> dict:
        logger.warning("Skipping a broken sample (%s): %s", reason, error)
        with self.lock:  # count, remember and check in one step: rows are processed in several threads
            self.stats.skipped[reason] += 1
            self.stats.broken.append((where, error))
            del self.stats.broken[20:]
            self._check_failures(final=False)
        return self._skipped(reason)

    def __call__(self, row: dict) -> dict:
        settings = self.settings
        if row.get("window"):
            return self._window(row)
        if row.get("error"):
            return self._broken("malformed row", row["id"], row["error"])
        choice = self._target_choice(row)
        text = "" if choice.no_speech else self.normalize_text(row["text"] or "").strip()
        if not text and not choice.no_speech:
            return self._skip("empty text")
        audio, broken = self._decoded(row)
        if broken:
            return broken
        if choice.no_speech:
            audio = no_speech_audio(choice.no_speech, len(audio), choice.noise_seed)
        if self.augment is not None:
            audio = self._augmented(audio, row)
        duration = len(audio) / SAMPLING_RATE
        if duration < settings.min_duration_in_seconds:
            return self._skip(f"shorter than {settings.min_duration_in_seconds} s")
        if duration > settings.max_duration_in_seconds:
            return self._skip(f"longer than {settings.max_duration_in_seconds} s")
        if self.targets is None:
            labels = self.tokenizer(text).input_ids
        else:
            labels, kinds = self._target_labels(text, audio, choice, row.get("previous_text"))
        if len(labels) > settings.max_label_length:
            return self._skip(f"labels longer than {settings.max_label_length} tokens")
        with self.lock:
            self.stats.kept[row["dataset"]] += 1
            if self.targets is not None:
                self.stats.targets.update(kinds)
        return {"input_features": self.log_mel(audio), "labels": labels, "input_length": duration, "skip_reason": ""}

    def _decoded(self, row: dict) -> tuple:
        """(the row's audio, None), or (None, the skipped result) for a broken sample, counted."""
        where = row["audio"].get("path") or row["id"]
        try:
            audio = decode_row_audio(row["audio"])
            check_listed_duration(audio, row["duration"], where)
        except ShorterThanListedError as error:
            return None, self._broken("audio shorter than listed", where, str(error))
        except AudioError as error:
            return None, self._broken("unreadable audio", where, str(error))
        return audio, None

    def _window(self, row: dict) -> dict:
        """A long-form window (features/windows.py): its rows decoded (and augmented) one by one, the broken ones
        counted and left out, laid out with pauses, and labelled with a timestamp pair per utterance. When the labels
        are longer than the decoder's positions, the last utterances are left out, labels and audio both."""
        clips = []
        for part in row["window"]:
            text = self.normalize_text(part["text"] or "").strip()
            if not text:
                self._skip("empty text")
                continue
            audio, broken = self._decoded(part)
            if broken:
                continue
            clips.append((text, self._augmented(audio, part) if self.augment is not None else audio))
        prompt = self.normalize_text(row.get("previous_text") or "").strip() if self._target_choice(row).prompt else ""
        limit = self.settings.max_label_length
        for count in range(len(clips), 0, -1):
            audio, segments = lay_out(clips[:count], (row["pass"], row["row"]), self.targets.seed)
            labels = timed_labels(self.tokenizer, segments, prompt, limit)
            if segments and len(labels) <= limit:
                break
        else:
            return self._skip("long-form window without a usable utterance")
        left_out = len(clips) - len(segments)
        with self.lock:
            if left_out:
                self.stats.skipped[f"left out of a long-form window (past 30 s or {limit} label tokens)"] += left_out
            self.stats.kept[row["dataset"]] += len(segments)
            self.stats.targets.update(["long-form window", *(["previous-text prompt"] if prompt else [])])
            self.stats.targets["utterance in a long-form window"] += len(segments)
        return {"input_features": self.log_mel(audio), "labels": labels, "input_length": len(audio) / SAMPLING_RATE,
                "skip_reason": ""}

    def _target_choice(self, row: dict) -> SampleChoice:
        if self.targets is None:
            return SampleChoice()
        if "pass" not in row or "row" not in row:
            raise ValueError("timestamps, prompts and no-speech samples are drawn per (pass, row): the rows need "
                             "'pass' and 'row' columns, which training.stream.TrainingStream adds")
        return choose(self.targets, (row["pass"], row["row"]))

    def _target_labels(self, text: str, audio, choice: SampleChoice, previous_text: str | None):
        """(labels, what they hold) of a sample under TargetSettings."""
        kinds = [f"no speech ({choice.no_speech})"] if choice.no_speech else []
        bounds = speech_bounds(audio) if choice.timestamps else None
        prompt = self.normalize_text(previous_text or "").strip() if choice.prompt else ""
        kinds += ["timestamps"] if bounds else []
        kinds += ["previous-text prompt"] if prompt else []
        labels = build_labels(self.tokenizer, text, bounds, prompt, self.settings.max_label_length)
        return labels, kinds

    def _augmented(self, audio, row: dict):
        if "pass" not in row or "row" not in row:
            raise ValueError("augmentation draws per (pass, row): the rows need 'pass' and 'row' columns, which "
                             "training.stream.TrainingStream adds; read training rows through it")
        audio, applied = self.augment(audio, (row["pass"], row["row"]))
        with self.lock:
            self.stats.augmented.update(step.name for step in applied)
        return audio

    def _check_failures(self, final: bool) -> None:
        counts = {reason: self.stats.skipped[reason] for reason in BROKEN_REASONS if self.stats.skipped[reason]}
        broken = sum(counts.values())
        seen = broken + sum(self.stats.kept.values())
        if (final or seen >= self.settings.min_samples_for_failure_check) and \
                broken > self.settings.max_failure_fraction * seen:
            reasons = ", ".join(f"{count} {reason}" for reason, count in counts.items())
            examples = "; ".join(error for _, error in self.stats.broken[:3])  # each names its file
            raise DataSourceError(f"{broken} of {seen} samples are broken ({reasons}), more than "
                                  f"{self.settings.max_failure_fraction:.0%}: a wrong path, a missing codec or a "
                                  f"damaged download rather than a few bad files. Fix or remove them; the first: "
                                  f"{examples}")

    def finish(self) -> None:
        """The failure rule on everything seen so far, however few samples that is: call it after a pass."""
        with self.lock:
            self._check_failures(final=True)

    def report(self) -> None:
        for dataset, count in sorted(self.stats.kept.items()):
            logger.info("Dataset %s contributed %d samples", dataset, count)
        for reason, count in sorted(self.stats.skipped.items()):
            logger.info("Skipped %d samples: %s", count, reason)
        for name, count in sorted(self.stats.augmented.items()):
            logger.info("Augmentation %s applied to %d samples", name, count)
        for kind, count in sorted(self.stats.targets.items()):
            logger.info("Training targets: %d samples with %s", count, kind)


def prepare(rows, preprocessor: Preprocessor, batch_size: int = 32):
    """Rows -> model inputs (each row's columns and the Preprocessor's), the skipped ones dropped: a generator over
    any iterable of rows, batches of `batch_size` processed in the Preprocessor's threads, nothing decoded before it
    is asked for."""
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, batch_size)):
        for row, result in zip(batch, preprocessor.process(batch)):
            if result["skip_reason"] == "":
                yield {**row, **result}
