"""Load a Whisper checkpoint (Hub, local or offline copy) and say how to force its language at generate time."""

import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from .offline_models import resolve_model


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
