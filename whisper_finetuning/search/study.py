"""The study: trials in a database that outlives any worker, and the loop each worker runs.

Optuna's RDB storage (a SQLite file, or PostgreSQL for workers on several machines) holds every trial, so a search
killed at any point resumes with the same command, and any number of workers share one study. A worker killed
mid-trial leaves its trial RUNNING; its heartbeat stops, and once it is older than the grace period the next worker
marks it failed and queues it again with the same parameters (RetryHeartbeatStaleTrialCallback), so the cut trial
is redone, resuming its own output_dir from its last checkpoint.
"""

import json
import logging
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy
import optuna
import sqlalchemy.exc
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from .space import Parameter, grid_of

logger = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STORAGE_ATTEMPTS = 5
# The trials that hold one of the study's n_trials places: finished, running, or queued to run again.
PLACES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class StudyMismatchError(ValueError):
    pass


class SurplusTrial(Exception):
    """Two workers started the last free trial at the same moment; the later one is not needed."""


def open_storage(url: str, heartbeat_interval: int, grace_period: int, max_retry: int) -> optuna.storages.RDBStorage:
    engine_kwargs = {"pool_pre_ping": True}  # a trial runs for hours; the database may close idle connections
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": 60}  # workers on one machine wait for each other's writes
    with warnings.catch_warnings():  # heartbeats and retries are marked experimental; they are what resuming needs
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry,
                                                                 inherit_intermediate_values=True)
        for attempt in range(STORAGE_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                                  heartbeat_stale_trial_callback=retry)
            except sqlalchemy.exc.DBAPIError as error:
                # Workers started together on a fresh PostgreSQL database race to create Optuna's tables and types
                # (one gets "duplicate key ... pg_type"); the schema exists a moment later, so try again.
                if attempt == STORAGE_ATTEMPTS - 1:
                    raise
                logger.warning("Opening the study storage failed (%s); trying again", str(error).splitlines()[0])
                time.sleep(1 + attempt)


def make_sampler(kind: str, space: list[Parameter], seed: int | None,
                 startup_trials: int = 10) -> optuna.samplers.BaseSampler:
    if kind == "grid":
        return optuna.samplers.GridSampler(grid_of(space), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # multivariate + group model parameters jointly, also conditional ones; the constant liar makes parallel
        # workers avoid the points that running trials are already trying.
        return optuna.samplers.TPESampler(n_startup_trials=startup_trials, multivariate=True, group=True,
                                          constant_liar=True, seed=seed)


def make_pruner(kind: str, startup_trials: int, warmup_steps: int) -> optuna.pruners.BasePruner:
    if kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)


def worker_seed(seed: int | None, trials_so_far: int) -> int | None:
    """The sampler's seed for a worker that joins a study holding `trials_so_far` trials. Mixing in the count makes a
    rerun continue instead of replaying the first run's samples; mixing it (rather than adding it) keeps workers
    given different seeds apart: seed 1 joining after one trial and seed 2 joining first must not sample alike."""
    if seed is None:
        return None
    return int(numpy.random.SeedSequence([seed, trials_so_far]).generate_state(1)[0])


def open_study(storage, name: str, settings: dict, sampler: str, space: list[Parameter], seed: int | None,
               tpe_startup_trials: int, pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study or load it. `settings` (the base config, the space, the objective) define what its trials
    mean: a study recorded with other settings is refused instead of mixing two searches."""
    study = optuna.create_study(storage=storage, study_name=name, pruner=pruner, direction="minimize",
                                load_if_exists=True)
    study.sampler = make_sampler(sampler, space, worker_seed(seed, len(study.trials)), tpe_startup_trials)
    settings = json.loads(json.dumps(settings))  # as the storage keeps them
    recorded = study.user_attrs.get("settings")
    if recorded is None:
        study.set_user_attr("settings", settings)
    elif recorded != settings:
        changed = sorted(key for key in set(recorded) | set(settings) if recorded.get(key) != settings.get(key))
        raise StudyMismatchError(
            f"study {name!r} in {storage.url} was started with another {', '.join(changed)}: its trials would not "
            "be comparable with new ones. Choose one: a new --study_name, or the files it was started with")
    return study


def run_worker(study: optuna.Study, objective, n_trials: int, poll_seconds: float, catch: tuple = ()) -> None:
    """Run trials until the study has `n_trials` finished ones, counting every worker's. While the last trials run
    in other workers this one waits: if one of them is killed, its trial is queued again and run here."""
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # cut-off trials (heartbeat too old): failed, queued again
        states = Counter(trial.state for trial in study.get_trials(deepcopy=False))
        finished = sum(states[state] for state in FINISHED)
        if finished >= n_trials:
            logger.info("The study has %d finished trials (asked for %d)", finished, n_trials)
            return
        if states[TrialState.WAITING] or finished + states[TrialState.RUNNING] < n_trials:
            study.optimize(one_of_the_places(objective, n_trials), n_trials=1, catch=(SurplusTrial, *catch))
        else:
            logger.info("%d of %d trials finished, %d running in other workers: waiting for them", finished,
                        n_trials, states[TrialState.RUNNING])
            time.sleep(poll_seconds)


def one_of_the_places(objective, n_trials: int):
    """The objective, run only by trials among the first `n_trials` that hold a place: two workers that see one free
    place at the same moment both create a trial, and the later one gives way (it ends failed, marked surplus)."""

    def guarded(trial: optuna.Trial) -> float:
        holders = sorted(t.number for t in trial.study.get_trials(deepcopy=False, states=PLACES))
        if holders.index(trial.number) >= n_trials:
            trial.set_user_attr("note", "surplus: another worker took the last trial at the same moment")
            raise SurplusTrial(f"trial {trial.number} is not needed: {n_trials} trials are finished or running")
        return objective(trial)

    return guarded
