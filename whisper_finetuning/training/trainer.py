"""The Trainer of the kit: Seq2SeqTrainer reading its own resumable training stream, saving inference-ready
models and the stream position with every checkpoint, stopping on non-finite values instead of training on
(nonfinite.py), and writing its files atomically and without tokens or local paths; and the WER/CER it reports at
each evaluation."""

import contextlib
import copy
import dataclasses
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from transformers import Seq2SeqTrainer, TrainerCallback
from transformers.integrations import TensorBoardCallback, is_deepspeed_zero3_enabled
from transformers.integrations.integration_utils import default_logdir
from transformers.trainer import TRAINER_STATE_NAME

from normalizers import Normalization

from ..cards import public_name
from ..files import write_json_atomic, write_text_atomic
from ..loading import record_local_base
from ..metrics import error_rate
from .model_card import base_model_id, name_base_model_for_sharing
from .nonfinite import NonFiniteGuard, check_finite_weights
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
    """Seq2SeqTrainer that reads its own resumable training stream and saves models ready for inference.

    `nonfinite`: the NonFiniteGuard settings (skip_nonfinite_steps, min_loss_scale, max_consecutive_overflow_steps).
    `model_card`: the kit's card, which push_to_hub uploads instead of the Trainer's own.
    `retention_sets` and `long_form_check`: the forgetting guard's sets (retention.py, long_form_guard.py), evaluated
    after the target set."""

    def __init__(self, *args, nonfinite: dict | None = None, model_card=None, retention_sets=(),
                 long_form_check=None, do_normalize_eval: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.retention_sets, self.do_normalize_eval = list(retention_sets), do_normalize_eval
        self.long_form_check = long_form_check  # evaluation.long_form.LongFormCheck or None
        self.data_position = None  # (pass, next row) after the last trained batch
        self.nonfinite_loss = None  # the non-finite loss of the current optimizer step, if any
        self.model_card = model_card
        self.add_callback(_SaveDataPosition(self))
        self.nonfinite_guard = NonFiniteGuard(self, **(nonfinite or {}))
        self.add_callback(self.nonfinite_guard)
        # TensorBoard picks output_dir/runs/... only at on_train_begin; anything logged before (the forgetting
        # guard's baseline evaluation) would open ./runs in the working directory instead.
        callbacks = self.callback_handler.callbacks
        for index, callback in enumerate(callbacks):
            if isinstance(callback, TensorBoardCallback):
                if callback.logging_dir is None:
                    callback.logging_dir = os.path.join(self.args.output_dir, default_logdir())
                callbacks[index] = _ShareableTensorBoardCallback(callback)

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
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            self.nonfinite_loss = float(loss.detach().float().mean())
        return loss

    @property
    def skipped_steps(self) -> list[tuple[int, str]]:
        """(step, reason) of the optimizer steps skipped for non-finite values (--skip_nonfinite_steps)."""
        return self.nonfinite_guard.skipped_steps

    def log(self, logs, *args, **kwargs):
        """As the Trainer's; a training log under fp16 loss scaling also carries the scale and the overflow count."""
        super().log({**logs, **self.nonfinite_guard.loss_scale_log(logs)}, *args, **kwargs)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval", **gen_kwargs):
        """The target set, then each retention set with generation forced to its language (eval_retention_*), then
        the long-form check (eval_long_form_*)."""
        metrics = super().evaluate(eval_dataset, ignore_keys, metric_key_prefix, **gen_kwargs)
        if eval_dataset is not None or metric_key_prefix != "eval":
            return metrics
        if self.retention_sets:
            metrics.update(self._evaluate_retention(ignore_keys, gen_kwargs))
        if self.long_form_check is not None:
            metrics.update(self._evaluate_long_form())
        return metrics

    def _evaluate_retention(self, ignore_keys, gen_kwargs) -> dict:
        generation_config = self.accelerator.unwrap_model(self.model).generation_config
        target_language, target_metrics = generation_config.language, self.compute_metrics
        metrics, wers = {}, []
        try:
            for retention in self.retention_sets:
                generation_config.language = retention.language
                self.compute_metrics = make_compute_metrics(self.processing_class.tokenizer, retention.normalization,
                                                            self.do_normalize_eval)
                found = super().evaluate(retention.samples, ignore_keys, retention.prefix, **gen_kwargs)
                accuracy = self.language_accuracy(retention.samples, retention.language)
                if accuracy is not None:
                    found[f"{retention.prefix}_language_accuracy"] = accuracy
                    self.log({f"{retention.prefix}_language_accuracy": accuracy})
                metrics.update(found)
                wers.append(found[f"{retention.prefix}_wer"])
        finally:
            generation_config.language, self.compute_metrics = target_language, target_metrics
        metrics["eval_retention_wer"] = sum(wers) / len(wers)
        self.log({"eval_retention_wer": metrics["eval_retention_wer"]})
        return metrics

    def _evaluate_long_form(self) -> dict:
        """The long-form check's metrics (long_form_guard.py); none under DeepSpeed ZeRO-3, whose partitioned
        weights generate only inside its engine, with every process taking part."""
        if is_deepspeed_zero3_enabled():
            logger.warning("--long_form_eval_clips is not measured under DeepSpeed ZeRO-3; run_eval.py --long_form "
                           "scores the saved model")
            return {}
        metrics = self.long_form_check.score(self.accelerator.unwrap_model(self.model), self.processing_class)
        self.log({key: value for key, value in metrics.items() if value is not None})
        return metrics

    def language_accuracy(self, samples, language: str) -> float | None:
        """Percent of the samples whose language Whisper's own detection (the language token after one decoder step)
        says is `language`: a fine-tune that forgets the base language starts calling it the target language. None
        for English-only models and under DeepSpeed ZeRO-3 (the weights are partitioned outside its engine)."""
        model = self.accelerator.unwrap_model(self.model)
        if not getattr(model.generation_config, "is_multilingual", False) or is_deepspeed_zero3_enabled():
            return None
        expected = self.processing_class.tokenizer.convert_tokens_to_ids(f"<|{language}|>")
        loader = DataLoader(samples, batch_size=self.args.per_device_eval_batch_size,
                            collate_fn=lambda batch: torch.stack([torch.as_tensor(s["input_features"]) for s in batch]))
        was_training, correct = model.training, 0
        model.eval()
        try:
            with torch.inference_mode():
                for features in loader:
                    detected = model.detect_language(input_features=features.to(model.device, model.dtype))
                    correct += int((detected.flatten() == expected).sum())
        finally:
            model.train(was_training)
        return 100 * correct / max(len(samples), 1)

    def _save_checkpoint(self, model, trial):
        check_finite_weights(self.accelerator.unwrap_model(self.model), f"step {self.state.global_step}")
        save_state_atomically(self.state)
        super()._save_checkpoint(model, trial)

    def save_state(self):
        save_state_atomically(self.state)
        super().save_state()

    def _init_training_state(self, max_steps, num_update_steps_per_epoch, num_train_epochs, resume_from_checkpoint,
                             trial):
        """As the Trainer's, finding a resumed run's best checkpoint by the folder name trainer_state.json gives it
        (save_state_atomically). The Trainer would take the name for a folder in the working directory, warn that it
        is gone and forget it until the next save: a resumed run that saves no more would end with its last model,
        not its best (load_best_model_at_end)."""
        recorded = _recorded_best_checkpoint(resume_from_checkpoint)
        trainer_logger = logging.getLogger("transformers.trainer")
        trainer_logger.addFilter(_not_the_best_checkpoint_warning)
        try:
            result = super()._init_training_state(max_steps, num_update_steps_per_epoch, num_train_epochs,
                                                  resume_from_checkpoint, trial)
        finally:
            trainer_logger.removeFilter(_not_the_best_checkpoint_warning)
        if recorded and self.state.best_model_checkpoint is None:
            best = os.path.join(self._get_output_dir(trial), os.path.basename(recorded.rstrip("/")))
            if os.path.isdir(best):
                self.state.best_model_checkpoint = best
            else:
                logger.warning("The best checkpoint of the resumed run, %s, is gone: the best model so far is "
                               "forgotten", best)
        return result

    def _push_from_checkpoint(self, checkpoint_folder):
        """As the Trainer's, which pickles its arguments into output_dir/training_args.bin and uploads it with the
        checkpoint's model: that copy is the shareable one too."""
        args, self.args = self.args, _ShareableWhenWritten(self.args)
        try:
            super()._push_from_checkpoint(checkpoint_folder)
        finally:
            self.args = args

    def save_metrics(self, split, metrics, combined=True):
        """As the Trainer's, written atomically."""
        if not self.is_world_process_zero():
            return
        folder = Path(self.args.output_dir)
        write_json_atomic(folder / f"{split}_results.json", metrics)
        if combined:
            combined_path = folder / "all_results.json"
            everything = json.loads(combined_path.read_text()) if combined_path.is_file() else {}
            write_json_atomic(combined_path, {**everything, **metrics})

    def create_model_card(self, **kwargs):
        """push_to_hub writes a card just before uploading; keep the kit's card (model-index, language code). Before
        the kit's card is made (the push of trainer.save_model()), the Trainer's, where peft names the base model."""
        if self.model_card is None:
            super().create_model_card(**kwargs)
            adapter = self._adapter_config()
            if self.is_world_process_zero() and adapter is not None and adapter.base_model_name_or_path:
                name_base_model_for_sharing(Path(self.args.output_dir) / "README.md", adapter.base_model_name_or_path)
            return
        if self.is_world_process_zero():
            write_text_atomic(Path(self.args.output_dir) / "README.md", str(self.model_card))

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

    def _adapter_config(self):
        """The LoRA adapter's config (peft), whose base_model_name_or_path names the base as the user did
        (model_setup.py); None for a full model."""
        return getattr(self.accelerator.unwrap_model(self.model), "active_peft_config", None)

    def _save(self, output_dir=None, state_dict=None):
        model, adapter = self.accelerator.unwrap_model(self.model), self._adapter_config()
        base = adapter.base_model_name_or_path if adapter is not None else None
        # The Trainer sets config.use_cache = False for training; a saved (and pushed) model with that setting
        # generates without its key/value cache, several times slower. Save it with the cache on. An adapter's
        # adapter_config.json is pushed with it: it names a local base by its folder name (LOCAL_BASE has the path).
        saved_as = [(model.config, "use_cache", True)]
        if base:
            saved_as.append((adapter, "base_model_name_or_path", public_name(base)))
        with _set_for_the_moment(saved_as):
            super()._save(output_dir, state_dict)
        folder = output_dir or self.args.output_dir
        if self.args.should_save:  # the Trainer pickles its arguments; keep tokens and local paths out of the copy
            torch.save(shareable_arguments(self.args), os.path.join(folder, "training_args.bin"))
        if self.args.should_save and adapter is not None:
            # An adapter folder holds only the adapter; its language and task live in the generation config.
            model.generation_config.save_pretrained(folder)
        if self.args.should_save and base:
            name_base_model_for_sharing(Path(folder) / "README.md", base)  # the card peft writes with the adapter
            if base_model_id(base) is None:
                record_local_base(self.args.output_dir, public_name(base), base)
        # transformers 5 nests the feature extractor in processor_config.json; other tools read
        # preprocessor_config.json and fall back to 80 mel bins without it (wrong for large-v3's 128).
        feature_extractor = getattr(self.processing_class, "feature_extractor", None)
        if feature_extractor is not None and self.args.should_save:
            feature_extractor.save_pretrained(folder)


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


def peak_memory_gb() -> float:
    """The most memory training held: the GPU's peak allocation, or on CPU the process's peak resident memory."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kilobytes on Linux


def save_state_atomically(state) -> None:
    """Make the Trainer write trainer_state.json atomically: a full disk must not leave a 0-byte file that every
    later resume trips over. The file is pushed (at the end, and in checkpoints): it names the best checkpoint by
    its folder name, not by its path here (WhisperTrainer._init_training_state finds it again on resume). (The
    Trainer calls state.save_to_json; this instance's method is replaced.)"""
    def save_to_json(path):
        saved = dataclasses.asdict(state)
        if saved["best_model_checkpoint"]:
            saved["best_model_checkpoint"] = os.path.basename(saved["best_model_checkpoint"].rstrip("/"))
        write_text_atomic(path, json.dumps(saved, indent=2, sort_keys=True) + "\n")

    state.save_to_json = save_to_json


def _recorded_best_checkpoint(checkpoint) -> str | None:
    """The best checkpoint that a checkpoint's trainer_state.json names: its folder name (a path in older runs)."""
    state_file = Path(checkpoint) / TRAINER_STATE_NAME if checkpoint else None
    if state_file is None or not state_file.is_file():
        return None
    return json.loads(state_file.read_text()).get("best_model_checkpoint")


def _not_the_best_checkpoint_warning(record: logging.LogRecord) -> bool:
    """A log filter: drops the Trainer's warning that a resumed run's best checkpoint "does not exist anymore",
    given for the folder name the kit records (see WhisperTrainer._init_training_state)."""
    return "recorded in the resumed state does not exist" not in record.getMessage()


def shareable_arguments(args):
    """A copy of the training arguments fit to be pushed: no tokens, and local paths (strings, or strings in a list)
    reduced to their folder or file names (cards.public_name; Hub ids and other values stay as they are)."""
    shared = copy.copy(args)
    for field in dataclasses.fields(args):
        value = getattr(args, field.name)
        if field.name.endswith("token"):
            setattr(shared, field.name, None)
        elif isinstance(value, str):
            setattr(shared, field.name, public_name(value))
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            setattr(shared, field.name, [public_name(item) for item in value])
    return shared


class _ShareableWhenWritten:
    """The training arguments for Trainer code that both reads them and writes them out: every attribute is the
    real one (output_dir says where the files are), but what is written, their pickle (torch.save into
    training_args.bin) and their JSON text (to_json_string), is the shareable copy (shareable_arguments)."""

    def __init__(self, args):
        self._args = args

    def __getattr__(self, name):
        return getattr(self._args, name)

    def __reduce_ex__(self, protocol):
        # Saved as the shareable copy, a plain instance of the arguments' class, that loading passes through
        # copy.copy: pickle refuses to save a stand-in directly as an instance of another class.
        return copy.copy, (shareable_arguments(self._args),)

    def to_json_string(self) -> str:
        return shareable_arguments(self._args).to_json_string()


class _ShareableTensorBoardCallback(TensorBoardCallback):
    """TensorBoard's callback, which writes the training arguments as text into its event files: runs/ is uploaded
    with every push, so they are the shareable ones."""

    def __init__(self, original: TensorBoardCallback):
        super().__init__(tb_writer=original.tb_writer)
        self.logging_dir = original.logging_dir

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(_ShareableWhenWritten(args), state, control, **kwargs)


@contextlib.contextmanager
def _set_for_the_moment(settings):
    """Set (object, attribute, value) for the duration of a with block, then put the previous values back."""
    previous = [(target, name, getattr(target, name)) for target, name, _ in settings]
    try:
        for target, name, value in settings:
            setattr(target, name, value)
        yield
    finally:
        for target, name, value in previous:
            setattr(target, name, value)


class _RestoreRngState(TrainerCallback):
    """Restores the checkpoint's random states when training starts (the Trainer does so only when it skips
    batches itself)."""

    def __init__(self, trainer, checkpoint: str):
        self.trainer, self.checkpoint = trainer, checkpoint

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._load_rng_state(self.checkpoint)
