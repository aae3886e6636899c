"""Evaluate Whisper on Common Voice, FLEURS or any dataset: batched generation, language-aware scoring, reports.

The audio of a block of rows is decoded in threads; clips up to 30 s are sorted by length and transcribed in
batches (similar lengths finish decoding together), longer clips go through Whisper's sequential long-form
decoding instead of being cut. Scores: normalized WER (the leaderboard number), orthographic WER, and CER.
"""

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from normalizers import Normalization

from .attention import use_fast_cpu_attention
from .audio import SAMPLING_RATE, AudioError
from .features import LogMelExtractor
from .languages import get_language
from .metrics import error_rate
from .mixing import DatasetSpec
from .preprocessing import decode_row_audio

logger = logging.getLogger(__name__)

LONG_FORM_SECONDS = 30.0
COMMON_VOICE_HUB = "mozilla-foundation/common_voice_17_0"
FLEURS_HUB = "google/fleurs"


@dataclass
class EvalTarget:
    spec: DatasetSpec
    dataset_type: str  # what the model-index calls the dataset (a Hub id)
    pretty_name: str


def _common_voice_identity(name: str) -> tuple[str, str]:
    match = re.search(r"common_voice_(\d+)_0|cv-corpus-(\d+)\.", name)
    version = next((v for v in match.groups() if v), None) if match else None
    if version is None:
        return COMMON_VOICE_HUB, "Common Voice 17.0"
    return f"mozilla-foundation/common_voice_{version}_0", f"Common Voice {version}.0"


def identify(spec: DatasetSpec) -> EvalTarget:
    """The Hub identity of a dataset for the model card, also when it was read from a local release folder."""
    lowered = spec.name.lower()
    if "common_voice" in lowered or "cv-corpus" in lowered or "common-voice" in lowered:
        return EvalTarget(spec, *_common_voice_identity(lowered))
    if "fleurs" in lowered:
        return EvalTarget(spec, FLEURS_HUB, "FLEURS")
    return EvalTarget(spec, spec.name, Path(spec.name).name or spec.name)


def default_targets(language: str, split: str = "test", common_voice_dir: str | None = None,
                    fleurs_dir: str | None = None, common_voice_dataset: str = COMMON_VOICE_HUB,
                    fleurs_dataset: str = FLEURS_HUB) -> list[EvalTarget]:
    """The Common Voice and FLEURS test sets of a Whisper language, from local release folders or the Hub."""
    lang = get_language(language)
    targets = []
    if lang.common_voice:
        locale = lang.common_voice[0]
        if common_voice_dir:
            present = [l for l in lang.common_voice if (Path(common_voice_dir) / l).is_dir()]
            if not present:
                raise FileNotFoundError(f"{common_voice_dir} has no folder for {lang.name} "
                                        f"(looked for {', '.join(lang.common_voice)})")
            locale = present[0]
        name = common_voice_dir or common_voice_dataset
        # The release version, from the Hub id or a release folder's name (cv-corpus-17.0-...); 17.0 otherwise.
        targets.append(EvalTarget(DatasetSpec(name, locale, split, "sentence"), *_common_voice_identity(name.lower())))
    else:
        logger.warning("Common Voice has no %s; evaluating on FLEURS only", lang.name)
    if lang.fleurs:
        targets.append(EvalTarget(DatasetSpec(fleurs_dir or fleurs_dataset, lang.fleurs, split, "raw_transcription"),
                                  FLEURS_HUB, "FLEURS"))
    else:
        logger.warning("FLEURS has no %s; evaluating on Common Voice only", lang.name)
    if not targets:
        raise ValueError(f"neither Common Voice nor FLEURS has {lang.name}: pass --dataset_name")
    return targets


@dataclass
class Throughput:
    """Audio seconds per wall-clock second of decoding, features and generation (after a warm-up)."""

    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def add(self, audio_seconds: float, wall_seconds: float) -> None:
        self.audio_seconds += audio_seconds
        self.wall_seconds += wall_seconds

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")


