"""The model an export starts from: a Hub id, an offline copy, a checkpoint folder or a LoRA adapter folder (merged
onto its base), loaded in float32 and checked, with errors that name the problem and the fix."""

import json
import logging
from pathlib import Path

import torch
from transformers import WhisperFeatureExtractor

from ..loading import AdapterBaseError, is_adapter, load_whisper

logger = logging.getLogger(__name__)


class ExportError(ValueError):
    pass


def check_model_folder(folder: Path) -> None:
    """Refuse, with the reason, a folder that holds no Whisper checkpoint (a LoRA adapter folder is fine)."""
    if is_adapter(str(folder)):
        return
    if (folder / "model.bin").is_file():
        raise ExportError(f"{folder} is a CTranslate2 model already (model.bin): export the Hugging Face checkpoint "
                          "it was converted from (the training run's output_dir)")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ExportError(f"{folder} is not a Whisper model folder: it has neither config.json nor the "
                          "adapter_config.json of a LoRA adapter. Give the output_dir of a training run, one of its "
                          "checkpoint-N folders, or a Hub id")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "whisper":
        raise ExportError(f"{folder} holds a {model_type or 'model without model_type'!r} model, not Whisper "
                          f"(config.json says model_type {model_type!r}); only Whisper checkpoints can be exported")


def load_for_export(name_or_path: str, **hub_kwargs):
    """(model in float32, processor) ready to convert. The processor's feature extractor always has the model's
    mel-bin count: a large-v3 saved with an 80-bin extractor would otherwise be exported to run on wrong features."""
    if Path(name_or_path).is_dir():
        check_model_folder(Path(name_or_path))
    try:
        model, processor = load_whisper(name_or_path, dtype=torch.float32, **hub_kwargs)
    except AdapterBaseError as error:
        raise ExportError(str(error)) from error
    except OSError as error:
        raise ExportError(f"cannot load {name_or_path}: {error}") from error
    model.config.use_cache = True  # a checkpoint saved with gradient checkpointing has it off
    mel_bins = model.config.num_mel_bins
    if processor.feature_extractor.feature_size != mel_bins:
        logger.warning("%s has a %d-bin feature extractor for a model with %d mel bins; exporting a %d-bin one",
                       name_or_path, processor.feature_extractor.feature_size, mel_bins, mel_bins)
        processor.feature_extractor = WhisperFeatureExtractor(feature_size=mel_bins)
    return model, processor


def language_token_ids(tokenizer) -> list[int]:
    """The language tokens' ids: OpenAI's layout puts them right after <|startoftranscript|> and before
    <|translate|> (99 languages, 100 from large-v3 on, which added <|yue|>)."""
    start = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    end = tokenizer.convert_tokens_to_ids("<|translate|>")
    return list(range(start + 1, end))


def is_multilingual(model) -> bool:
    return bool(getattr(model.generation_config, "is_multilingual", model.config.vocab_size >= 51865))
