"""What model cards say about results, shared by training (its model card) and evaluation (its reports):
the Hub identity of a dataset, the leaderboard's `model-index` entries, and the results table.

A dataset read from a local Common Voice release or FLEURS folder is named by its Hub id (the leaderboard knows
those); any other local dataset by its folder or file name, never by a path on this machine.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from huggingface_hub import EvalResult, ModelCardData

TASK = "automatic-speech-recognition"
COMMON_VOICE_HUB = "mozilla-foundation/common_voice_17_0"
FLEURS_HUB = "google/fleurs"


class NamedDataset(Protocol):
    """What a card needs to know of a dataset (data.mixing.DatasetSpec has it; a shared module imports no stage)."""

    name: str
    config: str | None
    split: str


@dataclass
class DatasetIdentity:
    spec: NamedDataset
    dataset_type: str  # what the model-index calls the dataset (a Hub id, or a local dataset's name)
    pretty_name: str


def common_voice_identity(name: str) -> tuple[str, str]:
    """(Hub id, pretty name) of a Common Voice release, from a Hub id or a release folder's name (cv-corpus-17.0-...);
    17.0 when neither says."""
    match = re.search(r"common_voice_(\d+)_0|cv-corpus-(\d+)\.", name.lower())
    version = next((v for v in match.groups() if v), None) if match else None
    if version is None:
        return COMMON_VOICE_HUB, "Common Voice 17.0"
    return f"mozilla-foundation/common_voice_{version}_0", f"Common Voice {version}.0"


def public_name(name: str) -> str:
    """A model or dataset name fit to be shared (cards, pushed files, reports): a Hub id as it is, a local path (one
    that exists here, or any absolute path) reduced to its folder or file name."""
    if not name:
        return name  # Path("") is the working directory
    path = Path(name).expanduser()
    if path.exists():
        return path.resolve().name  # "./" or "model/.." by the folder's real name
    return path.name if path.is_absolute() else name


def without_local_paths(value, local_paths):
    """`value` (a string, or the strings in a list or dict, however nested) with each of these local paths, in any
    absolute form (as given, or with symbolic links resolved), written as its folder or file name (public_name):
    with the data folder /home/me/data/cv, "/home/me/data/cv/clips/1.mp3" becomes "cv/clips/1.mp3". Names that are
    not local paths (Hub ids) change nothing."""
    return _replace_paths(value, _local_path_replacements(local_paths))


def _local_path_replacements(local_paths) -> list[tuple[str, str]]:
    replacements = {}
    for name in local_paths:
        path = Path(name).expanduser() if name else None
        if path is None or not (path.exists() or path.is_absolute()):
            continue  # a Hub id
        for form in (os.path.abspath(path), os.path.realpath(path)):
            if form.rstrip("/"):
                replacements[form.rstrip("/")] = public_name(name)
    # The longest first: a folder inside another is named by its own name
    return sorted(replacements.items(), key=lambda item: len(item[0]), reverse=True)


def _replace_paths(value, replacements: list[tuple[str, str]]):
    if isinstance(value, str):
        for path, name in replacements:
            value = value.replace(path, name)
        return value
    if isinstance(value, dict):
        return {key: _replace_paths(item, replacements) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_paths(item, replacements) for item in value]
    return value


def identify(spec: NamedDataset) -> DatasetIdentity:
    """The Hub identity of a dataset for the model card, also when it was read from a local release folder."""
    lowered = spec.name.lower()
    if "common_voice" in lowered or "cv-corpus" in lowered or "common-voice" in lowered:
        return DatasetIdentity(spec, *common_voice_identity(lowered))
    if "fleurs" in lowered:
        return DatasetIdentity(spec, FLEURS_HUB, "FLEURS")
    name = public_name(spec.name)
    return DatasetIdentity(spec, name, name)


def eval_results(results: list[dict]) -> list[EvalResult]:
    """model-index entries: WER (and CER where the language is scored by it), in percent."""
    entries = []
    for result in results:
        metrics = [("wer", "WER")] + ([("cer", "CER")] if result["metric"] == "cer" else [])
        for metric, name in metrics:
            entries.append(EvalResult(
                task_type=TASK, task_name="Automatic Speech Recognition", dataset_type=result["dataset_type"],
                dataset_name=result["dataset_name"], dataset_config=result["config"], dataset_split=result["split"],
                dataset_args={"language": result["language"]} if result.get("language") else None,
                metric_type=metric, metric_name=name, metric_value=round(result[metric], 2)))
    return entries


def card_data(model_name: str, results: list[dict], language: str | None = None, base_model: str | None = None,
              datasets: list[str] | None = None, tags: list[str] | None = None,
              library_name: str | None = None) -> ModelCardData:
    return ModelCardData(model_name=model_name, language=language, base_model=base_model, datasets=datasets,
                         tags=tags, license="apache-2.0", pipeline_tag=TASK, library_name=library_name,
                         eval_results=eval_results(results))


def _number(value, digits: int) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"  # value != value: nan


def markdown_table(results: list[dict]) -> str:
    lines = ["| dataset | config | split | samples | hours | WER | orthographic WER | CER | RTFx |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['dataset_name']} | {r['config'] or '-'} | {r['split']} | {r['samples']} | "
                     f"{_number(r.get('audio_hours'), 2)} | {_number(r['wer'], 2)} | "
                     f"{_number(r.get('wer_orthographic'), 2)} | {_number(r.get('cer'), 2)} | "
                     f"{_number(r.get('rtfx'), 1)} |")
    return "\n".join(lines) + long_form_table(results)


def long_form_table(results: list[dict]) -> str:
    """The long-form scores of run_eval.py --long_form (evaluation/long_form.py), after the clip table; "" without."""
    scored = [r for r in results if r.get("long_form")]
    if not scored:
        return ""
    lines = ["", "", "Long-form: recordings joined from the test clips, decoded as the app's File tab decodes.", "",
             "| dataset | recordings | hours | clip WER | long-form WER | cue start median s | cue start p90 s | "
             "missed | cues outside | words on silence | words on noise |", "|---" * 11 + "|"]
    for r in scored:
        f = r["long_form"]
        lines.append(f"| {r['dataset_name']} | {f['recordings']} | {_number(f['audio_hours'], 3)} | "
                     f"{_number(r['wer'], 2)} | {_number(f['long_form_wer'], 2)} | "
                     f"{_number(f['cue_start_error_median_s'], 3)} | {_number(f['cue_start_error_p90_s'], 3)} | "
                     f"{f['utterances_missed']} | {f['cues_outside_audio']} | {f['words_on_silence']} | "
                     f"{f['words_on_noise']} |")
    return "\n".join(lines)
