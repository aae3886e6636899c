"""Noisy copies of a test set, for a robustness curve: WER against signal-to-noise ratio, every model on the same
clips.

The first `max_samples` rows of a test set are decoded once (16 kHz mono, as run_eval.py decodes them) and written
as float32 WAV files with a JSON-lines manifest per SNR (`<folder>/<label>.jsonl`, which run_eval.py reads with
--dataset_name; texts and speaker columns kept):
- "clean": the decoded clips as they are;
- N dB: the clip plus noise from audiomentations' AddColorNoise (white by default, as in the Whisper paper's noise
  robustness figure), with the SNR fixed at N. SNR is the power of the whole clip over the power of the noise.
  Each clip's noise is seeded by the clip (not by the SNR), so every SNR adds the same noise at another level.
Float32 WAV keeps the samples exactly (no clipping at 0 dB, no 16-bit rounding), at 64 kB a second per SNR.
Rows that cannot be used (a broken row, audio that does not decode, digital silence, which has no SNR) are left out
of every set alike and listed in `noisy_sets.json`. A second call with the same settings reuses what is written.
"""

import hashlib
import io
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from ..augmentation.seeding import global_random_seeded
from ..data.audio import SAMPLING_RATE, AudioError, decode_row_audio
from ..figures import pyplot, save_png
from ..files import write_bytes_atomic, write_json_atomic, write_jsonl_atomic

logger = logging.getLogger(__name__)

CLEAN = "clean"
DEFAULT_SNRS = ("clean", "20", "10", "5", "0")
# audiomentations' NOISE_COLOR_DECAYS (dB per octave), repeated so that --help and argument checks need no import.
NOISE_COLORS = ("white", "pink", "brown", "blue", "violet")
DESCRIPTION = "noisy_sets.json"


class RobustnessError(ValueError):
    pass


def parse_snrs(values) -> list[str | float]:
    """"clean" and numbers of dB (as given on the command line) -> ["clean", 20.0, ...], in the given order."""
    snrs = []
    for value in values:
        if str(value).strip().lower() == CLEAN:
            snr = CLEAN
        else:
            try:
                snr = float(value)
            except ValueError:
                raise RobustnessError(f"--snr: {value!r} is neither 'clean' nor a signal-to-noise ratio in dB "
                                      "(such as 20, 5 or -5)") from None
            if not np.isfinite(snr):
                raise RobustnessError(f"--snr: {value!r} is not a finite number of dB")
        if snr in snrs:
            raise RobustnessError(f"--snr: {value!r} is given twice")
        snrs.append(snr)
    if not snrs:
        raise RobustnessError("--snr: give at least one value ('clean' or a number of dB)")
    return snrs


def snr_label(snr: str | float) -> str:
    """"clean", "20 dB", "-2.5 dB": how an SNR is named in tables, plots and results.json."""
    return CLEAN if snr == CLEAN else f"{snr:g} dB"


def snr_slug(snr: str | float) -> str:
    """The file name part of an SNR: clean, snr_20db, snr_minus2.5db."""
    return CLEAN if snr == CLEAN else "snr_" + f"{snr:g}".replace("-", "minus") + "db"


def power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64)))


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """The SNR of `noisy` against `clean` in dB: the clip's power over the power of what was added."""
    return 10 * np.log10(power(clean) / power(noisy.astype(np.float64) - clean))


def add_noise(samples: np.ndarray, snr_db: float, seed: int, color: str = "white") -> np.ndarray:
    """`samples` plus `color` noise at exactly `snr_db` (the same `seed` gives the same noise)."""
    try:
        from audiomentations import NOISE_COLOR_DECAYS, AddColorNoise
    except ImportError as error:
        raise ImportError(f"the noisy test clips need audiomentations ({error}): pip install -e '.[augment]'") from error
    if color not in NOISE_COLORS:
        raise RobustnessError(f"unknown noise color {color!r}; choose one of {', '.join(NOISE_COLORS)}")
    if power(samples) == 0:
        raise RobustnessError("a clip of digital silence has no signal-to-noise ratio")
    decay = NOISE_COLOR_DECAYS[color]
    transform = AddColorNoise(min_snr_db=snr_db, max_snr_db=snr_db, min_f_decay=decay, max_f_decay=decay, p=1.0)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    with global_random_seeded(seed, seed):  # the same seed, the same noise
        noise = transform(samples=samples, sample_rate=SAMPLING_RATE).astype(np.float64) - samples
    # AddColorNoise scales colored noise to the exact level but leaves white noise at the level it happened to draw
    # (off by about 0.05 dB on a second of audio): rescale so that every color is at exactly `snr_db`.
    noise *= np.sqrt(power(samples) / 10 ** (snr_db / 10) / power(noise))
    return (samples + noise).astype(np.float32)


def clip_seed(seed: int, row: dict) -> int:
    return zlib.crc32(f"{seed}|{row['dataset']}|{row['id']}".encode())


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLING_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@dataclass(frozen=True)
class NoisySet:
    snr: str | float
    manifest: Path

    @property
    def label(self) -> str:
        return snr_label(self.snr)


@dataclass
class NoisySets:
    sets: list[NoisySet]
    description: dict  # what was written: source, settings, clips, rows left out

    @property
    def fingerprint(self) -> str:
        """Changes whenever the clips would: evaluations of other clips are not reused."""
        return hashlib.sha256(json.dumps(self.description, sort_keys=True).encode()).hexdigest()[:16]


