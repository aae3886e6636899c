"""The decoding attention used on CPU gives what SDPA gives, and the dtype run_eval picks by itself."""

import pytest
import torch
import torch.nn.functional as F
from transformers import WhisperForConditionalGeneration
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from whisper_finetuning.backends.cpu_attention import NAME, enable_fast_cpu_attention, sdpa_cpu_inference_forward
from whisper_finetuning.loading import choose_dtype


@pytest.fixture
def module():
    return torch.nn.Module().eval()  # the attention functions only read .training (and .is_causal)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float"])
def test_single_token_queries_match_sdpa(module, mask_kind):
    torch.manual_seed(0)
    query = torch.randn(3, 4, 1, 16)
    key, value = torch.randn(3, 4, 37, 16), torch.randn(3, 4, 37, 16)
    keep = torch.rand(3, 1, 1, 37) > 0.3
    keep[..., 0] = True  # every row attends to something
    mask = {"none": None, "bool": keep,
            "float": torch.zeros(3, 1, 1, 37).masked_fill(~keep, torch.finfo(torch.float32).min)}[mask_kind]
    for scaling in (1.0, 0.25, None):
        ours, weights = sdpa_cpu_inference_forward(module, query, key, value, mask, scaling=scaling)
        expected = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling).transpose(1, 2)
        assert weights is None
        assert ours.shape == (3, 1, 4, 16)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)


def test_float32_and_causal_queries_go_to_sdpa(module):
    torch.manual_seed(0)
    query, key, value = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    for tensors, causal in (((query, key, value), False), ((query.bfloat16(), key.bfloat16(), value.bfloat16()), True)):
        ours, _ = sdpa_cpu_inference_forward(module, *tensors, None, scaling=1.0, is_causal=causal)
        sdpa, _ = sdpa_attention_forward(module, *tensors, None, scaling=1.0, is_causal=causal)
        assert torch.equal(ours, sdpa)


def test_bfloat16_self_attention_is_as_accurate_as_the_flash_kernel(module):
    # Peaked scores (up to ~60, like Whisper's first encoder layer), more queries than one block.
    torch.manual_seed(0)
    query, key, value = (torch.randn(2, 3, 600, 64).bfloat16() for _ in range(3))
    query = query * 2
    exact = F.scaled_dot_product_attention(query.float(), key.float(), value.float(), scale=1.0).transpose(1, 2)
    flash = F.scaled_dot_product_attention(query, key, value, scale=1.0).transpose(1, 2).float()
    ours, _ = sdpa_cpu_inference_forward(module, query, key, value, None, scaling=1.0)
    assert ours.dtype == torch.bfloat16 and ours.shape == (2, 600, 3, 64)
    flash_error, our_error = (flash - exact).abs().mean(), (ours.float() - exact).abs().mean()
    assert our_error < 1.5 * flash_error
    # Without the row-maximum offset the bfloat16 scores alone would be ~10x worse; this must stay well below that.
    naive = torch.matmul(torch.matmul(query, key.transpose(2, 3)).softmax(-1), value).transpose(1, 2).float()
    assert our_error < (naive - exact).abs().mean() / 4


def test_generation_is_unchanged(tiny_model_dir):
    features = torch.randn(3, 80, 3000)
    outputs = {}
    for implementation in ("sdpa", "fast"):
        model = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
        if implementation == "fast":
            enable_fast_cpu_attention(model)
            assert model.config._attn_implementation == NAME
        with torch.inference_mode():
            outputs[implementation] = model.generate(features, language="sv", task="transcribe", max_new_tokens=30,
                                                     return_dict_in_generate=True, output_scores=True)
    assert torch.equal(outputs["sdpa"].sequences, outputs["fast"].sequences)
    for ours, theirs in zip(outputs["fast"].scores, outputs["sdpa"].scores):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_other_implementations_are_left_alone(tiny_model_dir):
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir, attn_implementation="eager")
    enable_fast_cpu_attention(model)
    assert model.config._attn_implementation == "eager"


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx512_bf16": True}, torch.bfloat16), ({"amx_bf16": True}, torch.bfloat16),
    ({"avx512_bf16": False, "avx2": True}, torch.float32), ({}, torch.float32)])
def test_auto_dtype_follows_the_cpu(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert choose_dtype("auto") == expected
    assert choose_dtype("float32") == torch.float32


def test_bfloat16_encoder_stays_as_close_to_float32_as_with_sdpa(tiny_model_dir):
    features = torch.randn(2, 80, 3000)
    model = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    with torch.inference_mode():
        exact = model.get_encoder()(features).last_hidden_state
        model.to(torch.bfloat16)
        with_sdpa = model.get_encoder()(features.bfloat16()).last_hidden_state.float()
        enable_fast_cpu_attention(model)
        ours = model.get_encoder()(features.bfloat16()).last_hidden_state.float()
    assert not torch.equal(ours, with_sdpa)  # the blocked path ran
    assert (ours - exact).abs().mean() < 1.5 * (with_sdpa - exact).abs().mean()
