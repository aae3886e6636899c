"""Convert a Whisper checkpoint to CTranslate2, the format faster-whisper runs, with CTranslate2's own converter.

`TransformersConverter` writes the weights and a config.json with the alignment heads, language ids and suppressed
tokens from the generation config, and copies the files it is told to. Around it we add what it leaves to chance:
- the model goes through the kit's loader first (a LoRA adapter is merged, an offline copy is found) and is saved to
  a temporary folder with tokenizer.json and preprocessor_config.json: transformers 5 keeps the feature extractor in
  processor_config.json, and faster-whisper, without preprocessor_config.json, runs a large-v3 on 80 mel bins;
- language ids: without `lang_to_id` in the generation config the converter falls back to the tokenizer's
  `additional_special_tokens`, which transformers 5 tokenizers no longer have, and writes none; we fill them in;
- the processor files and generation config go along, so the kit reads tokenizer, language and task from the
  export alone (run_eval.py --backend ctranslate2, the parity check).
faster-whisper then loads the folder as it is, which the export checks before it reports success.
"""

import json
import logging
import tempfile
from pathlib import Path

from ..files import write_json_atomic
from .checkpoint import ExportError, is_multilingual, language_token_ids

logger = logging.getLogger(__name__)

# CTranslate2's weight types (ctranslate2.converters.Converter.convert). A CPU computes in float32, int8_float32 and
# int8; an export in another type runs there converted to the nearest of these (float16 -> float32).
QUANTIZATIONS = ("float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16")
# Copied next to model.bin when the saved checkpoint has them (faster-whisper reads the first two).
PROCESSOR_FILES = ("tokenizer.json", "preprocessor_config.json", "tokenizer_config.json", "processor_config.json",
                   "generation_config.json", "normalizer.json")


def save_checkpoint(model, processor, folder: Path) -> None:
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    processor.feature_extractor.save_pretrained(folder)  # preprocessor_config.json


def complete_config(export_dir: Path, model, tokenizer) -> None:
    """Fill in the language ids the converter could not find (see the module docstring)."""
    config_file = export_dir / "config.json"
    config = json.loads(config_file.read_text())
    if is_multilingual(model) and not config.get("lang_ids"):
        config["lang_ids"] = language_token_ids(tokenizer)
        logger.info("Added the %d language ids to config.json (the generation config has no lang_to_id)",
                    len(config["lang_ids"]))
        write_json_atomic(config_file, config)


def convert_to_ctranslate2(model, processor, output_dir: Path, quantization: str) -> Path:
    """Write the CTranslate2 model of a loaded (merged) Whisper into `output_dir`, which must not exist; the
    conversion runs in a hidden folder next to it and is renamed into place when complete."""
    if quantization not in QUANTIZATIONS:
        raise ExportError(f"unknown quantization {quantization!r}; choose one of {', '.join(QUANTIZATIONS)}")
    from ctranslate2.converters import TransformersConverter

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=f".{output_dir.name}.") as work:
        checkpoint, converted = Path(work) / "checkpoint", Path(work) / "ctranslate2"
        save_checkpoint(model, processor, checkpoint)
        copy_files = [name for name in PROCESSOR_FILES if (checkpoint / name).is_file()]
        TransformersConverter(str(checkpoint), copy_files=copy_files).convert(str(converted),
                                                                              quantization=quantization)
        complete_config(converted, model, processor.tokenizer)
        write_json_atomic(converted / "export.json", {"format": "ctranslate2", "quantization": quantization})
        check_loads_in_faster_whisper(converted, model, processor.tokenizer)
        converted.rename(output_dir)
    return output_dir


def check_loads_in_faster_whisper(export_dir: Path, model, tokenizer) -> None:
    """faster-whisper must load the folder as it is and see the model's mel bins and languages."""
    from faster_whisper import WhisperModel

    loaded = WhisperModel(str(export_dir), device="cpu", compute_type="default", cpu_threads=1)
    mel_bins = loaded.feat_kwargs.get("feature_size", 80)  # faster-whisper's default without the file
    if mel_bins != model.config.num_mel_bins or loaded.model.n_mels != model.config.num_mel_bins:
        raise ExportError(f"faster-whisper reads {mel_bins} mel bins from {export_dir} but the model has "
                          f"{model.config.num_mel_bins} (preprocessor_config.json is missing or wrong)")
    if loaded.model.is_multilingual != is_multilingual(model):
        raise ExportError(f"faster-whisper takes {export_dir} for "
                          f"{'a multilingual' if loaded.model.is_multilingual else 'an English-only'} model, but the "
                          f"checkpoint's generation config says otherwise")
    lang_ids = json.loads((export_dir / "config.json").read_text())["lang_ids"]
    if is_multilingual(model) and lang_ids != language_token_ids(tokenizer):
        raise ExportError(f"config.json in {export_dir} lists {len(lang_ids)} language ids, not the tokenizer's "
                          f"{len(language_token_ids(tokenizer))} (<|startoftranscript|> + 1 up to <|translate|>)")
