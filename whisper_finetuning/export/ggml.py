"""Convert a Whisper checkpoint to whisper.cpp's ggml format (one ggml-model.bin), and transcribe with it.

whisper.cpp ships models/convert-h5-to-ggml.py for Hugging Face checkpoints, but it does not work with today's
transformers: it reads vocab.json and added_tokens.json, which transformers 5 no longer writes (tokenizer.json
only), it needs a clone of openai/whisper for the mel filters, and its float32 output passes through float16 first.
We write the same file from the loaded model, laid out as whisper.cpp's `whisper_model_load` reads it:

    int32 magic "ggml"; int32 hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
    n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
    mel filters: int32 n_mel, int32 n_fft, float32[n_mel * n_fft]
    vocabulary: int32 count, then per token int32 length and its bytes (the BPE tokens below <|endoftext|>;
        whisper.cpp names the special tokens above them itself, from n_vocab)
    tensors: int32 n_dims, int32 name length, int32 type, int32 dims (innermost first), name, data

The mel filters are the feature extractor's (Slaney-normalised, as OpenAI's mel_filters.npz). The large matrices
are float16 (or float32, or q8_0: blocks of 32 int8 with one float16 scale); biases, norms and positional
embeddings stay float32 and the convolutions float16, as whisper.cpp expects.
"""

import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.audio import SAMPLING_RATE
from ..evaluation.transcriber import LONG_FORM_SECONDS, Skip, Transcriber, Transcript
from ..files import write_json_atomic
from .checkpoint import ExportError, is_multilingual

logger = logging.getLogger(__name__)

MAGIC = 0x67676D6C  # "ggml"
MODEL_FILE = "ggml-model.bin"
# ggml's type ids (ggml.h: GGML_TYPE_*), and the file types whisper.cpp reads from hparams (GGML_FTYPE_*); a
# quantized file type carries ggml's quantization version (2) times 1000, as whisper.cpp's quantize tool writes it.
F32, F16, Q8_0 = 0, 1, 8
FILE_TYPES = {"float32": 0, "float16": 1, "q8_0": 7 + 2 * 1000}
QUANTIZATIONS = tuple(FILE_TYPES)
Q8_BLOCK = 32

# Hugging Face parameter names -> whisper.cpp's (OpenAI's original names).
LAYER_PARTS = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
               "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln",
               "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
               "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
               "encoder_attn_layer_norm": "cross_attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
               "final_layer_norm": "mlp_ln"}
TOP_LEVEL = {"encoder.embed_positions.weight": "encoder.positional_embedding",
             "encoder.layer_norm.weight": "encoder.ln_post.weight", "encoder.layer_norm.bias": "encoder.ln_post.bias",
             "decoder.embed_positions.weight": "decoder.positional_embedding",
             "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
             "decoder.layer_norm.weight": "decoder.ln.weight", "decoder.layer_norm.bias": "decoder.ln.bias"}
ALWAYS_FLOAT32 = ("encoder.positional_embedding", "decoder.positional_embedding", "encoder.conv1.bias",
                  "encoder.conv2.bias")


def whisper_cpp_name(name: str) -> str:
    """model.encoder.layers.3.self_attn.q_proj.weight -> encoder.blocks.3.attn.query.weight"""
    name = name.removeprefix("model.")
    if name in TOP_LEVEL:
        return TOP_LEVEL[name]
    stack, kind, *rest = name.split(".")
    if kind != "layers":
        return name  # encoder.conv1.weight and the like keep their names
    index, *part, parameter = rest
    return f"{stack}.blocks.{index}.{LAYER_PARTS['.'.join(part)]}.{parameter}"


def quantize_q8_0(matrix: np.ndarray) -> bytes:
    """ggml's q8_0: per block of 32 values, a float16 scale (largest magnitude / 127) and 32 int8."""
    blocks = matrix.astype(np.float32).reshape(-1, Q8_BLOCK)
    scale = np.abs(blocks).max(axis=1, keepdims=True) / 127
    inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
    scaled = blocks * inverse
    quants = (np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)).astype(np.int8)  # C's roundf, as ggml rounds
    record = np.dtype([("scale", "<f2"), ("quants", "i1", Q8_BLOCK)])
    packed = np.empty(len(blocks), dtype=record)
    packed["scale"], packed["quants"] = scale[:, 0].astype(np.float16), quants
    return packed.tobytes()


def tensor_record(name: str, array: np.ndarray, quantization: str) -> tuple[int, bytes]:
    """(ggml type, bytes) of one tensor in the file type `quantization`."""
    if array.ndim < 2 or name in ALWAYS_FLOAT32 or quantization == "float32":
        return F32, array.astype("<f4").tobytes()
    if quantization == "q8_0" and array.ndim == 2:  # the convolutions (3-D) stay float16, as whisper.cpp wants
        if array.shape[-1] % Q8_BLOCK:
            raise ExportError(f"q8_0 needs rows of a multiple of {Q8_BLOCK} values; {name} has {array.shape[-1]}")
        return Q8_0, quantize_q8_0(array)
    return F16, array.astype("<f2").tobytes()


