"""The data the Trainer sees: this process's endless, resumable training stream (from audio or from the feature
cache), and the evaluation set, decoded once and kept compactly in memory."""

import itertools
import logging
from pathlib import Path

import numpy as np
import torch

from normalizers import get_target_normalizer

from ..data.mixing import load_mixture, parse_dataset_specs, parse_probabilities
from ..features import cache
from ..features.log_mel import compact, expand
from ..features.preprocessing import FilterSettings, Preprocessor, prepare

logger = logging.getLogger(__name__)


class TrainingStream(torch.utils.data.IterableDataset):
    """This process's endless, resumable stream of training samples.

    Pass p reads the process's share of the rows in the order of the shuffle with seed + p. Every sample carries
    (pass, row), the trainer records the position after each step and saves it with each checkpoint, and a resumed
    run starts reading at that position: the rows before it are skipped as rows, their audio is never decoded again.
    `to_examples` turns rows into examples with input_features and labels (decoding audio, or expanding cached
    features); `skip_counts` says what it skipped, for the error when nothing is left.
    """

    def __init__(self, rows, to_examples, seed: int, shuffle_buffer_size: int, max_samples: int | None = None,
                 skip_counts=dict):
        self.rows, self.to_examples, self.skip_counts = rows, to_examples, skip_counts
        self.seed, self.shuffle_buffer_size, self.max_samples = seed, shuffle_buffer_size, max_samples
        self.position = (0, 0)  # (pass, first row to read)

    def _pass(self, number: int, first_row: int):
        rows = self.rows.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
        rows.set_epoch(number)
        if self.max_samples is not None:
            rows = rows.take(self.max_samples)
        rows = rows.map(lambda row, index: {"row": index}, with_indices=True)
        if first_row:
            rows = rows.skip(first_row)  # reads the skipped rows' metadata, decodes nothing
        return self.to_examples(rows)

    def __iter__(self):
        first_pass, first_row = self.position
        for number in itertools.count(first_pass):
            produced = 0
            for example in self._pass(number, first_row if number == first_pass else 0):
                produced += 1
                yield {"input_features": example["input_features"], "labels": example["labels"],
                       "pass": number, "row": example["row"]}
            if produced == 0 and not (number == first_pass and first_row):
                raise ValueError("the training data has no usable sample for this process: every one was skipped "
                                 f"({self.skip_counts()}) or there were none")


def share_of(total: int | None, rank: int, world_size: int) -> int | None:
    """This process's part of a global count: the parts of all processes add up to `total`."""
    if total is None:
        return None
    return total // world_size + (1 if rank < total % world_size else 0)


def train_stream(data_args, preprocessing_args, train_data_args, training_args, processor,
                 max_label_length: int) -> tuple[TrainingStream, Preprocessor | None, list]:
    """The training stream of this process: the "+" mixture, this process's share of it, filtered; read from the
    feature cache when --feature_cache_dir is given (built there first if it does not exist yet)."""
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name,
                                train_data_args.train_split_name, data_args.text_column_name)
    probabilities = parse_probabilities(train_data_args.train_probabilities, len(specs))
    normalize = get_target_normalizer(data_args.language, preprocessing_args.do_lower_case,
                                      preprocessing_args.do_remove_punctuation)
    filters = FilterSettings(preprocessing_args.min_duration_in_seconds, preprocessing_args.max_duration_in_seconds,
                             max_label_length)
    preprocessor = Preprocessor(processor, filters, normalize_text=normalize)
    rank, world_size = training_args.process_index, training_args.world_size
    max_samples = share_of(train_data_args.max_train_samples, rank, world_size)

    if train_data_args.feature_cache_dir is None:
        rows = load_mixture(specs, probabilities, train_data_args.stopping_strategy, seed=training_args.seed,
                            streaming=data_args.streaming, rank=rank, world_size=world_size)
        stream = TrainingStream(rows, lambda rows: prepare(rows, preprocessor), training_args.seed,
                                train_data_args.shuffle_buffer_size, max_samples,
                                skip_counts=lambda: dict(preprocessor.stats.skipped))
        return stream, preprocessor, specs

    cache_dir = Path(train_data_args.feature_cache_dir)
    settings = cache.cache_settings(specs, data_args, preprocessing_args, processor, max_label_length)
    if not cache.read_parts(cache_dir):
        logger.info("Building the feature cache %s (part %d of %d)", cache_dir, rank, world_size)
        cache.build_part(cache_dir, specs, settings, preprocessor, rank, world_size, data_args.streaming)
        wait_for_every_process(training_args)
    cache.check_settings(cache_dir, cache.read_parts(cache_dir), settings)
    logger.info("Reading training features from the cache %s", cache_dir)
    rows = cache.load_feature_cache(cache_dir, rank, world_size, probabilities, train_data_args.stopping_strategy,
                                    training_args.seed)
    extractor = processor.feature_extractor
    stream = TrainingStream(
        rows, lambda rows: cache.restore_features(rows, extractor.feature_size, extractor.nb_max_frames),
        training_args.seed, train_data_args.shuffle_buffer_size, max_samples)
    return stream, None, specs


def wait_for_every_process(training_args) -> None:
    if training_args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def eval_specs(data_args, train_data_args):
    return parse_dataset_specs(train_data_args.eval_dataset_name or data_args.dataset_name,
                               train_data_args.eval_dataset_config_name or data_args.dataset_config_name,
                               train_data_args.eval_split_name,
                               train_data_args.eval_text_column_name or data_args.text_column_name)


class EvalSet(torch.utils.data.Dataset):
    """Evaluation samples kept in memory without their padding (float32, so scores equal run_eval.py's): a 5 s
    clip takes 160 kB instead of the 960 kB of full 30 s features. Features are restored per batch."""

    def __init__(self, num_mel_bins: int, num_frames: int):
        self.shape, self.samples = (num_mel_bins, num_frames), []

    def append(self, example: dict) -> None:
        self.samples.append((*compact(example["input_features"], np.float32), example["labels"]))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        raw, num_frames, padding_value, labels = self.samples[index]
        return {"input_features": expand(raw, num_frames, padding_value, *self.shape, np.float32), "labels": labels}


def eval_set(data_args, preprocessing_args, train_data_args, processor, max_label_length: int) -> EvalSet:
    """The evaluation samples, decoded once: evaluating every eval_steps does not decode the audio again, and the
    Trainer knows the length (a progress bar with a total)."""
    filters = FilterSettings(train_data_args.eval_min_duration_in_seconds,
                             train_data_args.eval_max_duration_in_seconds, max_label_length)
    normalize = get_target_normalizer(data_args.language, preprocessing_args.do_lower_case,
                                      preprocessing_args.do_remove_punctuation)
    preprocessor = Preprocessor(processor, filters, normalize_text=normalize)
    rows = load_mixture(eval_specs(data_args, train_data_args), streaming=data_args.streaming)
    if train_data_args.max_eval_samples:
        rows = rows.take(train_data_args.max_eval_samples)
    samples = EvalSet(processor.feature_extractor.feature_size, processor.feature_extractor.nb_max_frames)
    for example in prepare(rows, preprocessor):
        samples.append(example)
    preprocessor.report()
    return samples
