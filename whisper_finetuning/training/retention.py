"""The forgetting guard: retention sets (what the base model knew, e.g. its English), scored with the base model
once before training and at every evaluation after, with a warning when fine-tuning erodes them; and the long-form
check of the target language's timestamps and quiet (long_form_guard.py), compared with the base model's the same way.

Metrics: `eval_retention_<lang>_wer` per language and `eval_retention_wer` (their mean). The base model's scores
(target and retention) are kept in output_dir/baseline_results.json, so a resumed run compares with the same numbers.
"""

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback
from transformers.integrations import is_deepspeed_zero3_enabled

from normalizers import Normalization, get_normalizer

from ..cards import identify
from ..data.mixing import load_mixture, parse_dataset_specs, split_plus
from ..features.preprocessing import make_preprocessor, prepare
from ..files import write_json_atomic
from .long_form_guard import long_form_rows, long_form_warnings
from .stream import EvalSet

logger = logging.getLogger(__name__)
BASELINE = "baseline_results.json"


@dataclass
class RetentionSet:
    language: str  # Whisper code; generation is forced to it while this set is evaluated
    samples: EvalSet
    normalization: Normalization
    description: str  # the datasets, for logs and the card

    @property
    def prefix(self) -> str:
        return f"eval_retention_{self.language}"


def retention_sets(retention_args, preprocessing_args, processor, max_label_length: int,
                   streaming: bool = True) -> list[RetentionSet]:
    """One decoded evaluation set per retention language, labelled with that language's token."""
    if not retention_args.retention_dataset_name:
        return []
    specs = parse_dataset_specs(retention_args.retention_dataset_name, retention_args.retention_dataset_config_name,
                                retention_args.retention_split_name, retention_args.retention_text_column_name)
    languages = split_plus(retention_args.retention_language, len(specs), "--retention_language")
    extractor = processor.feature_extractor
    sets = []
    for language in dict.fromkeys(languages):
        own = copy.deepcopy(processor)  # labels start with this set's language token, not the target's
        own.tokenizer.set_prefix_tokens(language=language, task="transcribe")
        # Every clip Whisper can take (0-30 s), whatever the training's duration filters.
        preprocessor = make_preprocessor(own, language, preprocessing_args, max_label_length, durations=(0.0, 30.0))
        samples = EvalSet(extractor.feature_size, extractor.nb_max_frames)
        chosen = [spec for spec, spec_language in zip(specs, languages) if spec_language == language]
        for spec in chosen:
            rows = load_mixture([spec], streaming=streaming)
            if retention_args.max_retention_samples:
                rows = rows.take(retention_args.max_retention_samples)
            for example in prepare(rows, preprocessor):
                samples.append(example)
        preprocessor.report()
        preprocessor.finish()
        if not samples:
            raise ValueError(f"the retention set for {language} has no usable sample (see the skip counts above)")
        names = (" ".join(part for part in (identify(spec).pretty_name, spec.config, spec.split) if part)
                 for spec in chosen)
        sets.append(RetentionSet(language, samples, get_normalizer(language), " + ".join(names)))
    return sets


def baseline_scores(trainer, output_dir: str) -> dict:
    """The base model's evaluation metrics (target and retention), measured once before training and kept.

    Under DeepSpeed below ZeRO-3 the Trainer cannot evaluate before training has built its engine ("ZeRO inference
    only makes sense with ZeRO Stage 3"): there the scores are measured when training begins, before the first step,
    into the dict returned here."""
    path = Path(output_dir) / BASELINE
    if path.is_file():
        return json.loads(path.read_text())
    scores = {}
    if trainer.is_deepspeed_enabled and not is_deepspeed_zero3_enabled() and trainer.args.do_train:
        trainer.add_callback(_BaselineWhenTrainingBegins(trainer, path, scores))
    else:
        scores.update(_score_base_model(trainer, path))
    return scores


def _score_base_model(trainer, path: Path) -> dict:
    logger.info("Scoring the base model before training (target, retention and long-form sets)")
    scores = trainer.evaluate()
    if trainer.args.should_save:
        write_json_atomic(path, scores)
    return scores


class _BaselineWhenTrainingBegins(TrainerCallback):
    def __init__(self, trainer, path: Path, scores: dict):
        self.trainer, self.path, self.scores = trainer, path, scores

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.scores:
            self.scores.update(_score_base_model(self.trainer, self.path))


def before_and_after(retention: list[RetentionSet], baseline: dict, final: dict,
                     long_form_description: str | None = None) -> list[dict]:
    """Rows for the card: the target set and each retention set, WER of the base model and of the fine-tuned one;
    then the long-form check's measures, when it ran on the clips `long_form_description` names."""
    rows = [{"set": "target (the evaluation set above)", "metric": "WER %", "before": baseline.get("eval_wer"),
             "after": final.get("eval_wer")}]
    for r in retention:
        rows.append({"set": f"retention, {r.language}: {r.description}", "metric": "WER %",
                     "before": baseline.get(f"{r.prefix}_wer"), "after": final.get(f"{r.prefix}_wer")})
        if f"{r.prefix}_language_accuracy" in final:
            rows.append({"set": f"retention, {r.language}: {r.description}",
                         "metric": f"identified as {r.language}, %",
                         "before": baseline.get(f"{r.prefix}_language_accuracy"),
                         "after": final[f"{r.prefix}_language_accuracy"]})
    if long_form_description:
        rows += long_form_rows(long_form_description, baseline, final)
    return rows


def warn_on_forgetting(metrics: dict, baseline: dict, margin: float) -> list[str]:
    """Warnings for retention WERs that rose, or language identifications that fell, more than `margin` points from
    the base model's, and for long-form skills lost (long_form_guard.long_form_warnings)."""
    warnings = []
    for key, value in metrics.items():
        per_language = key.startswith("eval_retention_") and key.endswith("_wer") and key != "eval_retention_wer"
        if per_language and key in baseline:
            rise = value - baseline[key]
            if rise > margin:
                warnings.append(f"{key} rose from {baseline[key]:.2f} to {value:.2f} (+{rise:.2f} points, more than "
                                f"--retention_max_degradation {margin}): the model is forgetting; consider "
                                "--replay_probability, --freeze_encoder or --use_peft")
        identified = key.startswith("eval_retention_") and key.endswith("_language_accuracy")
        if identified and key in baseline and baseline[key] - value > margin:
            warnings.append(f"{key} fell from {baseline[key]:.1f} to {value:.1f} % (more than "
                            f"--retention_max_degradation {margin} points): the model no longer recognises the "
                            "language it knew; consider --replay_probability, --freeze_encoder or --use_peft")
    warnings += long_form_warnings(metrics, baseline)
    for warning in warnings:
        logger.warning(warning)
    return warnings
