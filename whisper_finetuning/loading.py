"""Load a Whisper checkpoint (Hub, local folder, offline copy, or a LoRA adapter folder with its base), choose the
inference dtype, and say how to force the language at generate time."""

import json
from pathlib import Path

import torch
from transformers import GenerationConfig, WhisperForConditionalGeneration, WhisperProcessor

from .files import write_json_atomic
from .offline.resolver import resolve_model

ADAPTER_CONFIG = "adapter_config.json"
# Where an adapter's local base is on this machine. adapter_config.json is pushed with the adapter, so it names a
# local base by its folder name only; this record keeps the path, in the training run's folder, and a leading "_"
# keeps it out of every Hub push (a checkpoint folder, pushed whole, finds it in its run folder).
LOCAL_BASE = "_local_base_model.json"


class AdapterBaseError(OSError):
    pass


def is_adapter(name_or_path: str) -> bool:
    return (Path(name_or_path) / ADAPTER_CONFIG).is_file()


def load_whisper(name_or_path: str, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa",
                 model_kwargs: dict | None = None, **hub_kwargs):
    """(model, processor) for a Hub id, a local directory, or a model with an offline copy; model in eval mode.

    A LoRA adapter folder (adapter_config.json, as training with --use_peft saves it) is loaded onto its base model
    and merged into it, so what comes back is a plain Whisper model. `model_kwargs` override config values (dropout,
    SpecAugment); `hub_kwargs` (cache_dir, revision, token) go to the Hub look-ups."""
    if is_adapter(name_or_path):
        return load_adapter(name_or_path, dtype, attn_implementation, **hub_kwargs)
    path = resolve_model(name_or_path, **hub_kwargs)
    processor = WhisperProcessor.from_pretrained(path, **hub_kwargs)
    model = WhisperForConditionalGeneration.from_pretrained(
        path, dtype=dtype, attn_implementation=attn_implementation, **(model_kwargs or {}), **hub_kwargs).eval()
    return model, processor


def import_peft():
    """The peft package, or an ImportError that says how to install it (it is the `lora` extra)."""
    try:
        import peft
    except ImportError as error:
        raise ImportError("LoRA adapters need peft: pip install -e '.[lora]' (or pip install peft)") from error
    return peft


def load_adapter(folder: str, dtype: torch.dtype = torch.float32, attn_implementation: str = "sdpa", **hub_kwargs):
    """(merged model, processor) of a LoRA adapter folder: its base model (Hub, offline copy or folder; a local base,
    which the adapter names by its folder name, where its run recorded it) with the adapter merged in, the adapter's
    generation config (language, task) and its processor when saved with it."""
    PeftModel = import_peft().PeftModel

    name = json.loads((Path(folder) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not name:
        raise AdapterBaseError(f"{folder} is a LoRA adapter that does not name its base model "
                               f"(base_model_name_or_path in {ADAPTER_CONFIG})")
    base = local_base(folder, name) or name
    try:
        base_model, processor = load_whisper(base, dtype=dtype, attn_implementation=attn_implementation, **hub_kwargs)
    except OSError as error:
        where = f" (the local folder {base}, as {LOCAL_BASE} records it)" if base != name else ""
        raise AdapterBaseError(f"{folder} is a LoRA adapter for {name}{where}, which cannot be found ({error}); make "
                               f"{base} reachable (the Hub, its offline copy, or that folder)") from error
    model = PeftModel.from_pretrained(base_model, folder).merge_and_unload().eval()
    if (Path(folder) / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    if (Path(folder) / "tokenizer_config.json").is_file():
        processor = WhisperProcessor.from_pretrained(folder)
    return model, processor


def record_local_base(run_folder, name: str, path: str) -> None:
    """Record where the local base that an adapter names `name` is on this machine (see LOCAL_BASE)."""
    write_json_atomic(Path(run_folder) / LOCAL_BASE,
                      {"base_model_name_or_path": name, "path": str(Path(path).expanduser().resolve())})


def local_base(folder, name: str) -> str | None:
    """The path of the local base an adapter folder names `name`, as its training run recorded it (in the adapter
    folder, or for a checkpoint-N folder in the run folder above it); None without such a record."""
    folder = Path(folder)
    places = [folder, folder.parent] if folder.name.startswith("checkpoint-") else [folder]
    for place in places:
        record = place / LOCAL_BASE
        if record.is_file():
            recorded = json.loads(record.read_text())
            if recorded.get("base_model_name_or_path") == name:  # the record of this base, not of another run's
                return recorded["path"]
    return None


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
