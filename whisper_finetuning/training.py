"""The pieces of the fine-tuning script: model set-up, data streams, metrics, the Trainer subclass, the card."""

import itertools
import json
import logging
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import ModelCard
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer, TrainerCallback

from normalizers import Normalization

from .evaluation import identify
from .metrics import error_rate
from .mixing import load_mixture, parse_dataset_specs, parse_probabilities
from .preprocessing import FilterSettings, Preprocessor, prepare
from .reports import card_data, markdown_table
from .transcription import language_kwargs, load_whisper

logger = logging.getLogger(__name__)


def load_model_for_training(model_args, data_args):
    """Model and processor, with the language and task set where generate() and the tokenizer read them."""
    # Weights in float32 whatever the checkpoint stores (fp16/bf16 training is the Trainer's mixed precision).
    model, processor = load_whisper(
        model_args.model_name_or_path, dtype=torch.float32, attn_implementation=model_args.attn_implementation,
        model_kwargs={"dropout": model_args.dropout, "apply_spec_augment": model_args.apply_spec_augment,
                      "mask_time_prob": model_args.mask_time_prob, "mask_time_length": model_args.mask_time_length,
                      "mask_feature_prob": model_args.mask_feature_prob,
                      "mask_feature_length": model_args.mask_feature_length},
        cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token)
    if language_kwargs(model, data_args.language, data_args.task):  # English-only models refuse other languages
        if data_args.language is None:
            raise ValueError("--language is required to fine-tune a multilingual checkpoint (e.g. --language sv); "
                             "without it evaluation detects the language per sample")
        # Forcing language and task at generate time: without it, transformers >= 4.38 detects the language per
        # sample during evaluation ("Multiple languages detected").
        model.generation_config.language = data_args.language
        model.generation_config.task = data_args.task
        processor.tokenizer.set_prefix_tokens(language=data_args.language, task=data_args.task)
    model.generation_config.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    if model_args.freeze_encoder:
        model.freeze_encoder()
    elif model_args.freeze_feature_encoder:
        for module in (model.model.encoder.conv1, model.model.encoder.conv2):
            module.requires_grad_(False)
    return model, processor


class TrainingStream(torch.utils.data.IterableDataset):
    """This process's endless, resumable stream of training samples.

    Pass p reads the process's share of the rows in the order of the shuffle with seed + p. Every sample carries
    (pass, row), the trainer records the position after each step and saves it with each checkpoint, and a resumed
    run starts reading at that position: the rows before it are skipped as rows, their audio is never decoded again.
    """

    def __init__(self, rows, preprocessor, seed: int, shuffle_buffer_size: int, max_samples: int | None = None):
        self.rows, self.preprocessor = rows, preprocessor
        self.seed, self.shuffle_buffer_size, self.max_samples = seed, shuffle_buffer_size, max_samples
        self.position = (0, 0)  # (pass, first row to read)

    def _pass(self, number: int, first_row: int):
        rows = self.rows.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
        rows.set_epoch(number)
        if self.max_samples:
            rows = rows.take(self.max_samples)
        rows = rows.map(lambda row, index: {"row": index}, with_indices=True)
        if first_row:
            rows = rows.skip(first_row)  # reads the skipped rows' metadata, decodes nothing
        return prepare(rows, self.preprocessor)

    def __iter__(self):
        first_pass, first_row = self.position
        for number in itertools.count(first_pass):
            produced = 0
            for example in self._pass(number, first_row if number == first_pass else 0):
                produced += 1
                yield {"input_features": example["input_features"], "labels": example["labels"],
                       "pass": number, "row": example["row"]}
            if produced == 0 and not (number == first_pass and first_row):
                raise ValueError("the training data has no usable sample: every one was skipped "
                                 f"({dict(self.preprocessor.stats.skipped)})")


def train_stream(data_args, training_args, processor, normalize_targets, max_label_length: int):
    """The training stream of this process: the "+" mixture, this process's share of it, filtered."""
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name, data_args.train_split_name,
                                data_args.text_column_name)
    rows = load_mixture(specs, parse_probabilities(data_args.train_probabilities, len(specs)),
                        data_args.stopping_strategy, seed=training_args.seed, streaming=data_args.streaming,
                        rank=training_args.process_index, world_size=training_args.world_size)
    settings = FilterSettings(data_args.min_duration_in_seconds, data_args.max_duration_in_seconds, max_label_length)
    preprocessor = Preprocessor(processor, settings, normalize_text=normalize_targets)
    stream = TrainingStream(rows, preprocessor, training_args.seed, data_args.shuffle_buffer_size,
                            data_args.max_train_samples)
    return stream, preprocessor, specs


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


DATA_POSITION = "data_position_{rank}.json"


class WhisperTrainer(Seq2SeqTrainer):
    """Seq2SeqTrainer that reads its own resumable training stream and saves models ready for inference."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_position = None  # (pass, next row) after the last trained batch
        self.add_callback(_SaveDataPosition(self))

    def get_train_dataloader(self) -> DataLoader:
        if not isinstance(self.train_dataset, TrainingStream):
            return super().get_train_dataloader()
        # The stream already holds only this process's share, so it is not handed to accelerate to be sharded
        # again. One loader process: the stream decodes in threads, and its position must be known exactly.
        return DataLoader(self.train_dataset, batch_size=self._train_batch_size, collate_fn=self.data_collator,
                          num_workers=0, pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available())

    def training_step(self, model, inputs, num_items_in_batch=None):
        passes, rows = inputs.pop("pass", None), inputs.pop("row", None)
        if rows is not None:
            self.data_position = (int(passes[-1]), int(rows[-1]) + 1)
        return super().training_step(model, inputs, num_items_in_batch)

    def train(self, resume_from_checkpoint=None, **kwargs):
        if resume_from_checkpoint and isinstance(self.train_dataset, TrainingStream):
            position_file = Path(resume_from_checkpoint) / DATA_POSITION.format(rank=self.args.process_index)
            if position_file.is_file():
                position = json.loads(position_file.read_text())
                self.train_dataset.position = (position["pass"], position["next_row"])
                self.data_position = self.train_dataset.position
                # The stream starts at its saved position itself; the Trainer must not skip batches again (which
                # would read and decode them), and then leaves the RNG state to us.
                self.args.ignore_data_skip = True
                self.add_callback(_RestoreRngState(self, str(resume_from_checkpoint)))
                logger.info("Resuming the training stream at pass %d, row %d", *self.train_dataset.position)
            else:
                logger.warning("%s has no %s: the Trainer will skip the trained batches by reading them again",
                               resume_from_checkpoint, position_file.name)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

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


class _SaveDataPosition(TrainerCallback):
    """Writes each process's stream position into every checkpoint it saves."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_save(self, args, state, control, **kwargs):
        if self.trainer.data_position is None:
            return
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if checkpoint.is_dir():
            number, next_row = self.trainer.data_position
            (checkpoint / DATA_POSITION.format(rank=args.process_index)).write_text(
                json.dumps({"pass": number, "next_row": next_row, "global_step": state.global_step}))


class _RestoreRngState(TrainerCallback):
    """Restores the checkpoint's random states when training starts (the Trainer does so only when it skips
    batches itself)."""

    def __init__(self, trainer, checkpoint: str):
        self.trainer, self.checkpoint = trainer, checkpoint

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._load_rng_state(self.checkpoint)


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
