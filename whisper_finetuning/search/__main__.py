"""Hyper-parameter search: each trial is a short run of run_speech_recognition_seq2seq_streaming.py; Optuna chooses
the arguments (TPE, or a grid), prunes runs whose evaluations during training are clearly worse, and keeps the study
in a database, so a killed search resumes with the same command and several workers share one study.

    python -m whisper_finetuning.search --config configs/cpu_smoke.yaml --space configs/search/cpu_smoke_space.yaml \\
        --n_trials 8
    # more workers on the same study: the same command in other shells (SQLite), or on other nodes with
    # --storage postgresql://user@host:5432/db (scripts/slurm_search.sbatch)

Run it from the repository's top folder. Writes OUTPUT_DIR/trial-N/ (each trial's run), best_config.yaml (the best
trial's config, ready to train), trials.csv, report.md and plots/*.png.
"""

import argparse
import logging
import math
import sys

from transformers import HfArgumentParser

from ..args import read_config
from .arguments import SearchArguments
from .objective import Objective, check_base_config, make_objective, training_script
from .report import write_report
from .space import grid_of, read_space
from .study import make_pruner, open_storage, open_study, run_worker

logger = logging.getLogger("whisper_finetuning.search")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the description's lines and shows each option's default."""


def main(argv=None) -> dict:
    parser = HfArgumentParser(SearchArguments, description=__doc__, formatter_class=HelpFormatter)
    (args,) = parser.parse_args_into_dataclasses(args=sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO,
                        handlers=[logging.StreamHandler(sys.stdout)])

    space = read_space(args.space)
    n_trials = args.n_trials
    if args.sampler == "grid":
        size = math.prod(len(values) for values in grid_of(space).values())
        if n_trials is not None and n_trials > size:
            logger.warning("--n_trials %d is more than the grid's %d points: running %d", n_trials, size, size)
        n_trials = size if n_trials is None else min(n_trials, size)
    objective = Objective(args.retention_weight)
    script = training_script()
    check_base_config(script, args.config, space, objective, pruning=args.pruner != "none")

    storage = open_storage(args.storage, args.heartbeat_interval, args.grace_period, args.max_retry)
    base_settings = read_config(args.config)
    settings = {"base_config": base_settings, "space": read_config(args.space),
                "retention_weight": args.retention_weight}
    study = open_study(storage, args.study_name, settings, args.sampler, space, args.seed, args.tpe_startup_trials,
                       make_pruner(args.pruner, args.pruner_startup_trials, args.pruner_warmup_steps))
    logger.info("Study %r in %s: %d finished trials wanted", args.study_name, args.storage, n_trials)
    run_worker(study, make_objective(script.main, args.config, space, args.output_dir, objective), n_trials,
               poll_seconds=args.heartbeat_interval)

    objective_text = "eval WER" + (f" + {args.retention_weight} x retention WER" if args.retention_weight else "")
    written = write_report(study, base_settings, args.config, args.space, objective_text, args.output_dir)
    for name, path in written.items():
        logger.info("%s: %s", name, path)
    return written


if __name__ == "__main__":
    main()
