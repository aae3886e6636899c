"""Evaluation reports: results.json, results.md, per-sample predictions and the leaderboard's model-index, and
merging results into an existing model card."""

import re
from pathlib import Path

from huggingface_hub import ModelCard

from ..cards import card_data, eval_results, markdown_table
from ..files import write_json_atomic, write_jsonl_atomic, write_text_atomic


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def merge_into_card(card: ModelCard, results: list[dict], model_name: str) -> ModelCard:
    """Add or replace this run's results in an existing card (same task, dataset, config, split and metric)."""
    new = eval_results(results)
    keys = {(e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) for e in new}
    kept = [e for e in (card.data.eval_results or [])
            if (e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) not in keys]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name
    return card


def write_reports(output_dir: Path, model_name: str, results: list[dict], predictions: dict[str, list[dict]],
                  language: str | None) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "results.json", {"model": model_name, "language": language, "results": results})
    write_text_atomic(output_dir / "results.md", f"# {model_name}\n\n{markdown_table(results)}\n")
    for name, rows in predictions.items():
        write_jsonl_atomic(output_dir / f"predictions_{slug(name)}.jsonl", rows)
    write_text_atomic(output_dir / "model_index.yaml", card_data(model_name, results, language=language).to_yaml() + "\n")
