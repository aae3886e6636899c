"""Stage 2 of 9, between data and features: on-the-fly waveform augmentation of training audio (noise, speed,
pitch, gain, rooms, telephone), configured in a YAML/JSON file (config.py), built on audiomentations and
pyroomacoustics (transforms.py), seeded per sample (augmenter.py; seeding.py holds the global random state steady
under a lock), and pictured before/after (pictures.py, a command). The
Preprocessor applies it right after decoding (training only; evaluation audio is never augmented). SpecAugment stays
the model's own option (--apply_spec_augment, --mask_time_prob, ...): it masks the log-mel of the augmented audio
inside the model, so the two combine."""

from .config import AugmentationConfig, AugmentationConfigError, load_config


def load_augmenter(path: str, seed: int):
    """The Augmenter for a config file (checked first, so a config mistake is reported before any import)."""
    config = load_config(path)
    try:
        from .augmenter import Augmenter
    except ImportError as error:
        raise ImportError(f"waveform augmentation needs audiomentations and pyroomacoustics ({error}): "
                          "pip install -e '.[augment]'") from error
    return Augmenter(config, seed)


__all__ = ["AugmentationConfig", "AugmentationConfigError", "load_augmenter", "load_config"]
