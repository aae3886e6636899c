"""Evaluation reports: results JSON, a Markdown table, per-sample predictions and the model card's model-index."""

import json
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TASK = "automatic-speech-recognition"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


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
              datasets: list[str] | None = None, tags: list[str] | None = None) -> ModelCardData:
    return ModelCardData(model_name=model_name, language=language, base_model=base_model, datasets=datasets,
                         tags=tags, license="apache-2.0", pipeline_tag=TASK, eval_results=eval_results(results))


def merge_into_card(card: ModelCard, results: list[dict], model_name: str) -> ModelCard:
    """Add or replace this run's results in an existing card (same task, dataset, config, split and metric)."""
    new = eval_results(results)
    keys = {(e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) for e in new}
    kept = [e for e in (card.data.eval_results or [])
            if (e.dataset_type, e.dataset_config, e.dataset_split, e.metric_type) not in keys]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or model_name
    return card


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
    return "\n".join(lines)


def write_reports(output_dir: Path, model_name: str, results: list[dict], predictions: dict[str, list[dict]],
                  language: str | None) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "results.json").write_text(json.dumps({"model": model_name, "language": language,
                                                         "results": results}, indent=2, ensure_ascii=False))
    (output_dir / "results.md").write_text(f"# {model_name}\n\n{markdown_table(results)}\n")
    for name, rows in predictions.items():
        with open(output_dir / f"predictions_{slug(name)}.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    data = card_data(model_name, results, language=language)
    (output_dir / "model_index.yaml").write_text(data.to_yaml() + "\n")
