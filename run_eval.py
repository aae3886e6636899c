#!/usr/bin/env python
"""Evaluate a Whisper model on the Common Voice and FLEURS test sets of a language, or on any dataset.

    python run_eval.py --model_name_or_path openai/whisper-small --language sv
    python run_eval.py --model_name_or_path ./my-model --language sv \\
        --common_voice_dir data/cv-corpus-17.0-2024-03-15 --fleurs_dir data/fleurs
    python run_eval.py --model_name_or_path M --language sv --dataset_name "a+b" --dataset_config_name "x+y" \\
        --split "test+test" --text_column_name "sentence+transcription"

Writes results.json, results.md, model_index.yaml and predictions_<dataset>.jsonl to --output_dir. A run that
fails (a dataset with nothing to score) or is stopped (SIGTERM, Ctrl-C: after the current batch) exits non-zero
and leaves results.json marked "complete": false, the predictions so far, and no model_index.yaml.
Arguments: whisper_finetuning/args.py (model, data) and whisper_finetuning/evaluation/arguments.py.
"""

import logging
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from normalizers import get_normalizer
from whisper_finetuning.args import DataArguments, ModelArguments, parse_config_and_flags
from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.cards import identify, markdown_table
from whisper_finetuning.data.mixing import count_samples, load_mixture, parse_dataset_specs
from whisper_finetuning.evaluation.arguments import EvalArguments
from whisper_finetuning.evaluation.interrupt import StopOnSignal
from whisper_finetuning.evaluation.leaderboard import default_targets
from whisper_finetuning.evaluation.long_form import clips_of, evaluate_long_form
from whisper_finetuning.evaluation.reports import check_output_dir, dataset_label, merge_into_card, write_reports
from whisper_finetuning.evaluation.scoring import ScoringError, check_scores, evaluate_rows
from whisper_finetuning.evaluation.transcriber import Throughput, Transcriber
from whisper_finetuning.loading import language_kwargs

logger = logging.getLogger("run_eval")


