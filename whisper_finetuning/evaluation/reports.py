"""Evaluation reports: results.json, results.md, per-sample predictions and the leaderboard's model-index, and
merging results into an existing model card. `check_output_dir` runs first, before any model or data work.

The reports are written to be shared (a leaderboard, a model card): a local model or dataset is named by its folder
name, a clip by its path inside its dataset's folder, never by a path on this machine. Which model the folder holds
results of, by where it is here, is kept in a local-only record (LOCAL_RECORD)."""

import json
import math
import re
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard

from ..cards import card_data, eval_results, markdown_table, public_name, without_local_paths
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic

RESULTS = "results.json"
MODEL_INDEX = "model_index.yaml"
LOCAL_RECORD = "_evaluated_model.json"  # a leading "_": local only, like the training run's files of that kind


class OutputDirError(RuntimeError):
    pass


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def dataset_label(dataset_name: str, config: str | None, split: str) -> str:
    """How run_eval names a scored dataset in its progress bar and its predictions file: "FLEURS sv_se test"."""
    return f"{dataset_name} {config or ''} {split}".replace("  ", " ")


def predictions_file(result: dict) -> str:
    """The name of the predictions file run_eval wrote next to one of its results."""
    return f"predictions_{slug(dataset_label(result['dataset_name'], result['config'], result['split']))}.jsonl"


def where(name: str) -> str:
    """A model as a Hub id, or a local folder by where it is (./m and /abs/m are the same model)."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def same_model(a: str, b: str) -> bool:
    return where(a) == where(b)


def earlier_model(output_dir: Path, name: str) -> str:
    """The model whose results an output folder holds, which results.json calls `name`: where it was (LOCAL_RECORD,
    when it is the record of that model), else `name` (a Hub id; or a path, as run_eval wrote before it kept paths
    out of results.json)."""
    record = output_dir / LOCAL_RECORD
    if not record.is_file():
        return name
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
        return recorded["path"] if recorded["model"] == name else name
    except (ValueError, KeyError, TypeError) as error:
        raise OutputDirError(f"--output_dir {output_dir} holds a {LOCAL_RECORD} that run_eval did not write "
                             f"({error!r}): pass --overwrite_output_dir to replace it, or choose another "
                             "--output_dir") from error


def check_output_dir(output_dir: Path, model_name: str, revision: str, overwrite: bool) -> None:
    """Fail before any work if output_dir cannot be written, or holds the results of another model or revision
    (the same model's results are replaced)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-test-"):
            pass
    except OSError as error:
        raise OutputDirError(f"cannot write to --output_dir {output_dir}: {error.strerror or error}. Choose a folder "
                             "you can write to") from error
    previous = output_dir / RESULTS
    if overwrite or not previous.is_file():
        return
    try:
        earlier = json.loads(previous.read_text(encoding="utf-8"))
        earlier_name, earlier_revision = earlier["model"], earlier.get("revision", revision)
    except (ValueError, KeyError, TypeError) as error:
        raise OutputDirError(f"--output_dir {output_dir} holds a {RESULTS} that run_eval did not write ({error!r}): "
                             "pass --overwrite_output_dir to replace it, or choose another --output_dir") from error
    model = earlier_model(output_dir, earlier_name)
    if not same_model(model, model_name) or earlier_revision != revision:
        raise OutputDirError(
            f"--output_dir {output_dir} holds the results of {model} (revision {earlier_revision}); this run "
            f"evaluates {model_name} (revision {revision}). Choose another --output_dir, or pass "
            "--overwrite_output_dir to replace them")


def merge_into_card(card: ModelCard, results: list[dict], model_name: str) -> ModelCard:
    """Add or replace this run's results in an existing card (same task, dataset, config, split and metric)."""
    new = eval_results(results)
    keys = {(e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) for e in new}
    kept = [e for e in (card.data.eval_results or [])
            if (e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) not in keys]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name
    return card


def write_reports(output_dir: Path, model_name: str, revision: str, results: list[dict],
                  predictions: dict[str, list[dict]], language: str | None, problem: str | None = None) -> None:
    """Write this run's files and remove what an earlier run left that this one does not replace. A run with a
    `problem` (stopped, or a dataset that could not be scored) is marked incomplete and gets no model-index.
    `model_name` and the datasets (each result's "source") are named without their local paths (module doc)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    complete = problem is None
    local_paths = [model_name] + [result["source"] for result in results]
    results, predictions, problem = without_local_paths([results, predictions, problem], local_paths)
    results = [{key: None if isinstance(value, float) and not math.isfinite(value) else value  # NaN is not JSON
                for key, value in result.items()} for result in results]
    shared_name = public_name(model_name)
    write_json_atomic(output_dir / LOCAL_RECORD, {"model": shared_name, "path": where(model_name)})
    write_json_atomic(output_dir / RESULTS, {"model": shared_name, "revision": revision, "language": language,
                                             "complete": complete, "problem": problem, "results": results})
    note = "" if complete else f"**Incomplete: {problem}**\n\n"
    write_text_atomic(output_dir / "results.md", f"# {shared_name}\n\n{note}{markdown_table(results)}\n")
    written = set()
    for result in results:
        name = predictions_file(result)
        written.add(name)
        write_jsonl_atomic(output_dir / name, predictions[dataset_label(result["dataset_name"], result["config"],
                                                                        result["split"])])
    for stale in output_dir.glob("predictions_*.jsonl"):
        if stale.name not in written:
            stale.unlink()
    if complete:
        write_text_atomic(output_dir / MODEL_INDEX,
                          card_data(shared_name, results, language=language).to_yaml() + "\n")
    else:
        (output_dir / MODEL_INDEX).unlink(missing_ok=True)
