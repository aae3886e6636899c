import json
import os

# Tests never reach the Hugging Face Hub; the kit must work from local data and the offline weight packages.
# (Set before huggingface_hub is imported: it reads the variable once.)
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import WhisperConfig, WhisperForConditionalGeneration  # noqa: E402

from whisper_finetuning.offline_models import OfflineSource, offline_model_table  # noqa: E402


@pytest.fixture(scope="session")
def base_source() -> OfflineSource:
    """The installed packages of whisper-base (the test command installs them with the `weights` extra)."""
    return OfflineSource.from_table(offline_model_table()["openai/whisper-base"][0])


@pytest.fixture(scope="session")
def base_ct2_config(base_source) -> dict:
    return json.loads(base_source.config.locate().read_text())


@pytest.fixture(scope="session")
def base_tokenizer_file(base_source):
    return base_source.tokenizer.locate()


def tiny_whisper_config(**overrides) -> WhisperConfig:
    """A randomly initialised Whisper small enough for unit tests, with the multilingual vocabulary."""
    settings = dict(
        vocab_size=51865, num_mel_bins=80, d_model=16, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=448, decoder_start_token_id=50258,
        bos_token_id=50257, eos_token_id=50257, pad_token_id=50257,
    )
    settings.update(overrides)
    return WhisperConfig(**settings)


@pytest.fixture
def tiny_whisper() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small synthetic corpus in the Common Voice and FLEURS layouts (Swedish, Ukrainian, English)."""
    from whisper_finetuning.synthetic_corpus import generate

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, ["sv", "uk", "en"], ["common_voice", "fleurs"], num_speakers=4)
    return root


@pytest.fixture
def processor():
    from transformers import WhisperProcessor

    from whisper_finetuning.offline_models import offline_model_dir

    return WhisperProcessor.from_pretrained(offline_model_dir("openai/whisper-tiny.en"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random multilingual Whisper with the real tokenizer, feature extractor and generation config."""
    from transformers import GenerationConfig, WhisperProcessor

    from whisper_finetuning.offline_models import offline_model_dir

    base = offline_model_dir("openai/whisper-base")
    folder = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config())
    model.generation_config = GenerationConfig.from_pretrained(base)
    model.save_pretrained(folder)
    WhisperProcessor.from_pretrained(base).save_pretrained(folder)
    return folder
