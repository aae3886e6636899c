"""Fixtures for both suites. tests/unit needs no weights and no eSpeak: tiny random Whisper checkpoints are built
with the kit's own converter from the tokenizer and config in tests/fixtures/, and the corpus is "spoken" by a
tone generator. tests/integration (marked `integration`) uses the real pretrained weights and eSpeak NG."""

import json
import os
from pathlib import Path

# Tests never reach the Hugging Face Hub; the kit must work from local data and the offline weight packages.
# (Set before huggingface_hub is imported: it reads the variable once.)
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import WhisperForConditionalGeneration  # noqa: E402

from tiny_models import build_tiny_model_dir, tiny_whisper_config, tone_voice  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
CT2_BASE = FIXTURES / "ct2-whisper-base"


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def base_ct2_config() -> dict:
    """whisper-base's CTranslate2 config.json (alignment heads, language ids, suppressed tokens)."""
    return json.loads((CT2_BASE / "config.json").read_text())


@pytest.fixture(scope="session")
def base_tokenizer_file() -> Path:
    """OpenAI's multilingual Whisper tokenizer as CTranslate2 packages ship it (no timestamp tokens)."""
    return CT2_BASE / "tokenizer.json"


@pytest.fixture
def tiny_whisper() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, base_ct2_config, base_tokenizer_file) -> Path:
    """A tiny random multilingual Whisper with the real tokenizer, feature extractor and generation config (one
    encoder layer: its 1500 x 1500 self-attention is most of a training step)."""
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-whisper"), base_ct2_config, base_tokenizer_file,
                                encoder_layers=1)


@pytest.fixture
def processor(tiny_model_dir):
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """A small corpus with tone voices: Swedish in the Common Voice and FLEURS layouts, Ukrainian FLEURS (apostrophes
    in words) and English Common Voice (accents)."""
    from whisper_finetuning.synthetic.corpus import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, ["sv"], ["common_voice", "fleurs"], num_speakers=4, synthesize=tone_voice)
    generate(root, ["uk"], ["fleurs"], num_speakers=4, synthesize=tone_voice)
    generate(root, ["en"], ["common_voice"], num_speakers=4, synthesize=tone_voice)
    return root
