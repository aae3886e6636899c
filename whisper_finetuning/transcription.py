"""Load a Whisper checkpoint (Hub, local or offline copy) and transcribe batches of 16 kHz audio."""

import logging

import numpy as np
import torch
from transformers import WhisperForConditionalGeneration, WhisperProcessor

from .offline_models import resolve_model

logger = logging.getLogger(__name__)


def load_whisper(name_or_path: str, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa",
                 **hub_kwargs):
    """(model, processor) for a Hub id, a local directory, or a model with an offline copy; model in eval mode."""
    path = resolve_model(name_or_path, **hub_kwargs)
    processor = WhisperProcessor.from_pretrained(path, **hub_kwargs)
    model = WhisperForConditionalGeneration.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation, **hub_kwargs).eval()
    return model, processor


def language_kwargs(model, language: str | None, task: str = "transcribe") -> dict:
    """generate() arguments that force language and task; English-only checkpoints take neither."""
    if not getattr(model.generation_config, "is_multilingual", True):
        if language not in (None, "en", "english"):
            raise ValueError(f"{model.name_or_path} is an English-only model and cannot transcribe {language!r}")
        return {}
    return {"language": language, "task": task}


def transcribe(model, processor, audio: list[np.ndarray], language: str | None = None, task: str = "transcribe",
               batch_size: int = 8) -> list[str]:
    """Transcribe 16 kHz mono arrays (up to 30 s each) in batches of similar length; returns texts in input order."""
    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
    texts = [""] * len(audio)
    kwargs = language_kwargs(model, language, task)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        features = processor.feature_extractor(
            [audio[i] for i in batch], sampling_rate=processor.feature_extractor.sampling_rate, return_tensors="pt"
        ).input_features.to(model.device, model.dtype)
        with torch.inference_mode():
            tokens = model.generate(features, **kwargs)
        for i, text in zip(batch, processor.batch_decode(tokens, skip_special_tokens=True)):
            texts[i] = text.strip()
    return texts
