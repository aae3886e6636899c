"""Convert a CTranslate2 Whisper model (as faster-whisper ships it) into a Hugging Face model directory.

CTranslate2 stores OpenAI's Whisper weights with the attention projections fused: self-attention q, k and v in one
`linear_0`, cross-attention k and v in one `linear_1`. Whisper's k projections have no bias, so the fused bias holds
zeros in the k rows, which we check and drop. float16 tensors are widened to float32, which is exact.
"""

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperProcessor,
    WhisperTokenizer,
)

from .ct2_reader import CT2FormatError, CT2Model

GELU = 3  # CTranslate2 ActivationType.GELU
# Whisper's timestamp tokens <|0.00|> ... <|30.00|> fill the vocabulary above the special tokens.
TIMESTAMP_STEP_SECONDS = 0.02
LAYER_NORM = {"gamma": "weight", "beta": "bias"}


def _count_layers(variables: dict, stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    return 1 + max(int(m.group(1)) for name in variables if (m := pattern.match(name)))


def _linear(hf_prefix: str, weight: np.ndarray, bias: np.ndarray | None) -> dict:
    tensors = {f"{hf_prefix}.weight": weight}
    if bias is not None:
        tensors[f"{hf_prefix}.bias"] = bias
    return tensors


def _layer_norm(variables: dict, ct2_prefix: str, hf_prefix: str) -> dict:
    return {f"{hf_prefix}.{LAYER_NORM[k]}": variables[f"{ct2_prefix}/{k}"] for k in ("gamma", "beta")}


def _split_fused(variables: dict, ct2_prefix: str, hf_prefix: str, projections: list[str]) -> dict:
    """Split a fused projection (rows stacked in the order of `projections`) into separate HF linears."""
    weights = np.split(variables[f"{ct2_prefix}/weight"], len(projections), axis=0)
    biases = np.split(variables[f"{ct2_prefix}/bias"], len(projections), axis=0)
    tensors = {}
    for name, weight, bias in zip(projections, weights, biases):
        if name == "k_proj":
            if np.any(bias != 0):
                raise CT2FormatError(f"{ct2_prefix}: Whisper's k projection has no bias, but this one is non-zero")
            bias = None
        tensors.update(_linear(f"{hf_prefix}.{name}", weight, bias))
    return tensors


def _plain_linear(variables: dict, ct2_prefix: str, hf_prefix: str) -> dict:
    return _linear(hf_prefix, variables[f"{ct2_prefix}/weight"], variables[f"{ct2_prefix}/bias"])


def _layer_tensors(variables: dict, stack: str, index: int) -> dict:
    ct2 = f"{stack}/layer_{index}"
    hf = f"model.{stack}.layers.{index}"
    tensors = {}
    tensors.update(_layer_norm(variables, f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm"))
    tensors.update(_split_fused(variables, f"{ct2}/self_attention/linear_0", f"{hf}.self_attn", ["q_proj", "k_proj", "v_proj"]))
    tensors.update(_plain_linear(variables, f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj"))
    if stack == "decoder":
        tensors.update(_layer_norm(variables, f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm"))
        tensors.update(_plain_linear(variables, f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj"))
        tensors.update(_split_fused(variables, f"{ct2}/attention/linear_1", f"{hf}.encoder_attn", ["k_proj", "v_proj"]))
        tensors.update(_plain_linear(variables, f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj"))
    tensors.update(_layer_norm(variables, f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm"))
    tensors.update(_plain_linear(variables, f"{ct2}/ffn/linear_0", f"{hf}.fc1"))
    tensors.update(_plain_linear(variables, f"{ct2}/ffn/linear_1", f"{hf}.fc2"))
    return tensors


def hf_state_dict(model: CT2Model) -> dict[str, torch.Tensor]:
    """Map CTranslate2 Whisper variables to `WhisperForConditionalGeneration` parameter names, as float32."""
    v = model.variables
    if model.spec_name != "WhisperSpec":
        raise CT2FormatError(f"expected a Whisper model, got a CTranslate2 {model.spec_name}")
    expected = {"decoder/activation": GELU, "decoder/pre_norm": 1, "decoder/alibi": 0, "decoder/scale_embeddings": 0}
    for name, value in expected.items():
        if name in v and int(v[name]) != value:
            raise CT2FormatError(f"{name} is {int(v[name])}, but Whisper uses {value}")

    tensors = {}
    for stack in ("encoder", "decoder"):
        tensors[f"model.{stack}.embed_positions.weight"] = v[f"{stack}/position_encodings/encodings"]
        for index in range(_count_layers(v, stack)):
            tensors.update(_layer_tensors(v, stack, index))
        tensors.update(_layer_norm(v, f"{stack}/layer_norm", f"model.{stack}.layer_norm"))
    for conv in ("conv1", "conv2"):
        tensors.update(_plain_linear(v, f"encoder/{conv}", f"model.encoder.{conv}"))
    # The output projection is tied to the token embeddings (an alias in model.bin, tie_word_embeddings in HF).
    tensors["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    return {name: torch.tensor(np.asarray(array, dtype=np.float32)) for name, array in tensors.items()}  # copies


def whisper_config(model: CT2Model, ct2_config: dict, tokenizer: WhisperTokenizer, name_or_path: str) -> WhisperConfig:
    v = model.variables
    vocab_size, d_model = v["decoder/embeddings/weight"].shape
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return WhisperConfig(
        name_or_path=name_or_path,
        architectures=["WhisperForConditionalGeneration"],
        vocab_size=int(vocab_size),
        num_mel_bins=int(v["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
        bos_token_id=end_of_text,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        num_hidden_layers=_count_layers(v, "encoder"),
        tie_word_embeddings=True,
        # Kept in the model config too, as on OpenAI's Hub checkpoints; the class default is tiny.en's.
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )


def generation_config(ct2_config: dict, config: WhisperConfig, tokenizer: WhisperTokenizer) -> GenerationConfig:
    """The generation config OpenAI's checkpoints carry on the Hub, rebuilt from the CTranslate2 config.json."""
    token_id = tokenizer.convert_tokens_to_ids
    # OpenAI's rule: the multilingual vocabulary has one more token (51865 vs 51864 for the .en models).
    is_multilingual = config.vocab_size >= 51865
    extra = {}
    if is_multilingual:
        extra["lang_to_id"] = {tokenizer.convert_ids_to_tokens(i): i for i in ct2_config["lang_ids"]}
        extra["task_to_id"] = {"transcribe": token_id("<|transcribe|>"), "translate": token_id("<|translate|>")}
        # The Hub configs say this with forced_decoder_ids, which transformers deprecated; without either,
        # generate() with no language gives no task token and the model rambles.
        extra["task"] = "transcribe"
    return GenerationConfig(
        alignment_heads=ct2_config["alignment_heads"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        suppress_tokens=ct2_config["suppress_ids"],
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        max_length=config.max_target_positions,
        is_multilingual=is_multilingual,
        no_timestamps_token_id=token_id("<|notimestamps|>"),
        prev_sot_token_id=token_id("<|startofprev|>"),
        max_initial_timestamp_index=50,  # OpenAI's max_initial_timestamp of 1.0 s at 0.02 s per step
        return_timestamps=False,
        **extra,
    )


def build_tokenizer(tokenizer_file: Path, vocab_size: int) -> WhisperTokenizer:
    """Load the packaged tokenizer.json and add the timestamp tokens that fill the rest of the vocabulary."""
    with tempfile.TemporaryDirectory() as work_dir:
        shutil.copy(tokenizer_file, Path(work_dir) / "tokenizer.json")
        (Path(work_dir) / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "WhisperTokenizer", "model_max_length": 1024, "errors": "replace"})
        )
        tokenizer = WhisperTokenizer.from_pretrained(work_dir)
    tokenizer.pad_token = "<|endoftext|>"  # as on OpenAI's Hub checkpoints; batching and padding need it
    num_timestamps = vocab_size - len(tokenizer)
    if num_timestamps < 0:
        raise CT2FormatError(f"tokenizer has {len(tokenizer)} tokens but the model only {vocab_size}")
    tokenizer.add_tokens([f"<|{i * TIMESTAMP_STEP_SECONDS:.2f}|>" for i in range(num_timestamps)])
    return tokenizer


def english_spelling_map() -> dict | None:
    """OpenAI's British-to-American spelling map (normalizer.json on the Hub), shipped by whisper-normalizer."""
    try:
        from importlib.resources import files

        return json.loads(files("whisper_normalizer").joinpath("normalizers/english.json").read_text())
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def convert(model: CT2Model, ct2_config: dict, tokenizer_file: Path, output_dir: Path, name_or_path: str) -> None:
    """Write a complete Hugging Face Whisper directory (weights, configs, tokenizer, feature extractor)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    vocab_size = model.variables["decoder/embeddings/weight"].shape[0]
    tokenizer = build_tokenizer(tokenizer_file, vocab_size)
    config = whisper_config(model, ct2_config, tokenizer, name_or_path)
    config.save_pretrained(output_dir)
    generation_config(ct2_config, config, tokenizer).save_pretrained(output_dir)
    save_file(hf_state_dict(model), str(output_dir / "model.safetensors"), metadata={"format": "pt"})

    spelling = english_spelling_map()
    if spelling is not None:
        (output_dir / "normalizer.json").write_text(json.dumps(spelling, ensure_ascii=False))
        tokenizer.english_spelling_normalizer = spelling
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(output_dir)
    # transformers 5 keeps the feature extractor inside processor_config.json; other tools (faster-whisper,
    # older transformers) read preprocessor_config.json and fall back to 80 mel bins without it.
    feature_extractor.save_pretrained(output_dir)
