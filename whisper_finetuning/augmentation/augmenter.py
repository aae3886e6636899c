"""The Augmenter: a config's transforms applied to one clip, the random draws fixed by (seed, key).

The training stream calls it with key = (pass, row) and the training seed, so the same sample at the same step gets
the same augmentation in every run, after a resume too, whichever thread of the Preprocessor handles it.

Thread safety: audiomentations draws from the process-global generators and keeps what it drew on the transform
object, so the transforms run inside `seeding.global_random_seeded` (one process-wide lock; the generators seeded
from the key and put back afterwards). Decoding, resampling and log-mel still run in parallel outside the lock;
augmentation itself runs one sample at a time (see benchmarks/input_pipeline.py --augmentation_config for what that
costs).
"""

from dataclasses import dataclass, replace

import numpy as np

from ..data.audio import SAMPLING_RATE
from .config import AugmentationConfig
from .seeding import LOCK, global_random_seeded
from .transforms import SyntheticRoom, build_step


class AugmentationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Applied:
    name: str
    parameters: dict

    def label(self) -> str:
        return f"{self.name}: " + ", ".join(f"{key}={readable(value)}" for key, value in self.parameters.items())


def readable(value) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


class Augmenter:
    def __init__(self, config: AugmentationConfig, seed: int):
        self.config, self.seed = config, seed
        self.steps = [build_step(spec, seed) for spec in config.transforms]

    def __call__(self, audio: np.ndarray, key: tuple[int, ...]) -> tuple[np.ndarray, list[Applied]]:
        """(augmented float32 audio at the same sample rate, the transforms applied with what they drew)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.size == 0:
            return audio, []
        python_seed, numpy_seed = np.random.SeedSequence([value % 2**64 for value in (self.seed, *key)]) \
            .generate_state(2)
        applied = []
        with global_random_seeded(int(python_seed), int(numpy_seed)):
            for step in self.steps:
                audio, drawn = step(audio)
                if drawn is not None:
                    applied.append(Applied(step.name, drawn))
        return finish(audio, applied), applied

    def warm_up(self) -> None:
        """Do now what the first samples would otherwise wait for: simulate every room of a room bank (0.1-0.4 s
        each) and load what the transforms load on first use (librosa's codecs and filters)."""
        for step in self.steps:
            if isinstance(step.transform, SyntheticRoom):
                with LOCK:  # the simulation seeds pyroomacoustics' global generators
                    for number in range(step.transform.rooms):
                        step.transform.room(number, SAMPLING_RATE)
        for augmenter in self.forced():
            augmenter(np.full(SAMPLING_RATE, 0.01, dtype=np.float32), (0, 0))

    def forced(self) -> list["Augmenter"]:
        """One Augmenter per transform, applied always (p = 1): for pictures of what each one does."""
        return [Augmenter(AugmentationConfig((replace(spec, p=1.0),), self.config.source), self.seed)
                for spec in self.config.transforms]


def finish(audio: np.ndarray, applied: list[Applied]) -> np.ndarray:
    """Finite float32 audio within [-1, 1]: a clip pushed over full scale (gain, noise) is scaled down to it rather
    than clipped, which would add distortion no microphone made."""
    if not np.isfinite(audio).all():
        raise AugmentationError("augmentation produced non-finite samples after "
                                f"{', '.join(a.label() for a in applied)}; please report it with the config")
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 1.0:
        audio = audio / np.float32(peak)
    return np.ascontiguousarray(audio, dtype=np.float32)