@dataclass
class Transcriber:
    """Batched transcription of dataset rows. On CPU an "sdpa" model is switched to the faster attention of
    `attention.py`. (torch.compile is not offered: with that attention it took 161 s to compile whisper-base and
    its batches ran slower; with plain SDPA it gained 8-12 % on the bfloat16 encoder.)"""

    model: object
    processor: object
    generate_kwargs: dict
    batch_size: int = 16
    num_threads: int = 2
    throughput: Throughput = field(default_factory=Throughput)

    def __post_init__(self):
        self.log_mel = LogMelExtractor(self.processor.feature_extractor)
        self.pool = ThreadPoolExecutor(self.num_threads)
        use_fast_cpu_attention(self.model)
        # Warm-up (first-call allocations, kernel selection), kept out of the measured throughput.
        self._generate(torch.from_numpy(self.log_mel(np.zeros(SAMPLING_RATE, np.float32)))[None])

    def _generate(self, features: torch.Tensor, **extra) -> list[str]:
        features = features.to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            tokens = self.model.generate(features, **{**self.generate_kwargs, **extra})
        if isinstance(tokens, dict):
            tokens = tokens["sequences"]
        return [t.strip() for t in self.processor.batch_decode(tokens, skip_special_tokens=True)]

    def _decode(self, row):
        try:
            return decode_row_audio(row["audio"])
        except AudioError as error:
            return error

    def __call__(self, rows: list[dict]) -> list[tuple]:
        """(row, prediction or None, duration, error or None) for a block of rows, in processing order."""
        began = time.perf_counter()
        results = list(self._transcribe(rows))
        self.throughput.add(sum(duration for _, _, duration, _ in results), time.perf_counter() - began)
        return results

    def _transcribe(self, rows: list[dict]):
        audio = list(self.pool.map(self._decode, rows))
        short, long = [], []
        for row, samples in zip(rows, audio):
            if isinstance(samples, AudioError):
                logger.warning("Skipping unreadable audio: %s", samples)
                yield row, None, 0.0, str(samples)
            else:
                (long if len(samples) / SAMPLING_RATE > LONG_FORM_SECONDS else short).append((row, samples))
        short.sort(key=lambda item: len(item[1]), reverse=True)
        for start in range(0, len(short), self.batch_size):
            batch = short[start:start + self.batch_size]
            features = torch.from_numpy(np.stack(list(self.pool.map(self.log_mel, [s for _, s in batch]))))
            texts = self._generate(features)
            for (row, samples), text in zip(batch, texts):
                yield row, text, len(samples) / SAMPLING_RATE, None
        for row, samples in long:
            inputs = self.processor.feature_extractor(samples, sampling_rate=SAMPLING_RATE, truncation=False,
                                                      padding="longest", return_attention_mask=True,
                                                      return_tensors="pt")
            extra = {"attention_mask": inputs.attention_mask.to(self.model.device), "return_timestamps": True}
            text = self._generate(inputs.input_features, **extra)[0]
            yield row, text, len(samples) / SAMPLING_RATE, None


def evaluate_rows(transcriber: Transcriber, rows, normalization: Normalization, total: int | None = None,
                  description: str = "", max_samples: int | None = None, block_size: int = 256):
    """Transcribe and score a stream of rows; returns (scores dict, per-sample predictions)."""
    predictions, unreadable = [], []
    block = []
    progress = tqdm(total=min(total, max_samples) if total and max_samples else (max_samples or total),
                    desc=description, unit=" samples")

    def flush():
        for row, text, duration, error in transcriber(block):
            progress.update(1)
            if error is not None:
                unreadable.append({"id": row["id"], "path": row["audio"].get("path"), "error": error})
                continue
            predictions.append({"id": row["id"], "dataset": row["dataset"], "duration": round(duration, 3),
                                "reference": row["text"], "prediction": text,
                                "reference_normalized": normalization(row["text"]),
                                "prediction_normalized": normalization(text)})
        block.clear()

    for index, row in enumerate(rows):
        if max_samples is not None and index >= max_samples:
            break
        block.append(row)
        if len(block) == block_size:
            flush()
    flush()
    progress.close()
    references = [p["reference"] for p in predictions]
    hypotheses = [p["prediction"] for p in predictions]
    normalized_wer = error_rate(references, hypotheses, "wer", normalization)
    scores = {
        "metric": normalization.metric,
        "wer": normalized_wer.percent,
        "wer_orthographic": error_rate(references, hypotheses, "wer", str.strip).percent,
        "cer": error_rate(references, hypotheses, "cer", normalization).percent,
        "substitutions": normalized_wer.substitutions, "insertions": normalized_wer.insertions,
        "deletions": normalized_wer.deletions, "hits": normalized_wer.hits,
        "samples": len(predictions), "empty_references": normalized_wer.num_empty_references,
        "unreadable": len(unreadable), "unreadable_files": unreadable[:20],
        "audio_hours": sum(p["duration"] for p in predictions) / 3600,
    }
    return scores, predictions
