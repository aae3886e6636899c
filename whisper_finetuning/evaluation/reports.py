"""Evaluation reports: results.json, results.md, per-sample predictions and the leaderboard's model-index, and
merging results into an existing model card. `check_output_dir` runs first, before any model or data work."""

import json
import math
import re
import tempfile
from pathlib import Path

from huggingface_hub import ModelCard

from ..cards import card_data, eval_results, markdown_table
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic

RESULTS = "results.json"
MODEL_INDEX = "model_index.yaml"


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


def same_model(a: str, b: str) -> bool:
    """Hub ids as they are; local folders by where they are (./m and /abs/m are the same model)."""
    def where(name: str) -> str:
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else name
    return where(a) == where(b)


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
        earlier_model, earlier_revision = earlier["model"], earlier.get("revision", revision)
    except (ValueError, KeyError, TypeError) as error:
        raise OutputDirError(f"--output_dir {output_dir} holds a {RESULTS} that run_eval did not write ({error!r}): "
                             "pass --overwrite_output_dir to replace it, or choose another --output_dir") from error
    if not same_model(earlier_model, model_name) or earlier_revision != revision:
        raise OutputDirError(
            f"--output_dir {output_dir} holds the results of {earlier_model} (revision {earlier_revision}); this run "
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
    `problem` (stopped, or a dataset that could not be scored) is marked incomplete and gets no model-index."""
    output_dir.mkdir(parents=True, exist_ok=True)
    complete = problem is None
    results = [{key: None if isinstance(value, float) and not math.isfinite(value) else value  # NaN is not JSON
                for key, value in result.items()} for result in results]
    write_json_atomic(output_dir / RESULTS, {"model": model_name, "revision": revision, "language": language,
                                             "complete": complete, "problem": problem, "results": results})
    note = "" if complete else f"**Incomplete: {problem}**\n\n"
    write_text_atomic(output_dir / "results.md", f"# {model_name}\n\n{note}{markdown_table(results)}\n")
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
                          card_data(model_name, results, language=language).to_yaml() + "\n")
    else:
        (output_dir / MODEL_INDEX).unlink(missing_ok=True)
