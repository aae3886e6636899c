"""Write a Hugging Face Whisper state dict as a CTranslate2 model.bin, the way CTranslate2's converter lays it out.

Test-only: it lets unit tests build tiny CTranslate2 models, and spells out the fused layout independently of the
kit's converter (which goes the other way).
"""

import struct

import numpy as np

DTYPE_CODES = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
               np.dtype(np.float16): 4}


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def ct2_variables(state: dict, encoder_heads: int, decoder_heads: int, dtype=np.float16) -> dict:
    """CTranslate2 variable name -> array, fusing q/k/v exactly as CTranslate2 does (zero k bias)."""
    s = {k: v.detach().float().numpy() for k, v in state.items()}
    out = {}

    def weights(ct2, hf, bias=True):
        out[f"{ct2}/weight"] = s[f"{hf}.weight"]
        if bias:
            out[f"{ct2}/bias"] = s[f"{hf}.bias"]

    def norm(ct2, hf):
        out[f"{ct2}/gamma"] = s[f"{hf}.weight"]
        out[f"{ct2}/beta"] = s[f"{hf}.bias"]

    def fused(ct2, hf_projs):
        out[f"{ct2}/weight"] = np.concatenate([s[f"{p}.weight"] for p in hf_projs])
        biases = [s.get(f"{p}.bias", np.zeros(s[f"{p}.weight"].shape[0], np.float32)) for p in hf_projs]
        out[f"{ct2}/bias"] = np.concatenate(biases)

    for stack in ("encoder", "decoder"):
        layers = sorted({int(k.split(".")[3]) for k in s if k.startswith(f"model.{stack}.layers.")})
        for i in layers:
            hf, ct2 = f"model.{stack}.layers.{i}", f"{stack}/layer_{i}"
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            fused(f"{ct2}/self_attention/linear_0", [f"{hf}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
            weights(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            if stack == "decoder":
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
                weights(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                fused(f"{ct2}/attention/linear_1", [f"{hf}.encoder_attn.{p}" for p in ("k_proj", "v_proj")])
                weights(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
            weights(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            weights(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
        norm(f"{stack}/layer_norm", f"model.{stack}.layer_norm")
        out[f"{stack}/position_encodings/encodings"] = s[f"model.{stack}.embed_positions.weight"]
    weights("encoder/conv1", "model.encoder.conv1")
    weights("encoder/conv2", "model.encoder.conv2")
    out["decoder/embeddings/weight"] = s["model.decoder.embed_tokens.weight"]
    out = {k: v.astype(dtype) for k, v in out.items()}
    out.update({
        "encoder/num_heads": np.array(encoder_heads, np.int16), "decoder/num_heads": np.array(decoder_heads, np.int16),
        "decoder/activation": np.array(3, np.int8), "decoder/pre_norm": np.array(1, np.int8),
        "decoder/alibi": np.array(0, np.int8), "decoder/scale_embeddings": np.array(0, np.int8),
    })
    return out


def write_ct2_model(variables: dict, spec_name: str = "WhisperSpec", version: int = 6) -> bytes:
    chunks = [struct.pack("<I", version), _string(spec_name), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, array in sorted(variables.items()):
        array = np.asarray(array)  # (ascontiguousarray would turn scalars into 1-d arrays)
        chunks += [_string(name), struct.pack("<B", array.ndim), *(struct.pack("<I", d) for d in array.shape),
                   struct.pack("<BI", DTYPE_CODES[array.dtype], array.nbytes), array.tobytes()]
    chunks += [struct.pack("<I", 1), _string("decoder/projection/weight"), _string("decoder/embeddings/weight")]
    return b"".join(chunks)
