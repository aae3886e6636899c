"""Fixtures for both suites. tests/unit needs no weights and no eSpeak: tiny random Whisper checkpoints are built
with the kit's own converter from the tokenizer and config in tests/fixtures/, and the corpus is "spoken" by a
tone generator. tests/integration (marked `integration`) uses the real pretrained weights and eSpeak NG."""

import json
import os
import zlib
from pathlib import Path

# Tests never reach the Hugging Face Hub; the kit must work from local data and the offline weight packages.
# (Set before huggingface_hub is imported: it reads the variable once.)
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import WhisperConfig, WhisperForConditionalGeneration  # noqa: E402

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


def build_tiny_model_dir(folder: Path, ct2_config: dict, tokenizer_file: Path, **overrides) -> Path:
    """A tiny random Whisper as a complete checkpoint folder (tokenizer with timestamp tokens, generation config,
    feature extractor), written by the kit's converter from a CTranslate2 model of the tiny weights."""
    from ct2_writer import ct2_variables, write_ct2_model
    from whisper_finetuning.offline.convert import convert
    from whisper_finetuning.offline.ct2_reader import read_ct2_model

    torch.manual_seed(0)
    config = tiny_whisper_config(**overrides)
    model = WhisperForConditionalGeneration(config)
    variables = ct2_variables(model.state_dict(), config.encoder_attention_heads, config.decoder_attention_heads,
                              dtype=np.float32)
    convert(read_ct2_model(write_ct2_model(variables)), ct2_config, tokenizer_file, folder, "tiny-whisper")
    return folder


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


def tone_voice(text: str, voice: str = "", rate: int = 150, pitch: int = 50) -> tuple[np.ndarray, int]:
    """A stand-in for eSpeak in unit tests: a deterministic sound per sentence and voice (not speech), about as
    long as the sentence would be spoken."""
    seconds = 0.5 + 0.05 * len(text) * 150 / rate
    rng = np.random.default_rng(zlib.crc32(f"{voice}|{text}".encode()))
    time = np.arange(int(seconds * 16_000)) / 16_000
    wave = 0.3 * np.sin(2 * np.pi * (80 + 3 * pitch) * time) + 0.05 * rng.standard_normal(len(time))
    return wave.astype(np.float32), 16_000


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
