"""Load a Whisper checkpoint (Hub, local folder or offline copy), choose the inference dtype, and say how to force
the language at generate time."""

import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from .offline.resolver import resolve_model


def load_whisper(name_or_path: str, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa",
                 model_kwargs: dict | None = None, **hub_kwargs):
    """(model, processor) for a Hub id, a local directory, or a model with an offline copy; model in eval mode.

    `model_kwargs` override config values (dropout, SpecAugment); `hub_kwargs` (cache_dir, revision, token) go to
    the Hub look-ups."""
    path = resolve_model(name_or_path, **hub_kwargs)
    processor = WhisperProcessor.from_pretrained(path, **hub_kwargs)
    model = WhisperForConditionalGeneration.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation, **(model_kwargs or {}), **hub_kwargs).eval()
    return model, processor


def language_kwargs(model, language: str | None, task: str = "transcribe") -> dict:
    """generate() arguments that force language and task; English-only checkpoints take neither."""
    if not getattr(model.generation_config, "is_multilingual", True):
        if language not in (None, "en", "english"):
            raise ValueError(f"{model.name_or_path} is an English-only model and cannot transcribe {language!r}")
        return {}
    return {"language": language, "task": task}


def cpu_has_native_bfloat16() -> bool:
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def choose_dtype(name: str) -> torch.dtype:
    """auto: float16 on GPU; bfloat16 on CPUs that compute in it natively (about twice as fast as float32, same WER
    within noise: see the README); float32 elsewhere."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32
    if name not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"--dtype must be auto, float32, float16 or bfloat16, not {name!r}")
    return getattr(torch, name)