def write_noisy_sets(rows, source: str, folder: Path, snrs: list, max_samples: int | None = None, seed: int = 0,
                     color: str = "white") -> NoisySets:
    """Write the first `max_samples` rows (all when None) of `rows` (source rows, see data/rows.py) at each SNR
    of `snrs` into `folder`, or reuse what an earlier call with the same `source`, settings and SNRs wrote.
    `source` names the rows (dataset, config, split) in the description."""
    if color not in NOISE_COLORS:
        raise RobustnessError(f"unknown noise color {color!r}; choose one of {', '.join(NOISE_COLORS)}")
    folder = Path(folder)
    settings = {"source": source, "max_samples": max_samples, "seed": seed, "color": color,
                "snr": [snr_label(snr) for snr in snrs]}
    sets = [NoisySet(snr, folder / f"{snr_slug(snr)}.jsonl") for snr in snrs]
    try:
        earlier = json.loads((folder / DESCRIPTION).read_text())
    except (FileNotFoundError, ValueError):
        earlier = None
    if earlier and earlier["settings"] == settings and all(s.manifest.is_file() for s in sets):
        logger.info("Reusing the noisy test clips in %s", folder)
        return NoisySets(sets, earlier)

    manifests = {s.snr: [] for s in sets}
    left_out, seen = [], 0
    for row in rows:
        if max_samples is not None and seen >= max_samples:
            break
        seen += 1
        if row["error"]:
            left_out.append({"id": row["id"], "reason": row["error"]})
            continue
        try:
            clean = decode_row_audio(row["audio"])
        except AudioError as error:
            left_out.append({"id": row["id"], "reason": str(error)})
            continue
        if power(clean) == 0:
            left_out.append({"id": row["id"], "reason": "digital silence (no signal-to-noise ratio)"})
            continue
        name = f"{len(manifests[sets[0].snr]):06d}.wav"
        for noisy_set in sets:
            samples = clean if noisy_set.snr == CLEAN else add_noise(clean, noisy_set.snr, clip_seed(seed, row),
                                                                     color)
            file_name = f"{snr_slug(noisy_set.snr)}/{name}"
            write_bytes_atomic(folder / file_name, wav_bytes(samples))
            manifests[noisy_set.snr].append({
                "file_name": file_name, "text": row["text"], "id": row["id"], "speaker_id": row["speaker_id"],
                "gender": row["gender"], "accent": row["accent"], "locale": row["locale"],
                "duration": round(len(clean) / SAMPLING_RATE, 3), "source": row["dataset"]})
    clips = len(manifests[sets[0].snr])
    if clips == 0:
        raise RobustnessError(f"{source}: none of its first {seen} rows could be used for the noisy test clips"
                              + (f" (first: {left_out[0]['id']}: {left_out[0]['reason']})" if left_out else
                                 " (it has no rows: check the test split's name and config)"))
    for noisy_set in sets:
        write_jsonl_atomic(noisy_set.manifest, manifests[noisy_set.snr])
    if left_out:
        logger.warning("Left %d of %d test rows out of the noisy sets (listed in %s)", len(left_out), seen,
                       folder / DESCRIPTION)
    description = {"settings": settings, "clips": clips, "ids": [m["id"] for m in manifests[sets[0].snr]],
                   "left_out": left_out}
    write_json_atomic(folder / DESCRIPTION, description)  # last: it marks the sets as complete
    return NoisySets(sets, description)


def robustness_table(models: dict[str, dict[str, dict]], labels: list[str]) -> list[str]:
    """Markdown rows: one per model, WER % per SNR (`models`: name -> SNR label -> run_eval result)."""
    lines = ["| model | " + " | ".join(f"WER % {label}" for label in labels) + " |", "|---|" + "---|" * len(labels)]
    for name, scores in models.items():
        lines.append(f"| {name} | " + " | ".join(f"{scores[label]['wer']:.1f}" for label in labels) + " |")
    return lines


# A model that hallucinates on noise scores WER far above 100 %; drawn to scale, it would flatten every other line.
WER_AXIS_CAP = 150


def plot_robustness(models: dict[str, dict[str, dict]], labels: list[str], path: Path) -> Path:
    """WER against SNR, one line per model, the SNRs in the given order (clean first reads left to right as ever
    more noise)."""
    plt = pyplot()

    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(labels) + 2), 3.8))
    positions = list(range(len(labels)))
    capped = False
    for name, scores in models.items():
        wers = [scores[label]["wer"] for label in labels]
        (line,) = axis.plot(positions, [min(wer, WER_AXIS_CAP) for wer in wers], marker="o", label=name)
        for position, wer in zip(positions, wers):
            if wer > WER_AXIS_CAP:  # drawn at the top edge, its value written beside it
                capped = True
                axis.annotate(f"{wer:.0f} %", (position, WER_AXIS_CAP), xytext=(5, -12), textcoords="offset points",
                              color=line.get_color(), fontsize=8)
    if capped:
        axis.set_ylim(0, WER_AXIS_CAP * 1.05)
    axis.set_xticks(positions, labels)
    axis.set_title("WER against added noise")
    axis.set_xlabel("added noise (signal-to-noise ratio)")
    axis.set_ylabel(f"WER (%), axis capped at {WER_AXIS_CAP}" if capped else "WER (%)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    save_png(figure, path)
    return path

