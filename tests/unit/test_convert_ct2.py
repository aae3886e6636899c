"""The CTranslate2 reader and converter on tiny random models (fast; no real weights)."""

import struct

import numpy as np
import pytest
import torch
from ct2_writer import ct2_variables, write_ct2_model
from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor

from whisper_finetuning.offline.convert import convert
from whisper_finetuning.offline.ct2_reader import CT2FormatError, read_ct2_model


def round_to_fp16(model):
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    return model


def test_reader_returns_every_variable_and_resolves_aliases(tiny_whisper):
    variables = ct2_variables(tiny_whisper.state_dict(), 2, 2)
    model = read_ct2_model(write_ct2_model(variables))
    assert model.spec_name == "WhisperSpec"
    for name, array in variables.items():
        assert model.variables[name].dtype == array.dtype
        np.testing.assert_array_equal(model.variables[name], array)
    assert model.variables["decoder/projection/weight"] is model.variables["decoder/embeddings/weight"]


def test_converted_tiny_model_matches_the_original(tiny_whisper, base_ct2_config, base_tokenizer_file, tmp_path):
    round_to_fp16(tiny_whisper)  # CTranslate2 stores float16; widening it back is exact
    ct2 = read_ct2_model(write_ct2_model(ct2_variables(tiny_whisper.state_dict(), 2, 2)))
    convert(ct2, base_ct2_config, base_tokenizer_file, tmp_path, "tiny-test")

    converted = WhisperForConditionalGeneration.from_pretrained(tmp_path).eval()
    original_state = tiny_whisper.state_dict()
    for name, tensor in converted.state_dict().items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, original_state[name]), name
    assert converted.config.d_model == 16 and converted.config.encoder_layers == 2
    assert converted.config.encoder_attention_heads == 2 and converted.config.decoder_ffn_dim == 32

    features = torch.randn(1, 80, 3000)
    decoder_input_ids = torch.tensor([[50258, 50259, 50359, 50363, 440, 1365]])
    with torch.no_grad():
        expected = tiny_whisper(features, decoder_input_ids=decoder_input_ids).logits
        actual = converted(features, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def test_converted_directory_is_a_complete_checkpoint(tiny_whisper, base_ct2_config, base_tokenizer_file, tmp_path):
    ct2 = read_ct2_model(write_ct2_model(ct2_variables(tiny_whisper.state_dict(), 2, 2)))
    convert(ct2, base_ct2_config, base_tokenizer_file, tmp_path, "tiny-test")

    processor = WhisperProcessor.from_pretrained(tmp_path)
    tokenizer = processor.tokenizer
    assert processor.feature_extractor.feature_size == 80
    assert len(tokenizer) == 51865  # text + special tokens + 1501 timestamp tokens
    assert tokenizer.convert_ids_to_tokens(50364) == "<|0.00|>"
    assert tokenizer.convert_ids_to_tokens(51864) == "<|30.00|>"
    assert tokenizer.english_spelling_normalizer["colour"] == "color"
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.decode(tokenizer(" hello world").input_ids, skip_special_tokens=True) == " hello world"

    generation = GenerationConfig.from_pretrained(tmp_path)
    assert generation.lang_to_id["<|sv|>"] == 50273 and generation.lang_to_id["<|en|>"] == 50259
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert generation.no_timestamps_token_id == 50363 and generation.decoder_start_token_id == 50258
    assert generation.is_multilingual and generation.task == "transcribe"
    assert generation.alignment_heads == base_ct2_config["alignment_heads"]
    assert generation.begin_suppress_tokens == [220, 50257]


def test_truncated_model_is_reported(tiny_whisper):
    data = write_ct2_model(ct2_variables(tiny_whisper.state_dict(), 2, 2))
    with pytest.raises(CT2FormatError, match="truncated"):
        read_ct2_model(data[: len(data) // 2], source="model.bin.part1 + model.bin.part2")


def test_trailing_bytes_and_unknown_versions_are_reported(tiny_whisper):
    data = write_ct2_model(ct2_variables(tiny_whisper.state_dict(), 2, 2))
    with pytest.raises(CT2FormatError, match="unexpected bytes"):
        read_ct2_model(data + b"\0" * 10)
    with pytest.raises(CT2FormatError, match="format version 5"):
        read_ct2_model(struct.pack("<I", 5) + data[4:])


def test_bfloat16_variables_are_widened_exactly():
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)  # exactly representable in bfloat16
    raw = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    name = b"w\0"
    blob = (struct.pack("<I", 6) + struct.pack("<H", 12) + b"WhisperSpec\0" + struct.pack("<II", 3, 1)
            + struct.pack("<H", len(name)) + name + struct.pack("<BIBI", 1, 3, 5, len(raw)) + raw + struct.pack("<I", 0))
    np.testing.assert_array_equal(read_ct2_model(blob).variables["w"], values)


def test_nonzero_k_bias_is_rejected(tiny_whisper, base_ct2_config, base_tokenizer_file, tmp_path):
    variables = ct2_variables(tiny_whisper.state_dict(), 2, 2)
    variables["encoder/layer_0/self_attention/linear_0/bias"][16:32] = 1.0  # the k rows
    with pytest.raises(CT2FormatError, match="k projection"):
        convert(read_ct2_model(write_ct2_model(variables)), base_ct2_config, base_tokenizer_file, tmp_path, "x")