def main(argv=None) -> list[dict]:
    parser = HfArgumentParser((ModelArguments, DataArguments, EvalArguments), description=__doc__)
    model_args, data_args, args = parse_config_and_flags(parser, sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # 1. Where the results go and what to evaluate on: fails early, before any model work, on a folder that cannot
    # be written or holds another model's results, an unknown split, a missing folder or column
    output_dir = Path(args.output_dir)
    check_output_dir(output_dir, model_args.model_name_or_path, model_args.model_revision, args.overwrite_output_dir)
    normalization = get_normalizer(data_args.language)
    if data_args.dataset_name:
        specs = parse_dataset_specs(data_args.dataset_name, data_args.dataset_config_name, args.split,
                                    data_args.text_column_name)
        targets = [identify(spec) for spec in specs]
    else:
        if not data_args.language:
            raise SystemExit("error: give --language (to evaluate on Common Voice and FLEURS) or --dataset_name")
        targets = default_targets(data_args.language, args.split, args.common_voice_dir, args.fleurs_dir,
                                  args.common_voice_dataset, args.fleurs_dataset)
    # Opening a dataset reads its listing (local) or metadata (Hub), not its audio: a missing folder, split or
    # column, or a dataset with no rows, is found here, before the model is loaded and before anything is written.
    datasets = [(target, load_mixture([target.spec], streaming=data_args.streaming, token=model_args.token),
                 count_samples(target.spec, token=model_args.token)) for target in targets]

    # 2. The model, in the fastest dtype that keeps the WER (see choose_dtype), or a CTranslate2 export in the type it
    # was exported in (--backend auto: by what the folder is)
    backend = load_backend(model_args.model_name_or_path, args.backend, dtype=args.dtype,
                           device="cuda" if torch.cuda.is_available() else "cpu",
                           attn_implementation=model_args.attn_implementation, revision=model_args.model_revision,
                           cache_dir=model_args.cache_dir, token=model_args.token)
    generate_kwargs = {"num_beams": args.num_beams, "return_timestamps": args.return_timestamps}
    if args.generation_max_length:
        generate_kwargs["max_length"] = args.generation_max_length
    generate_kwargs.update(language_kwargs(backend.model, None if args.detect_language else data_args.language,
                                           data_args.task))
    if args.prompt.strip():
        generate_kwargs["prompt_ids"] = backend.prompt_ids(args.prompt)
    # --long_form decodes as the app's File tab does: the language, the task and the prompt, nothing else
    long_form_kwargs = {key: value for key, value in generate_kwargs.items()
                        if key in ("language", "task", "prompt_ids")}
    transcriber = Transcriber(backend, generate_kwargs, batch_size=args.batch_size,
                              long_form_kwargs=args.long_form_kwargs(), max_duration=args.max_duration_in_seconds)

    # 3. Transcribe and score each dataset; SIGTERM or Ctrl-C stops after the current batch
    results, predictions, problem = [], {}, None
    with StopOnSignal() as stop:
        transcriber.stop = stop.event
        for target, rows, total in datasets:
            spec = target.spec
            transcriber.throughput = Throughput()  # RTFx per dataset
            label = dataset_label(target.pretty_name, spec.config, spec.split)
            scores, rows_out = evaluate_rows(transcriber, rows, normalization, total=total,
                                             description=label, max_samples=args.max_eval_samples)
            results.append({"dataset_name": target.pretty_name, "dataset_type": target.dataset_type,
                            "source": spec.name, "config": spec.config, "split": spec.split,
                            "language": data_args.language, "rtfx": transcriber.throughput.rtfx,
                            "backend": backend.name, "dtype": backend.compute_type, **scores,
                            **({"prompt": args.prompt.strip()} if args.prompt.strip() else {})})
            predictions[label] = rows_out
            if stop.received:
                problem = (f"stopped by {stop.received.name} during {label}, after "
                           f"{scores['samples'] + scores['skipped']} clips; datasets not started: "
                           f"{len(targets) - len(results)}")
                break
            try:
                check_scores(scores, label)
            except ScoringError as error:
                problem = str(error)
                break
            if args.long_form:  # recordings joined from the first clips, decoded as the app's File tab does
                clips = clips_of(load_mixture([spec], streaming=data_args.streaming, token=model_args.token),
                                   args.long_form_max_clips)
                with tqdm(total=-(-len(clips) // args.clips_per_recording) + 2, desc=f"{label} long-form") as bar:
                    results[-1]["long_form"] = evaluate_long_form(backend, clips, long_form_kwargs, normalization,
                                                                  args.clips_per_recording, progress=bar.update)

    # 4. Reports (a failed or stopped run is marked incomplete and gets no model-index)
    write_reports(output_dir, model_args.model_name_or_path, model_args.model_revision, results, predictions,
                  data_args.language, problem)
    print(markdown_table(results))
    if problem and stop.received:
        logger.error("Incomplete: %s. Wrote the results so far to %s (results.json says \"complete\": false)",
                     problem, output_dir)
        raise SystemExit(128 + stop.received)
    if problem:
        raise ScoringError(f"{problem}. (Wrote {output_dir}/results.json, marked incomplete, and the predictions; "
                           "no model_index.yaml)")
    print(f"\nWrote results.json, results.md, model_index.yaml and predictions to {args.output_dir}")
    if args.push_to_hub:
        push_results(args.hub_model_id or model_args.model_name_or_path, results, model_args.token)
    return results


def push_results(repo_id: str, results: list[dict], token: str | None) -> None:
    from huggingface_hub import ModelCard

    card = ModelCard.load(repo_id, token=token)
    merge_into_card(card, results, repo_id).push_to_hub(repo_id, token=token,
                                                        commit_message="Add evaluation results (run_eval.py)")
    logger.info("Updated the model card of %s", repo_id)


if __name__ == "__main__":
    main()
