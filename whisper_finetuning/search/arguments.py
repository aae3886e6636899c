"""Arguments of the search (python -m whisper_finetuning.search --help)."""

from dataclasses import dataclass, field
from pathlib import Path

SAMPLERS = ("tpe", "grid")
PRUNERS = ("median", "none")


@dataclass
class SearchArguments:
    config: str = field(metadata={
        "help": "the training config (YAML or JSON, as for run_speech_recognition_seq2seq_streaming.py) that every "
                "trial starts from; it must train (do_train) and evaluate (do_eval), and evaluations during training "
                "(eval_strategy steps) let bad trials be pruned early"})
    space: str = field(metadata={
        "help": "the search space, a YAML file (configs/search/space.yaml): the training arguments a trial samples "
                "and their ranges"})
    n_trials: int | None = field(default=None, metadata={
        "help": "finished trials (completed or pruned) the study should have, counted over all workers and reruns: "
                "a rerun or a second worker continues the same study up to this number (default for --sampler grid: "
                "the size of the grid)"})
    output_dir: str | None = field(default=None, metadata={
        "help": "where the trials' runs (trial-N/), the report, the best config and the plots go (default: "
                "output/search-STUDY_NAME)"})
    storage: str | None = field(default=None, metadata={
        "help": "database URL of the study: sqlite:///path/study.db (default: OUTPUT_DIR/study.db; workers on one "
                "machine can share it) or postgresql://user@host:5432/database for workers on several machines "
                "(keep the password in ~/.pgpass, not in the URL)"})
    study_name: str | None = field(default=None, metadata={
        "help": "the study's name in the storage (default: the config file's name without extension)"})
    sampler: str = field(default="tpe", metadata={
        "help": "tpe (Bayesian optimisation: Optuna's TPE, multivariate, with a constant liar for parallel workers) or "
                "grid (every combination of the space's `grid` values)"})
    tpe_startup_trials: int = field(default=10, metadata={
        "help": "TPE samples this many trials at random before it models the results"})
    seed: int | None = field(default=None, metadata={
        "help": "seed of the sampler (give each worker a different one, or none)"})
    pruner: str = field(default="median", metadata={
        "help": "median (stop a trial whose intermediate objective is worse than the median of earlier trials at the "
                "same step) or none"})
    pruner_startup_trials: int = field(default=5, metadata={
        "help": "no trial is pruned until this many trials have finished"})
    pruner_warmup_steps: int = field(default=0, metadata={
        "help": "no trial is pruned at or before this training step"})
    retention_weight: float = field(default=0.0, metadata={
        "help": "objective = eval WER + this weight x retention WER (eval_retention_wer: the base config sets "
                "retention_dataset_name); 0 optimises the target WER alone"})
    heartbeat_interval: int = field(default=60, metadata={
        "help": "seconds between a running trial's heartbeats in the storage (also how often an idle worker looks "
                "for work)"})
    grace_period: int = field(default=180, metadata={
        "help": "a running trial without a heartbeat for this many seconds belongs to a worker that was killed: it "
                "is marked failed and queued again (with the same parameters, resuming its output_dir)"})
    max_retry: int = field(default=3, metadata={"help": "how many times a cut-off trial is queued again"})

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"--pruner must be one of {', '.join(PRUNERS)}, not {self.pruner!r}")
        if self.n_trials is not None and self.n_trials < 0:
            raise ValueError(f"--n_trials must be 0 or more, not {self.n_trials}")
        if self.sampler == "tpe" and self.n_trials is None:
            raise ValueError("give --n_trials (the number of finished trials the study should have)")
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise ValueError(f"need 1 <= --heartbeat_interval ({self.heartbeat_interval}) < --grace_period "
                             f"({self.grace_period})")
        if self.retention_weight < 0:
            raise ValueError(f"--retention_weight must be 0 or more, not {self.retention_weight}")
        self.study_name = self.study_name or Path(self.config).stem
        self.output_dir = self.output_dir or f"output/search-{self.study_name}"
        self.storage = self.storage or f"sqlite:///{Path(self.output_dir).resolve() / 'study.db'}"
