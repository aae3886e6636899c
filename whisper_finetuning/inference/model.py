"""Load a model once for inference: what kind of checkpoint a path holds, the model in the dtype that suits the
machine, fast CPU attention, and a lock so that callers on several threads (the app's users) take turns.

Every way a model reaches the app or the stream command goes through `load_for_inference`, the one place that
decides how a kind of model is run. A LoRA adapter folder is loaded by `loading.load_whisper` onto its base model
and merged (the app then runs a plain Whisper model); a CTranslate2 export (`python -m whisper_finetuning.export`)
is run by faster-whisper in the type it was exported in (ctranslate2_backend.py), what will be deployed.
"""

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from normalizers import get_language

from ..evaluation.cpu_attention import enable_fast_cpu_attention
from ..export.ct2_transcriber import load_ctranslate2
from ..loading import choose_dtype, is_adapter, language_kwargs, load_whisper


class ModelFormatError(ValueError):
    pass


def checkpoint_kind(name_or_path: str) -> str:
    """"hub" (an id, not a folder), "transformers" (a full checkpoint folder), "lora_adapter" or "ctranslate2"."""
    path = Path(name_or_path)
    if not path.is_dir():
        return "hub"
    if is_adapter(name_or_path):
        return "lora_adapter"
    config_file = path / "config.json"
    if (path / "model.bin").is_file() and (not config_file.is_file() or "model_type" not in _read_json(config_file)):
        return "ctranslate2"
    return "transformers"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"cannot read {path}: {error}") from error


def check_checkpoint(name_or_path: str) -> None:
    """Raise ModelFormatError, with what to do instead, for folders that hold no Whisper model this app can run
    (LoRA adapter folders are fine: `load_whisper` merges them into their base model)."""
    kind = checkpoint_kind(name_or_path)
    path = Path(name_or_path)
    if kind == "transformers":
        if not (path / "config.json").is_file():
            raise ModelFormatError(f"{path} is not a model checkpoint: it has no config.json. Pass a training "
                                   f"output folder, one of its checkpoint-N folders, or a Hub id.")
        model_type = _read_json(path / "config.json").get("model_type")
        if model_type != "whisper":
            raise ModelFormatError(f"{path} holds a {model_type!r} model, not Whisper")


@dataclass
class InferenceModel:
    """A loaded model and its processor. Hold `lock` around every use: one transcription runs at a time."""

    model: object  # a transformers WhisperForConditionalGeneration, or a faster_whisper.WhisperModel
    processor: object
    name: str
    backend: str = "transformers"  # or "ctranslate2"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def is_multilingual(self) -> bool:
        return bool(getattr(self.model.generation_config, "is_multilingual", True))

    def languages(self) -> list[str]:
        """The language codes the model knows, in Whisper's order (["en"] for English-only models)."""
        if not self.is_multilingual:
            return ["en"]
        tokens = getattr(self.model.generation_config, "lang_to_id", {})
        return [token.strip("<|>") for token in sorted(tokens, key=tokens.get)]

    def generate_kwargs(self, language: str | None, task: str = "transcribe") -> dict:
        """Language and task for generate(); None detects the language (multilingual models)."""
        if language is not None:
            language = get_language(language).code
        if language is None and self.is_multilingual:
            return {"task": task}
        return language_kwargs(self.model, language, task)


def load_for_inference(name_or_path: str, dtype: str = "auto") -> InferenceModel:
    """Load a Hub id or a folder the kit wrote: a training output, a checkpoint-N folder, a LoRA adapter or a
    CTranslate2 export (`dtype` applies to transformers models; an export runs in the type it was exported in)."""
    check_checkpoint(name_or_path)
    if checkpoint_kind(name_or_path) == "ctranslate2":
        try:
            model, processor = load_ctranslate2(name_or_path)
        except (OSError, ValueError, RuntimeError) as error:  # processor files missing, model.bin unreadable
            raise ModelFormatError(f"cannot load the CTranslate2 export {name_or_path}: {error}") from error
        return InferenceModel(model, processor, name_or_path, backend="ctranslate2")
    try:
        model, processor = load_whisper(name_or_path, dtype=choose_dtype(dtype))
    except (OSError, ValueError) as error:  # no such id, no processor saved with the model, adapter without base
        raise ModelFormatError(
            f"cannot load {name_or_path}: {error}. A checkpoint folder needs the processor saved with the model "
            f"(WhisperProcessor.from_pretrained(BASE_MODEL).save_pretrained(FOLDER)); the kit's training saves "
            f"it into the output folder and every checkpoint-N.") from error
    enable_fast_cpu_attention(model)
    return InferenceModel(model, processor, name_or_path)
