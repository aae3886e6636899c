#!/usr/bin/env python
"""Fine-tune Whisper on streaming speech datasets with the Hugging Face Trainer.

    python run_speech_recognition_seq2seq_streaming.py configs/<config>.yaml [--flag value ...]
    python run_speech_recognition_seq2seq_streaming.py --model_name_or_path openai/whisper-small --language sv \\
        --dataset_name "data/cv-corpus-17.0+data/fleurs" --dataset_config_name "sv-SE+sv_se" \\
        --train_split_name train --eval_split_name test --max_steps 5000 --output_dir whisper-small-sv ...

Arguments: whisper_finetuning/args.py (model, data, preprocessing), whisper_finetuning/training/arguments.py
(fine-tuning, training data) and transformers' Seq2SeqTrainingArguments.
"""

import json
import logging
import math
import os
import sys
from pathlib import Path

import datasets
import transformers
from transformers import HfArgumentParser, Seq2SeqTrainingArguments, set_seed

from normalizers import get_normalizer
from whisper_finetuning.args import DataArguments, ModelArguments, PreprocessingArguments, parse_config_and_flags
from whisper_finetuning.cards import identify
from whisper_finetuning.data.balancing import BalancingArguments
from whisper_finetuning.evaluation.long_form import long_form_check
from whisper_finetuning.training.arguments import FineTuningArguments, RetentionArguments, TrainingDataArguments
from whisper_finetuning.training.checkpoints import SaveOnSignalCallback, checked_checkpoint, last_complete_checkpoint
from whisper_finetuning.training.collator import SpeechSeq2SeqCollator
from whisper_finetuning.training.model_card import model_card, write_model_card
from whisper_finetuning.training.model_setup import check_cpu_mixed_precision, load_model_for_training
from whisper_finetuning.training.retention import (
    baseline_scores, before_and_after, retention_sets, warn_on_forgetting,
)
from whisper_finetuning.training.run_record import check_output_dir, run_identity
from whisper_finetuning.training.stream import eval_set, eval_specs, train_stream
from whisper_finetuning.training.trainer import WhisperTrainer, make_compute_metrics, peak_memory_gb

logger = logging.getLogger("run_speech_recognition_seq2seq_streaming")
ARGUMENTS = (ModelArguments, DataArguments, PreprocessingArguments, FineTuningArguments, TrainingDataArguments,
             BalancingArguments, RetentionArguments, Seq2SeqTrainingArguments)


