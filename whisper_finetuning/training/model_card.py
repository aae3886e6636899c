"""The model card (README.md) of a fine-tuned model, with leaderboard-ready metadata."""

from pathlib import Path

from huggingface_hub import ModelCard

from ..cards import card_data, identify, markdown_table, public_name
from ..files import write_text_atomic


def base_model_id(model_name_or_path: str) -> str | None:
    """The base model as the Hub knows it; None for a local folder (whose path means nothing elsewhere)."""
    return None if Path(model_name_or_path).expanduser().exists() else model_name_or_path


def model_card(output_dir, model_args, finetuning_args, data_args, training_args, train_specs,
               results: list[dict], forgetting: dict | None = None) -> ModelCard:
    """README.md with leaderboard-ready metadata (language code, base model, datasets, tags, model-index); with
    `forgetting` (training/retention.py), a table of WER before and after fine-tuning on the target and retention
    sets. The model-index keeps the target set alone, as the leaderboard expects."""
    name = (finetuning_args.model_index_name or training_args.hub_model_id
            or str(output_dir).rstrip("/").split("/")[-1])
    datasets = list(dict.fromkeys(identify(spec).dataset_type for spec in train_specs))
    tags = [t for t in finetuning_args.model_card_tags.split(",") if t] + ["generated_from_trainer"]
    base_model = base_model_id(model_args.model_name_or_path)
    base = base_model or f"a local checkpoint ({public_name(model_args.model_name_or_path)})"
    if finetuning_args.use_peft:
        tags += ["lora", "peft"]
        what = (f"This is a LoRA adapter (peft; rank {finetuning_args.lora_r}, alpha {finetuning_args.lora_alpha}, on "
                f"{finetuning_args.lora_target_modules}) for {base}, trained on")
    else:
        what = f"This model is {base} fine-tuned on"
    data = card_data(name, results, language=data_args.language, base_model=base_model, datasets=datasets, tags=tags,
                     library_name="peft" if finetuning_args.use_peft else "transformers")
    adapter_note = ("The kit's run_eval.py, export and app load this folder as it is (base model + adapter); "
                    "`python -m whisper_finetuning.export.merge` writes a plain checkpoint.\n\n"
                    if finetuning_args.use_peft else "")
    body = (f"# {name}\n\n{what} {', '.join(datasets)} ({data_args.language or 'en'}, task {data_args.task}).\n\n"
            f"## Evaluation\n\n{markdown_table(results) if results else 'Not evaluated.'}\n\n"
            "WER is computed on normalized text (Whisper's normalizers with the kit's per-language rules).\n\n"
            f"{forgetting_section(forgetting)}{adapter_note}"
            f"## Training\n\n- learning rate {training_args.learning_rate}, {training_args.max_steps} steps, batch "
            f"{training_args.per_device_train_batch_size} x {training_args.gradient_accumulation_steps} accumulation "
            f"x {training_args.world_size} processes, warm-up {training_args.warmup_steps} steps, seed "
            f"{training_args.seed}\n")
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def forgetting_section(forgetting: dict | None) -> str:
    if not forgetting:
        return ""
    lines = ["## What the base model knew (forgetting guard)", "",
             "| set | measure | base model | fine-tuned | change |", "|---|---|---|---|---|"]
    for row in forgetting["rows"]:
        before, after = row["before"], row["after"]
        change = "-" if before is None or after is None else _number(after - before, sign="+")
        lines.append(f"| {row['set']} | {row.get('metric', 'WER %')} | {_number(before)} | {_number(after)} | "
                     f"{change} |")
    lines += [""] + [f"Warning: {warning}" for warning in forgetting["warnings"]]
    return "\n".join(lines) + "\n\n"


def _number(value, sign: str = "") -> str:
    """Counts (words, utterances) as they are, measures with two decimals."""
    if value is None:
        return "-"
    return f"{value:{sign}d}" if isinstance(value, int) else f"{value:{sign}.2f}"


def write_model_card(card: ModelCard, output_dir) -> None:
    write_text_atomic(Path(output_dir) / "README.md", str(card))


def name_base_model_for_sharing(card_path: Path, model_name_or_path: str) -> None:
    """peft writes or updates README.md in every folder it saves an adapter to, with the path the base was loaded
    from (a local folder, or an offline copy of a Hub model) as base_model and in a base_model:adapter:PATH tag.
    The card is pushed, and the Hub refuses a card whose base_model is not a Hub id: name the base by its Hub id,
    or leave it out for a local base."""
    if not card_path.is_file():
        return
    card = ModelCard.load(card_path)
    base_model = base_model_id(model_name_or_path)
    card.data.base_model = base_model  # None: left out of the card's metadata
    tags = [tag for tag in card.data.tags or [] if not tag.startswith("base_model:")]
    card.data.tags = tags + ([f"base_model:adapter:{base_model}"] if base_model else [])
    write_text_atomic(card_path, str(card))
