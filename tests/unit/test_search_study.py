"""The study's bookkeeping with a quick objective (a parabola, no training): the trial count over reruns and
workers, the re-run of a cut-off trial, the surplus guard, and the refusal of a study started with other settings."""

import threading

import optuna
import pytest
from optuna.trial import TrialState

from whisper_finetuning.search.space import parse_space, sample
from whisper_finetuning.search.study import (
    StudyMismatchError, SurplusTrial, make_pruner, one_of_the_places, open_storage, open_study,
    run_worker, worker_seed,
)

SPACE = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0}}, "space.yaml")
SETTINGS = {"base_config": {"max_steps": 4}, "space": {"x": {"type": "float"}}, "retention_weight": 0.0}


def parabola(trial: optuna.Trial) -> float:
    return (sample(trial, SPACE)["x"] - 0.3) ** 2


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> str:
    """One SQLite file for the module (creating the tables takes a while); each test has a study of its own."""
    return f"sqlite:///{tmp_path_factory.mktemp('search') / 'study.db'}"


@pytest.fixture
def study_in(database, request):
    def open_it(seed=None, grace_period=60, settings=SETTINGS, startup_trials=2) -> optuna.Study:
        storage = open_storage(database, heartbeat_interval=1, grace_period=grace_period, max_retry=3)
        return open_study(storage, request.node.name, settings, "tpe", SPACE, seed, startup_trials,
                          make_pruner("median", 5, 0))

    return open_it


def states(study) -> list[str]:
    return [trial.state.name for trial in study.get_trials()]


def test_reruns_count_the_trials_already_finished(study_in):
    run_worker(study_in(seed=0, startup_trials=10), parabola, n_trials=3, poll_seconds=0.1)
    run_worker(study_in(seed=0, startup_trials=10), parabola, n_trials=3, poll_seconds=0.1)  # nothing to do
    assert states(study_in()) == ["COMPLETE"] * 3
    run_worker(study_in(seed=0, startup_trials=10), parabola, n_trials=5, poll_seconds=0.1)  # extend it
    trials = study_in().get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    assert len({t.params["x"] for t in trials}) == 5  # the same seed continues, it does not replay the first run


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test plays the killed worker with study.ask()
def test_a_cut_off_trial_is_failed_and_redone_with_its_parameters(study_in):
    study = study_in(grace_period=1)
    cut = study.ask()  # a worker that started a trial, sent one heartbeat and was killed
    x = sample(cut, SPACE)["x"]
    study._storage.record_heartbeat(cut._trial_id)
    # This worker waits while the heartbeat is fresh, then fails the trial and runs it again.
    run_worker(study_in(grace_period=1), parabola, n_trials=2, poll_seconds=0.2)
    trials = study_in().get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2 and trials[0].state == TrialState.FAIL
    (redone,) = [t for t in trials if t.system_attrs.get("failed_trial") == cut.number]
    assert redone.state == TrialState.COMPLETE and redone.params == {"x": x} and redone.value == (x - 0.3) ** 2


def test_two_workers_finish_exactly_n_trials_between_them(study_in):
    def worker(seed):
        run_worker(study_in(seed=seed), slow_parabola, n_trials=8, poll_seconds=0.05)

    def slow_parabola(trial):
        trial.set_user_attr("worker", threading.current_thread().name)
        threading.Event().wait(0.05)
        return parabola(trial)

    study_in()  # created once, so the two threads only load it
    threads = [threading.Thread(target=worker, args=(seed,), name=f"worker-{seed}") for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = study_in().get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # Exactly N trials ran the objective, none lost; a trial beyond the N places gave way before running it.
    assert len(complete) == 8
    assert all(t.state == TrialState.COMPLETE or t.user_attrs["note"].startswith("surplus") for t in trials)
    assert {t.user_attrs["worker"] for t in complete} == {"worker-1", "worker-2"}
    # Workers given different seeds sample apart (test_workers_with_different_seeds_never_replay_each_other).
    assert len({t.params["x"] for t in complete}) == 8


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test samples with study.ask()
def test_workers_with_different_seeds_never_replay_each_other(study_in):
    first = study_in(seed=2, startup_trials=10)  # joins the empty study
    x = sample(first.ask(), SPACE)["x"]
    second = study_in(seed=1, startup_trials=10)  # joins after one trial: seed 1 must not continue seed 2's sequence
    assert sample(second.ask(), SPACE)["x"] != x
    assert worker_seed(None, 1) is None  # no seed: every worker samples from fresh entropy


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_beyond_the_places_gives_way(study_in):
    study = study_in()
    other = study.ask()  # another worker took the one place a moment earlier
    late = study.ask()
    with pytest.raises(SurplusTrial):
        one_of_the_places(parabola, n_trials=1)(late)
    assert late.user_attrs["note"].startswith("surplus")
    assert one_of_the_places(lambda trial: 1.0, n_trials=1)(other) == 1.0


def test_a_study_started_with_other_settings_is_refused(study_in):
    study_in()
    changed = {**SETTINGS, "base_config": {"max_steps": 8}}
    with pytest.raises(StudyMismatchError, match="started with another base_config"):
        study_in(settings=changed)


def test_the_grid_sampler_tries_every_point_once(database, request):
    space = parse_space({"x": {"type": "float", "low": 0.0, "high": 1.0, "grid": [0.1, 0.3, 0.5]}}, "space.yaml")
    storage = open_storage(database, heartbeat_interval=1, grace_period=60, max_retry=3)
    study = open_study(storage, request.node.name, SETTINGS, "grid", space, None, 2, make_pruner("none", 0, 0))
    run_worker(study, lambda trial: (sample(trial, space)["x"] - 0.3) ** 2, n_trials=3, poll_seconds=0.1)
    assert sorted(t.params["x"] for t in study.get_trials()) == [0.1, 0.3, 0.5]
    assert study.best_params == {"x": 0.3}