def main(argv=None, callbacks=()) -> dict:
    """Fine-tune; returns the train and eval metrics. `callbacks`: extra Trainer callbacks (the search uses one to
    report each evaluation to its trial)."""
    parser = HfArgumentParser(ARGUMENTS, description=__doc__)
    (model_args, data_args, preprocessing_args, finetuning_args, train_data_args, balancing_args, retention_args,
     training_args) = parse_config_and_flags(parser, sys.argv[1:] if argv is None else argv)

    # 1. Logging, checks that fail fast, seed
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    for library in (datasets.utils.logging, transformers.utils.logging):
        library.set_verbosity(log_level)
    if not data_args.dataset_name:
        raise ValueError("give --dataset_name (the datasets to train on)")
    if training_args.do_train and training_args.max_steps <= 0:
        raise ValueError("a streaming dataset has no length: give --max_steps (the number of optimizer steps)")
    normalization = get_normalizer(data_args.language)
    check_cpu_mixed_precision(training_args)
    training_args.predict_with_generate = True
    # Each process reads its own shards of the stream; with dispatch_batches rank 0 would read everything.
    training_args.accelerator_config.dispatch_batches = False
    if training_args.ddp_find_unused_parameters is None:
        training_args.ddp_find_unused_parameters = False  # every trainable Whisper parameter gets a gradient
    if finetuning_args.use_peft and training_args.activation_checkpointing:
        # With a frozen base, reentrant checkpointing of the encoder (whose input needs no gradient) gives the
        # adapters in it no gradient at all (transformers#21381); the non-reentrant kind does.
        training_args.activation_checkpointing_kwargs = {"use_reentrant": False,
                                                         **(training_args.activation_checkpointing_kwargs or {})}
    keep_tokens_out_of_files(model_args, training_args)
    set_seed(training_args.seed)

    # The output-dir contract: a rerun of the same command resumes; a different run into the same folder is refused.
    if training_args.do_train and training_args.resume_from_checkpoint is None:
        balancing = [balancing_args] if balancing_args.enabled else []  # unused settings do not define the run
        identity = run_identity(training_args, model_args, data_args, preprocessing_args, finetuning_args,
                                train_data_args, *balancing, retention_args)
        with training_args.main_process_first(desc="checking the output_dir"):
            check_output_dir(training_args.output_dir, identity, finetuning_args.overwrite_output_dir,
                             write=training_args.should_save)

    # 2. Model and processor (saved first, by the main process, before others may read it)
    model, processor = load_model_for_training(model_args, finetuning_args, data_args)
    with training_args.main_process_first(desc="saving the processor"):
        if training_args.should_save:
            processor.save_pretrained(training_args.output_dir)
    max_label_length = model.config.max_target_positions  # 448 decoder positions (not config.max_length)

    # 3. Data: a training stream (from audio, balanced and augmented when asked, or from the feature cache), and
    #    evaluation sets decoded once: the target, and the forgetting guard's retention sets and long-form clips
    train_dataset, train_preprocessor, train_specs = None, None, []
    if training_args.do_train:
        train_dataset, train_preprocessor, train_specs = train_stream(
            data_args, preprocessing_args, train_data_args, retention_args, training_args, processor,
            max_label_length, balancing_args)
    eval_dataset, retention, long_form = None, [], None
    if training_args.do_eval:
        eval_dataset = eval_set(data_args, preprocessing_args, train_data_args, processor, max_label_length)
        if not eval_dataset:
            raise ValueError("the evaluation set has no usable sample (see the skip counts above)")
        retention = retention_sets(retention_args, preprocessing_args, processor, max_label_length,
                                   data_args.streaming)
        long_form = long_form_check(eval_specs(data_args, train_data_args), retention_args.long_form_eval_clips,
                                    data_args.language, normalization if train_data_args.do_normalize_eval
                                    else str.strip, data_args.streaming)

    # 4. Trainer
    signal_callback = SaveOnSignalCallback()
    trainer = WhisperTrainer(
        model=model, args=training_args, train_dataset=train_dataset, eval_dataset=eval_dataset,
        data_collator=SpeechSeq2SeqCollator(model.config.decoder_start_token_id, model.config.pad_token_id),
        processing_class=processor,
        compute_metrics=make_compute_metrics(processor.tokenizer, normalization, train_data_args.do_normalize_eval),
        callbacks=[signal_callback, *callbacks], nonfinite=dict(
            skip_nonfinite_steps=finetuning_args.skip_nonfinite_steps, min_loss_scale=finetuning_args.min_loss_scale,
            max_consecutive_overflow_steps=finetuning_args.max_consecutive_overflow_steps),
        retention_sets=retention, long_form_check=long_form, do_normalize_eval=train_data_args.do_normalize_eval)
    baseline = baseline_scores(trainer, training_args.output_dir) if retention or long_form else {}

    # 5. Train, resuming from the newest valid checkpoint unless told otherwise
    metrics = {}
    if training_args.do_train:
        require_state = finetuning_args.resume_requires_optimizer_state
        checkpoint = training_args.resume_from_checkpoint
        if checkpoint is not None:
            checkpoint = checked_checkpoint(checkpoint, require_state)
        elif finetuning_args.auto_resume:
            checkpoint = last_complete_checkpoint(training_args.output_dir, require_state)
        if checkpoint is not None:
            logger.info("Resuming from %s", checkpoint)
        # A rerun of a finished run trains no step: its throughput would be nonsense, so the first run's stays.
        earlier_results = Path(training_args.output_dir) / "train_results.json"
        finished_before = (checkpoint is not None and earlier_results.is_file() and json.loads(
            (Path(checkpoint) / "trainer_state.json").read_text())["global_step"] >= training_args.max_steps)
        try:
            result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            signal_callback.restore_handlers()  # also when training stopped with an error
        if train_preprocessor is not None:
            train_preprocessor.report()
        if signal_callback.received:
            logger.warning("Stopped by %s after saving a checkpoint; run the same command again to resume",
                           signal_callback.received)
            return result.metrics
        if trainer.skipped_steps:
            logger.warning("Skipped %d optimizer steps with non-finite values: %s", len(trainer.skipped_steps),
                           ", ".join(f"step {step} ({reason})" for step, reason in trainer.skipped_steps))
        if trainer.nonfinite_guard.overflow_steps:
            logger.info("fp16: the loss scaler skipped %d overflow steps (normal in fp16; the final scale is %g)",
                        trainer.nonfinite_guard.overflow_steps, trainer.nonfinite_guard.loss_scale)
        trainer.save_model()
        if finished_before:
            logger.info("The run had already reached max_steps (%d); its training results are kept",
                        training_args.max_steps)
            metrics.update(json.loads(earlier_results.read_text()))
        else:
            result.metrics["train_peak_memory_gb"] = round(peak_memory_gb(), 2)
            trainer.log_metrics("train", result.metrics)
            trainer.save_metrics("train", result.metrics)
            trainer.save_state()
            metrics.update(result.metrics)

    # 6. Final evaluation, model card, Hub
    results, forgetting = [], {}
    if training_args.do_eval:
        eval_metrics = trainer.evaluate(metric_key_prefix="eval")
        if not all(math.isfinite(eval_metrics[k]) for k in ("eval_loss", "eval_wer") if k in eval_metrics):
            raise ValueError(f"the final evaluation is not finite ({eval_metrics}): the model is broken; no card is "
                             "written")
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
        if retention or long_form:
            forgetting = {"rows": before_and_after(retention, baseline, eval_metrics,
                                                   long_form.description if long_form else None),
                          "warnings": warn_on_forgetting(eval_metrics, baseline,
                                                         retention_args.retention_max_degradation)}
        specs = eval_specs(data_args, train_data_args)
        target = identify(specs[0])
        results.append({"dataset_name": target.pretty_name if len(specs) == 1 else " + ".join(
            identify(s).pretty_name for s in specs), "dataset_type": target.dataset_type,
            "config": specs[0].config, "split": specs[0].split, "language": data_args.language,
            "metric": normalization.metric, "wer": eval_metrics["eval_wer"],
            "cer": eval_metrics.get("eval_cer"), "samples": len(eval_dataset)})
    if training_args.should_save:
        trainer.model_card = model_card(training_args.output_dir, model_args, finetuning_args, data_args,
                                        training_args, train_specs, results, forgetting)
        write_model_card(trainer.model_card, training_args.output_dir)
    if training_args.push_to_hub:  # the model, processor and the card above, to hub_model_id
        trainer.push_to_hub(commit_message="End of training")
    return metrics


def keep_tokens_out_of_files(model_args, training_args) -> None:
    """A token given as an argument would be pickled into training_args.bin in every checkpoint (and pushed).
    Hand it to huggingface_hub through the environment of this process instead, and suggest the safer ways."""
    if training_args.hub_token:
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None
        logger.warning("--hub_token is kept out of every file this run writes; prefer `hf auth login` "
                       "(huggingface-cli login) or the HF_TOKEN environment variable, which leave no token in your "
                       "shell history or configs")
    elif model_args.token:
        logger.warning("--token: prefer `hf auth login` (huggingface-cli login) or HF_TOKEN; the token is not saved")


if __name__ == "__main__":
    main()
