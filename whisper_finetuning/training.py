"""The pieces of the fine-tuning script: model set-up, data streams, metrics, the Trainer subclass, the card."""

import logging

import numpy as np
from huggingface_hub import ModelCard
from transformers import Seq2SeqTrainer, WhisperForConditionalGeneration, WhisperProcessor

from normalizers import Normalization

from .evaluation import identify
from .metrics import error_rate
from .mixing import load_mixture, parse_dataset_specs, parse_probabilities
from .offline_models import resolve_model
from .preprocessing import FilterSettings, Preprocessor, prepare
from .reports import card_data, markdown_table

logger = logging.getLogger(__name__)


def load_model_for_training(model_args, data_args):
    """Model and processor, with the language and task set where generate() and the tokenizer read them."""
    hub = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    path = resolve_model(model_args.model_name_or_path, **hub)
    processor = WhisperProcessor.from_pretrained(path, **hub)
    model = WhisperForConditionalGeneration.from_pretrained(
        path, attn_implementation=model_args.attn_implementation, dropout=model_args.dropout,
        apply_spec_augment=model_args.apply_spec_augment, mask_time_prob=model_args.mask_time_prob,
        mask_time_length=model_args.mask_time_length, mask_feature_prob=model_args.mask_feature_prob,
        mask_feature_length=model_args.mask_feature_length, **hub)
    multilingual = getattr(model.generation_config, "is_multilingual", True)
    if multilingual:
        if data_args.language is None:
            raise ValueError("--language is required to fine-tune a multilingual checkpoint (e.g. --language sv); "
                             "without it evaluation detects the language per sample")
        # Forcing language and task at generate time: without it, transformers >= 4.38 detects the language per
        # sample during evaluation ("Multiple languages detected").
        model.generation_config.language = data_args.language
        model.generation_config.task = data_args.task
        processor.tokenizer.set_prefix_tokens(language=data_args.language, task=data_args.task)
    elif data_args.language not in (None, "en", "english"):
        raise ValueError(f"{model_args.model_name_or_path} is English-only; it cannot learn {data_args.language!r}")
    model.generation_config.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    if model_args.freeze_encoder:
        model.freeze_encoder()
    elif model_args.freeze_feature_encoder:
        for module in (model.model.encoder.conv1, model.model.encoder.conv2):
            module.requires_grad_(False)
    return model, processor


def train_stream(data_args, training_args, processor, normalize_targets, max_label_length: int):
    """The shuffled, filtered training stream. The Trainer shards it across processes by its shards (each process
    decodes only its own samples) and calls set_epoch, which reshuffles every epoch."""
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name, data_args.train_split_name,
                                data_args.text_column_name)
    rows = load_mixture(specs, parse_probabilities(data_args.train_probabilities, len(specs)),
                        data_args.stopping_strategy, seed=training_args.seed, streaming=data_args.streaming)
    rows = rows.shuffle(seed=training_args.seed, buffer_size=data_args.shuffle_buffer_size)
    if data_args.max_train_samples:
        rows = rows.take(data_args.max_train_samples)
    settings = FilterSettings(data_args.min_duration_in_seconds, data_args.max_duration_in_seconds, max_label_length)
    preprocessor = Preprocessor(processor, settings, normalize_text=normalize_targets)
    return prepare(rows, preprocessor).select_columns(["input_features", "labels"]), preprocessor, specs


def eval_specs(data_args):
    return parse_dataset_specs(data_args.eval_dataset_name or data_args.dataset_name,
                               data_args.eval_dataset_config_name or data_args.dataset_config_name,
                               data_args.eval_split_name, data_args.eval_text_column_name or data_args.text_column_name)


def eval_set(data_args, processor, normalize_targets, max_label_length: int) -> list[dict]:
    """The evaluation samples, decoded once and kept in memory: evaluating every eval_steps does not decode the
    audio again, and the Trainer knows the length (a progress bar with a total)."""
    settings = FilterSettings(data_args.eval_min_duration_in_seconds, data_args.eval_max_duration_in_seconds,
                              max_label_length)
    preprocessor = Preprocessor(processor, settings, normalize_text=normalize_targets)
    rows = load_mixture(eval_specs(data_args), streaming=data_args.streaming)
    if data_args.max_eval_samples:
        rows = rows.take(data_args.max_eval_samples)
    samples = [{"input_features": e["input_features"], "labels": e["labels"]} for e in prepare(rows, preprocessor)]
    preprocessor.report()
    return samples


def make_compute_metrics(tokenizer, normalization: Normalization, do_normalize_eval: bool):
    """WER (and CER) in percent from generated ids, scored like run_eval.py."""
    normalize = normalization if do_normalize_eval else str.strip

    def compute_metrics(prediction):
        label_ids = np.where(prediction.label_ids == -100, tokenizer.pad_token_id, prediction.label_ids)
        predictions = tokenizer.batch_decode(prediction.predictions, skip_special_tokens=True)
        references = tokenizer.batch_decode(label_ids, skip_special_tokens=True)
        metrics = {"wer": error_rate(references, predictions, "wer", normalize).percent}
        if normalization.metric == "cer":
            metrics["cer"] = error_rate(references, predictions, "cer", normalize).percent
        return metrics

    return compute_metrics


class WhisperTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that saves models ready for inference."""

    def _save(self, output_dir=None, state_dict=None):
        # The Trainer sets config.use_cache = False for training; a saved (and pushed) model with that setting
        # generates without its key/value cache, several times slower. Save it with the cache on.
        config = self.accelerator.unwrap_model(self.model).config
        previous, config.use_cache = config.use_cache, True
        try:
            super()._save(output_dir, state_dict)
        finally:
            config.use_cache = previous
        # transformers 5 nests the feature extractor in processor_config.json; other tools read
        # preprocessor_config.json and fall back to 80 mel bins without it (wrong for large-v3's 128).
        feature_extractor = getattr(self.processing_class, "feature_extractor", None)
        if feature_extractor is not None and self.args.should_save:
            feature_extractor.save_pretrained(output_dir or self.args.output_dir)


def write_model_card(output_dir, model_args, data_args, training_args, train_specs, results: list[dict]) -> ModelCard:
    """README.md with leaderboard-ready metadata (language, base model, datasets, tags, model-index)."""
    name = model_args.model_index_name or training_args.hub_model_id or str(output_dir).rstrip("/").split("/")[-1]
    datasets = list(dict.fromkeys(identify(spec).dataset_type for spec in train_specs))
    tags = [t for t in model_args.model_card_tags.split(",") if t] + ["generated_from_trainer"]
    data = card_data(name, results, language=data_args.language, base_model=model_args.model_name_or_path,
                     datasets=datasets, tags=tags)
    body = (f"# {name}\n\nThis model is {model_args.model_name_or_path} fine-tuned on "
            f"{', '.join(datasets)} ({data_args.language or 'en'}, task {data_args.task}).\n\n"
            f"## Evaluation\n\n{markdown_table(results) if results else 'Not evaluated.'}\n\n"
            "WER is computed on normalized text (Whisper's normalizers with the kit's per-language rules).\n\n"
            f"## Training\n\n- learning rate {training_args.learning_rate}, {training_args.max_steps} steps, batch "
            f"{training_args.per_device_train_batch_size} x {training_args.gradient_accumulation_steps} accumulation "
            f"x {training_args.world_size} processes, warm-up {training_args.warmup_steps} steps, seed "
            f"{training_args.seed}\n")
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")
    card.save(f"{output_dir}/README.md")
    return card
