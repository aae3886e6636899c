"""The data the Trainer sees: this process's endless, resumable training stream (from audio or from the feature
cache), and the evaluation set, decoded once and kept compactly in memory."""

import itertools
import logging
from pathlib import Path

import numpy as np
import torch

from ..augmentation import load_augmenter
from ..data.balancing import balance_rows
from ..data.mixing import load_mixture, parse_dataset_specs, parse_probabilities, split_plus
from ..features import cache
from ..features.log_mel import compact, expand
from ..features.preprocessing import Preprocessor, make_preprocessor, prepare
from ..features.targets import TargetSettings
from ..features.windows import pack_windows

logger = logging.getLogger(__name__)


class TrainingStream(torch.utils.data.IterableDataset):
    """This process's endless, resumable stream of training samples.

    Pass p reads the process's share of the rows in the order of the shuffle with seed + p. Every sample carries
    (pass, row), the trainer records the position after each step and saves it with each checkpoint, and a resumed
    run starts reading at that position: the rows before it are skipped as rows, their audio is never decoded again.
    `to_examples` turns rows into examples with input_features and labels (decoding audio, or expanding cached
    features); `skip_counts` says what it skipped, for the error when nothing is left; `finish` runs after each pass
    (the broken-sample rule, `Preprocessor.finish`).
    """

    def __init__(self, rows, to_examples, seed: int, shuffle_buffer_size: int, max_samples: int | None = None,
                 skip_counts=dict, finish=lambda: None):
        self.rows, self.to_examples, self.skip_counts, self.finish = rows, to_examples, skip_counts, finish
        self.seed, self.shuffle_buffer_size, self.max_samples = seed, shuffle_buffer_size, max_samples
        self.position = (0, 0)  # (pass, first row to read)

    def _pass(self, number: int, first_row: int):
        rows = self.rows.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
        rows.set_epoch(number)
        if self.max_samples is not None:
            rows = rows.take(self.max_samples)
        # (pass, row) names the sample: the Preprocessor keys its augmentation draws by it, the trainer its position
        rows = rows.map(lambda row, index: {"row": index, "pass": number}, with_indices=True)
        rows = rows.map(PreviousText())  # before the skip: a resumed pass reads the same previous texts
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
            self.finish()
            if produced == 0 and not (number == first_pass and first_row):
                raise ValueError("the training data has no usable sample for this process: every one was skipped "
                                 f"({self.skip_counts()}) or there were none")


class PreviousText:
    """Adds `previous_text`, the prompt of the row's prompted samples (features/targets.py): the row's own `prompt`
    column when it has one (domain words given with the data), else the text of the row before in this pass when it
    comes from the same dataset, else "". Rows are read in order by one process, so it is exact."""

    def __init__(self):
        self.dataset, self.text = None, ""

    def __call__(self, row: dict) -> dict:
        # Rows of the feature cache carry no text (their labels are made): "" throughout.
        previous = self.text if row.get("dataset") == self.dataset else ""
        self.dataset, self.text = row.get("dataset"), row.get("text") or ""
        return {"previous_text": row.get("prompt") or previous}


def share_of(total: int | None, rank: int, world_size: int) -> int | None:
    """This process's part of a global count: the parts of all processes add up to `total`."""
    if total is None:
        return None
    return total // world_size + (1 if rank < total % world_size else 0)


def with_replay(specs: list, probabilities: list[float] | None, retention_args, tokenizer):
    """Add the replay datasets (the forgetting guard's mitigation) to the mixture at --replay_probability, the target
    datasets sharing the rest as before; returns (specs, probabilities, relabel) where `relabel` gives the replay
    samples' labels their own language token (the Preprocessor labels everything in the target language)."""
    if not retention_args.replay_probability:
        return specs, probabilities, lambda examples: iter(examples)
    replay = parse_dataset_specs(retention_args.replay_dataset_name, retention_args.replay_dataset_config_name,
                                 retention_args.replay_split_name, retention_args.replay_text_column_name)
    languages = split_plus(retention_args.replay_language, len(replay), "--replay_language")
    share = retention_args.replay_probability
    target = probabilities or [1 / len(specs)] * len(specs)
    probabilities = [weight * (1 - share) for weight in target] + [share / len(replay)] * len(replay)
    language_token = {spec.label: tokenizer.convert_tokens_to_ids(f"<|{language}|>")
                      for spec, language in zip(replay, languages)}
    start_token, target_token = tokenizer.prefix_tokens[:2]  # <|startoftranscript|>, then the language token

    def relabel_one(example):
        token = language_token.get(example["dataset"])
        if token is None:
            return {}
        labels = list(example["labels"])
        language_at = labels.index(start_token) + 1  # after a previous-text prompt, if the label has one
        if labels[language_at] != target_token:
            raise ValueError(f"a replay label does not have the target language token after <|startoftranscript|>: "
                             f"{labels[:language_at + 3]}")
        labels[language_at] = token
        return {"labels": labels}

    logger.info("Replay: %.0f %% of the samples from %s", 100 * share, ", ".join(spec.label for spec in replay))
    return specs + replay, probabilities, lambda examples: ({**example, **relabel_one(example)} for example in examples)