def vocabulary(tokenizer) -> list[bytes]:
    """The byte strings of the BPE tokens below <|endoftext|>, in id order."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_of = {character: byte for byte, character in bytes_to_unicode().items()}
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    tokens = tokenizer.convert_ids_to_tokens(list(range(end_of_text)))
    return [bytes(byte_of[character] for character in token) for token in tokens]


def write_ggml(model, processor, path: Path, quantization: str) -> None:
    config = model.config
    if config.encoder_ffn_dim != 4 * config.d_model or config.decoder_ffn_dim != 4 * config.d_model:
        raise ExportError(f"whisper.cpp assumes feed-forward layers 4 x d_model wide; this model has d_model "
                          f"{config.d_model} and {config.encoder_ffn_dim}/{config.decoder_ffn_dim}")
    hparams = [config.vocab_size, config.max_source_positions, config.d_model, config.encoder_attention_heads,
               config.encoder_layers, config.max_target_positions, config.d_model, config.decoder_attention_heads,
               config.decoder_layers, config.num_mel_bins, FILE_TYPES[quantization]]
    filters = np.asarray(processor.feature_extractor.mel_filters, dtype="<f4").T  # [n_mels, 1 + n_fft / 2]
    tokens = vocabulary(processor.tokenizer)
    with open(path, "wb") as file:
        file.write(struct.pack("<12i", MAGIC, *hparams))
        file.write(struct.pack("<2i", *filters.shape) + np.ascontiguousarray(filters).tobytes())
        file.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            file.write(struct.pack("<i", len(token)) + token)
        for hf_name, tensor in model.state_dict().items():
            if hf_name == "proj_out.weight":  # tied to the token embeddings
                continue
            name = whisper_cpp_name(hf_name)
            array = tensor.detach().float().numpy()
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                array = array.reshape(-1, 1)  # whisper.cpp broadcasts them over time as [n_state, 1]
            kind, data = tensor_record(name, array, quantization)
            encoded = name.encode()
            file.write(struct.pack(f"<{3 + array.ndim}i", array.ndim, len(encoded), kind, *reversed(array.shape)))
            file.write(encoded + data)


def convert_to_ggml(model, processor, output_dir: Path, quantization: str) -> Path:
    """Write `output_dir`/ggml-model.bin (with export.json), checked by loading it with whisper.cpp."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown ggml quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = output_dir / f".{MODEL_FILE}.partial"
    write_ggml(model, processor, partial, quantization)
    check_loads_in_whisper_cpp(partial, model)
    partial.rename(output_dir / MODEL_FILE)
    write_json_atomic(output_dir / "export.json", {"format": "ggml", "quantization": quantization})
    return output_dir


def check_loads_in_whisper_cpp(path: Path, model) -> None:
    import _pywhispercpp as whisper_cpp

    context = whisper_cpp.whisper_init_from_file_with_params(str(path), whisper_cpp.whisper_context_default_params())
    if context is None:
        raise ExportError(f"whisper.cpp could not load {path} (its log above says why)")
    try:
        loaded = (whisper_cpp.whisper_model_n_vocab(context), whisper_cpp.whisper_model_n_mels(context),
                  bool(whisper_cpp.whisper_is_multilingual(context)))
    finally:
        whisper_cpp.whisper_free(context)
    expected = (model.config.vocab_size, model.config.num_mel_bins, is_multilingual(model))
    if loaded != expected:
        raise ExportError(f"whisper.cpp reads {path} as vocabulary {loaded[0]}, {loaded[1]} mel bins, multilingual "
                          f"{loaded[2]}; the model has {expected}")


def load_whisper_cpp(export_dir: str, threads: int = 0):
    """A pywhispercpp Model of an export folder (greedy decoding, no temperature fallback: see WhisperCppTranscriber)."""
    import torch
    from pywhispercpp.model import Model

    path = Path(export_dir) / MODEL_FILE
    if not path.is_file():
        raise OSError(f"{export_dir} has no {MODEL_FILE}: export it with `python -m whisper_finetuning.export --to ggml`")
    return Model(str(path), redirect_whispercpp_logs_to=None, n_threads=threads or torch.get_num_threads(),
                 print_progress=False, print_realtime=False, print_timestamps=False)


@dataclass
class WhisperCppTranscriber(Transcriber):
    """Rows transcribed one clip at a time by whisper.cpp from the audio (whisper.cpp computes its own log-mel, as
    it will when deployed). `backend`: whisper.cpp's model from `load_whisper_cpp` (not a backends.Backend: it takes
    audio, not log-mel batches; this class replaces the batching); `generate_kwargs`: language (absent or None:
    detected) and task. Decoding is greedy with OpenAI's suppressed non-speech tokens and no temperature fallback,
    as the kit's batched short-form decoding; clips over 30 s go through whisper.cpp's own long-form windows with
    its defaults."""

    generate_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.generate_kwargs) - {"language", "task", "num_beams", "return_timestamps"}
        if unknown or (self.generate_kwargs.get("num_beams") or 1) > 1:
            raise ValueError(f"the whisper.cpp check decodes greedily and takes language and task only, not "
                             f"{', '.join(sorted(unknown)) or 'num_beams > 1'}")
        language = self.generate_kwargs.get("language")
        self.options = {"language": language or "auto", "detect_language": False,
                        "translate": self.generate_kwargs.get("task") == "translate", "suppress_nst": True,
                        "no_context": True}
        self.transcribe_clip(np.zeros(SAMPLING_RATE, np.float32))  # warm-up, kept out of the throughput

    def transcribe_clip(self, samples: np.ndarray) -> str:
        short = len(samples) / SAMPLING_RATE <= LONG_FORM_SECONDS
        options = {**self.options, "no_timestamps": short, "single_segment": short,
                   "temperature_inc": 0.0 if short else 0.2}
        segments = self.backend.transcribe(np.ascontiguousarray(samples, dtype=np.float32), **options)
        return " ".join(segment.text for segment in segments).strip()

    def _batches(self, rows: list[dict]):
        for row in rows:
            if self.stop.is_set():
                return
            samples = self._decode(row)
            if isinstance(samples, Skip):
                logger.warning("Skipping %s (%s): %s", row.get("id") or "a sample", samples.reason, samples.detail)
                yield [Transcript(row, None, 0.0, samples)]
            else:
                yield [Transcript(row, self.transcribe_clip(samples), len(samples) / SAMPLING_RATE, None)]
