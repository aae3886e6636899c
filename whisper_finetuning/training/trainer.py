"""The Trainer of the kit: Seq2SeqTrainer reading its own resumable training stream, saving inference-ready
models and the stream position with every checkpoint; and the WER/CER it reports at each evaluation."""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer, TrainerCallback

from normalizers import Normalization

from ..files import write_json_atomic
from ..metrics import error_rate
from .stream import TrainingStream

logger = logging.getLogger(__name__)


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
            write_json_atomic(checkpoint / DATA_POSITION.format(rank=args.process_index),
                              {"pass": number, "next_row": next_row, "global_step": state.global_step})


class _RestoreRngState(TrainerCallback):
    """Restores the checkpoint's random states when training starts (the Trainer does so only when it skips
    batches itself)."""

    def __init__(self, trainer, checkpoint: str):
        self.trainer, self.checkpoint = trainer, checkpoint

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._load_rng_state(self.checkpoint)
