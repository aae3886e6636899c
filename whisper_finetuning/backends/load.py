"""Load a model once for inference, with the backend that runs its kind: what a path holds (a Hub id, a checkpoint
folder, a LoRA adapter folder, a CTranslate2 export) decides it, in this one place. A LoRA adapter folder is loaded
by `loading.load_whisper` onto its base model and merged (a plain Whisper model then runs); a CTranslate2 export
(`python -m whisper_finetuning.export`) is run by faster-whisper in the type it was exported in, what will be
deployed. run_eval.py, the app, live captions and the export's parity check load through `load_backend`.
"""

import json
from pathlib import Path

from ..loading import is_adapter
from .base import Backend, ModelFormatError
from .ctranslate2_backend import CTranslate2Backend
from .transformers_backend import TransformersBackend


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
    """Raise ModelFormatError, with what to do instead, for folders that hold no Whisper model the kit can run
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


def load_backend(name_or_path: str, backend: str = "auto", dtype: str = "auto", device: str | None = None,
                 **transformers_kwargs) -> Backend:
    """Load a Hub id or a folder the kit wrote: a training output, a checkpoint-N folder, a LoRA adapter or a
    CTranslate2 export. `backend` "auto" picks by what the folder is; "transformers" or "ctranslate2" forces one.
    `device`: None leaves a transformers model where it loads and lets CTranslate2 choose. `dtype` and
    `transformers_kwargs` (attn_implementation, revision, cache_dir, token) apply to transformers models; an export
    runs in the type it was exported in. Raises ModelFormatError when the path holds nothing the kit can run."""
    check_checkpoint(name_or_path)
    if backend == "auto":
        backend = "ctranslate2" if checkpoint_kind(name_or_path) == "ctranslate2" else "transformers"
    if backend == CTranslate2Backend.name:
        return CTranslate2Backend.load(name_or_path, device=device)
    if backend == TransformersBackend.name:
        return TransformersBackend.load(name_or_path, dtype=dtype, device=device, **transformers_kwargs)
    raise ValueError(f"unknown backend {backend!r}: auto, transformers or ctranslate2")
