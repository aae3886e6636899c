"""Tiny random Whisper models and a tone "voice" for tests that need neither real weights nor eSpeak."""

import json
import zlib
from pathlib import Path

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration


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


def tone_voice(text: str, voice: str = "", rate: int = 150, pitch: int = 50) -> tuple[np.ndarray, int]:
    """A stand-in for eSpeak in unit tests: a deterministic sound per sentence and voice (not speech), about as
    long as the sentence would be spoken."""
    seconds = 0.5 + 0.05 * len(text) * 150 / rate
    rng = np.random.default_rng(zlib.crc32(f"{voice}|{text}".encode()))
    time = np.arange(int(seconds * 16_000)) / 16_000
    wave = 0.3 * np.sin(2 * np.pi * (80 + 3 * pitch) * time) + 0.05 * rng.standard_normal(len(time))
    return wave.astype(np.float32), 16_000


# large-v3 and large-v3-turbo added Cantonese, <|yue|>, as the 100th language token (openai/whisper tokenizer.py:
# LANGUAGES ends with "yue"; get_encoding(num_languages=100)), right after <|su|>: every special token after the
# languages moves up by one and the vocabulary has 51866 tokens. OpenAI calls 50363 <|nospeech|> (the 99-language
# Hub tokenizer names its 50362 <|nocaptions|>).
V3_YUE_ID = 50358


def write_v3_tokenizer(base_tokenizer_file: Path, path: Path) -> Path:
    """The 99-language tokenizer.json of the fixtures turned into large-v3's 100-language one."""
    tokenizer = json.loads(base_tokenizer_file.read_text())
    added = []
    for token in tokenizer["added_tokens"]:
        if token["id"] >= V3_YUE_ID:
            token = {**token, "id": token["id"] + 1,
                     "content": "<|nospeech|>" if token["content"] == "<|nocaptions|>" else token["content"]}
        added.append(token)
    yue = {**tokenizer["added_tokens"][-1], "id": V3_YUE_ID, "content": "<|yue|>"}
    tokenizer["added_tokens"] = sorted(added + [yue], key=lambda token: token["id"])
    for special in tokenizer["post_processor"]["special_tokens"].values():
        special["ids"] = [i + 1 if i >= V3_YUE_ID else i for i in special["ids"]]
    path.write_text(json.dumps(tokenizer, ensure_ascii=False))
    return path


def v3_ct2_config(base_ct2_config: dict) -> dict:
    """The fixtures' CTranslate2 config.json with the 100 language ids and the suppressed ids moved as above."""
    shift = [i + 1 if i >= V3_YUE_ID else i for i in base_ct2_config["suppress_ids"]]
    return {**base_ct2_config, "lang_ids": list(range(50259, V3_YUE_ID + 1)), "suppress_ids": shift}


def build_v3_model_dir(folder: Path, base_ct2_config: dict, base_tokenizer_file: Path, **overrides) -> Path:
    """A tiny random Whisper shaped like large-v3 (128 mel bins, 51866 tokens): `decoder_layers=4` with more
    encoder than decoder layers is turbo's shape."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer_file = write_v3_tokenizer(base_tokenizer_file, folder.parent / f"{folder.name}-tokenizer.json")
    return build_tiny_model_dir(folder, v3_ct2_config(base_ct2_config), tokenizer_file, vocab_size=51866,
                                num_mel_bins=128, **overrides)