def train_stream(data_args, preprocessing_args, train_data_args, retention_args, training_args, processor,
                 max_label_length: int, balancing_args=None) -> tuple[TrainingStream, Preprocessor | None, list]:
    """The training stream of this process: the "+" mixture (with replay data when asked), this process's share of
    it, balanced or skewed when --balance_* say so (data/balancing.py), augmented when --augmentation_config is given,
    filtered; read from the feature cache when
    --feature_cache_dir is given (built there first if it does not exist yet)."""
    specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name,
                                train_data_args.train_split_name, data_args.text_column_name)
    probabilities = parse_probabilities(train_data_args.train_probabilities, len(specs))
    specs, probabilities, relabel = with_replay(specs, probabilities, retention_args, processor.tokenizer)
    augment = None
    if train_data_args.augmentation_config:
        augment = load_augmenter(train_data_args.augmentation_config, training_args.seed)
        logger.info("Augmenting the training audio (%s, seed %d): %s", train_data_args.augmentation_config,
                    training_args.seed, augment.config.describe())
    targets = TargetSettings(train_data_args.timestamp_probability, train_data_args.prompt_probability,
                             train_data_args.no_speech_probability, training_args.seed,
                             train_data_args.long_form_probability)
    if targets.enabled:
        logger.info("Training targets: timestamps on %.0f %%, a previous-text prompt on %.0f %%, silence or noise "
                    "with an empty transcript on %.0f %% of the samples; %.0f %% start a long-form window",
                    100 * targets.timestamp_probability, 100 * targets.prompt_probability,
                    100 * targets.no_speech_probability, 100 * targets.long_form_probability)
    preprocessor = make_preprocessor(processor, data_args.language, preprocessing_args, max_label_length,
                                     augment=augment, targets=targets)
    rank, world_size = training_args.process_index, training_args.world_size
    max_samples = share_of(train_data_args.max_train_samples, rank, world_size)

    if train_data_args.feature_cache_dir is None:
        rows = load_mixture(specs, probabilities, train_data_args.stopping_strategy, seed=training_args.seed,
                            streaming=data_args.streaming, rank=rank, world_size=world_size)
        if balancing_args is not None and balancing_args.enabled:
            # Counted over the whole mixture (metadata only), so caps and shares hold over all processes together;
            # the replay data, when given, is part of the mixture and is balanced with it.
            everything = load_mixture(specs, probabilities, train_data_args.stopping_strategy,
                                      seed=training_args.seed, streaming=data_args.streaming)
            rows, _ = balance_rows(rows, balancing_args, training_args.seed, counted=everything)
        stream = TrainingStream(rows, lambda rows: relabel(prepare(pack_windows(rows, targets), preprocessor)),
                                training_args.seed, train_data_args.shuffle_buffer_size, max_samples,
                                skip_counts=lambda: dict(preprocessor.stats.skipped), finish=preprocessor.finish)
        return stream, preprocessor, specs

    if balancing_args is not None and balancing_args.enabled:
        raise ValueError("--balance_* needs the rows' metadata (accent, speaker, gender, ...), which the feature cache "
                         "does not keep: drop --feature_cache_dir or the balancing settings")
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
        rows, lambda rows: relabel(cache.restore_features(rows, extractor.feature_size, extractor.nb_max_frames)),
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
    preprocessor = make_preprocessor(processor, data_args.language, preprocessing_args, max_label_length, (
        train_data_args.eval_min_duration_in_seconds, train_data_args.eval_max_duration_in_seconds))
    rows = load_mixture(eval_specs(data_args, train_data_args), streaming=data_args.streaming)
    if train_data_args.max_eval_samples:
        rows = rows.take(train_data_args.max_eval_samples)
    samples = EvalSet(processor.feature_extractor.feature_size, processor.feature_extractor.nb_max_frames)
    for example in prepare(rows, preprocessor):
        samples.append(example)
    preprocessor.report()
    preprocessor.finish()
    return samples
