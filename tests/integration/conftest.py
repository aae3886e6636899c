"""Fixtures of the integration tests: the installed weight packages and a corpus spoken by eSpeak NG."""

import pytest

from whisper_finetuning.offline.resolver import OfflineSource, offline_model_table


@pytest.fixture(scope="session")
def base_source() -> OfflineSource:
    """The installed packages of whisper-base (the test command installs them with the `weights` extra)."""
    return OfflineSource.from_table(offline_model_table()["openai/whisper-base"][0])


@pytest.fixture(scope="session")
def spoken_corpus(tmp_path_factory):
    """A small corpus spoken by eSpeak NG in the Common Voice and FLEURS layouts (Swedish, Ukrainian, English)."""
    from whisper_finetuning.synthetic.corpus import generate

    root = tmp_path_factory.mktemp("spoken")
    generate(root, ["sv", "uk", "en"], ["common_voice", "fleurs"], num_speakers=4)
    return root
