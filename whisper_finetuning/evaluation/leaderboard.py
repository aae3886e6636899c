"""The leaderboard's test sets of a language: Common Voice and FLEURS, from local release folders or the Hub."""

import logging
from pathlib import Path

from normalizers import get_language

from ..cards import COMMON_VOICE_HUB, FLEURS_HUB, DatasetIdentity, common_voice_identity
from ..data.mixing import DatasetSpec

logger = logging.getLogger(__name__)


def default_targets(language: str, split: str = "test", common_voice_dir: str | None = None,
                    fleurs_dir: str | None = None, common_voice_dataset: str = COMMON_VOICE_HUB,
                    fleurs_dataset: str = FLEURS_HUB) -> list[DatasetIdentity]:
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
        targets.append(DatasetIdentity(DatasetSpec(name, locale, split, "sentence"), *common_voice_identity(name)))
    else:
        logger.warning("Common Voice has no %s; evaluating on FLEURS only", lang.name)
    if lang.fleurs:
        targets.append(DatasetIdentity(DatasetSpec(fleurs_dir or fleurs_dataset, lang.fleurs, split, "raw_transcription"),
                                  FLEURS_HUB, "FLEURS"))
    else:
        logger.warning("FLEURS has no %s; evaluating on Common Voice only", lang.name)
    if not targets:
        raise ValueError(f"neither Common Voice nor FLEURS has {lang.name}: pass --dataset_name")
    return targets
