"""Real searches (python -m whisper_finetuning.search) with the tiny model and the tone corpus: a search killed with
SIGKILL mid-trial resumes with the same command; two workers share one study in SQLite and in a PostgreSQL server
of the test's own; the median pruner stops a trial with a hopeless learning rate; the best config trains as it is;
the retention objective adds the weighted retention WER."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.search.__main__ import main as search

REPO = Path(__file__).resolve().parents[2]
GOOD_LR, HOPELESS_LR = 1e-2, 1e-7  # the tiny model learns the corpus's empty output (WER 100) by step 2 at 1e-2;
# at 1e-7 it keeps its random output (WER 139) for the whole run


def write_base_config(tiny_model_dir, corpus, folder: Path, **overrides) -> Path:
    settings = {
        "model_name_or_path": str(tiny_model_dir), "language": "sv",
        "dataset_name": str(corpus / "common_voice"), "dataset_config_name": "sv-SE",
        "eval_dataset_name": str(corpus / "fleurs"), "eval_dataset_config_name": "sv_se", "max_eval_samples": 4,
        "output_dir": str(folder / "unused"), "max_steps": 4, "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 4, "do_train": True, "do_eval": True, "eval_strategy": "steps",
        "eval_steps": 2, "save_steps": 2, "logging_steps": 1, "generation_max_length": 8, "learning_rate": GOOD_LR,
        "report_to": "none", "use_cpu": True, "seed": 3, "shuffle_buffer_size": 8, **overrides}
    path = folder / "base.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def write_space(folder: Path) -> Path:
    path = folder / "space.yaml"
    path.write_text("learning_rate: {type: float, low: 1.0e-8, high: 1.0e-1, log: true}\n"
                    "weight_decay: {type: float, low: 0.0, high: 0.1}\n")
    return path


def search_command(config, space, output_dir, storage, n_trials, *extra) -> list[str]:
    return [sys.executable, "-m", "whisper_finetuning.search", "--config", str(config), "--space", str(space),
            "--n_trials", str(n_trials), "--output_dir", str(output_dir), "--storage", storage, "--study_name", "test",
            "--pruner", "none", "--heartbeat_interval", "1", *extra]


def start(command, log: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def finish(worker: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    assert worker.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def trials_of(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="test", storage=storage).get_trials()


def test_a_search_killed_mid_trial_resumes_with_the_same_command(tiny_model_dir, corpus, tmp_path):
    out, storage = tmp_path / "search", f"sqlite:///{tmp_path / 'study.db'}"
    command = search_command(write_base_config(tiny_model_dir, corpus, tmp_path), write_space(tmp_path), out,
                             storage, 3, "--grace_period", "3", "--seed", "0")
    worker = start(command, tmp_path / "first.log")
    deadline = time.monotonic() + 600
    while True:  # kill it once a trial has finished and the next one has evaluated at least once
        assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-4000:]
        try:
            trials = trials_of(storage)
        except KeyError:  # the worker has not created the study yet
            trials = []
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        if running and any(t.state == TrialState.COMPLETE for t in trials):
            break
        time.sleep(0.2)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = {t.number: t for t in trials_of(storage) if t.state == TrialState.COMPLETE}
    (cut,) = [t for t in trials_of(storage) if t.state == TrialState.RUNNING]

    finish(start(command, tmp_path / "second.log"), tmp_path / "second.log")  # the same command
    trials = trials_of(storage)
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 3 + ["FAIL"]
    assert trials[cut.number].state == TrialState.FAIL
    (redone,) = [t for t in trials if t.system_attrs.get("failed_trial") == cut.number]
    assert redone.state == TrialState.COMPLETE and redone.params == cut.params
    assert redone.user_attrs["output_dir"] == cut.user_attrs["output_dir"]  # resumed in the cut trial's folder
    for number, earlier in before.items():  # finished trials are kept as they were, not run again
        assert (trials[number].value, trials[number].params, trials[number].datetime_complete) == (
            earlier.value, earlier.params, earlier.datetime_complete)
    for name in ("report.md", "trials.csv", "best_config.yaml"):
        assert (out / name).is_file(), name
    plots = sorted(path.name for path in (out / "plots").glob("*.png"))
    assert plots == ["intermediate_values.png", "optimization_history.png", "parallel_coordinate.png",
                     "param_importances.png", "slice.png"]
    assert all((out / "plots" / name).read_bytes().startswith(b"\x89PNG") for name in plots)
    assert len((out / "trials.csv").read_text().splitlines()) == 1 + 4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgresql():
    """A PostgreSQL server of the test's own on 127.0.0.1 (Debian's postgresql package), with a database for the
    study, as a cluster's workers would share."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert initdb, "PostgreSQL is not installed: apt-get install -y postgresql"
    binaries = initdb[-1].parent
    folder = Path(tempfile.mkdtemp(prefix="search-postgresql-"))
    as_server_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        shutil.chown(folder, "postgres", "postgres")
        as_server_user = ["runuser", "-u", "postgres", "--"]

    def run(*command):
        done = subprocess.run([*as_server_user, *map(str, command)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    port = free_port()
    run(binaries / "initdb", "-D", folder / "data", "-U", "postgres", "-A", "trust")
    run(binaries / "pg_ctl", "-D", folder / "data", "-l", folder / "server.log", "-w", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        run(binaries / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "search")
        yield f"postgresql://postgres@127.0.0.1:{port}/search"
    finally:
        run(binaries / "pg_ctl", "-D", folder / "data", "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_workers_finish_n_trials_between_them(tiny_model_dir, corpus, tmp_path, database, request):
    storage = (f"sqlite:///{tmp_path / 'study.db'}" if database == "sqlite"
               else request.getfixturevalue("postgresql"))
    config, space = write_base_config(tiny_model_dir, corpus, tmp_path), write_space(tmp_path)
    workers = [start(search_command(config, space, tmp_path / "search", storage, 4, "--grace_period", "120",
                                    "--seed", str(seed)), tmp_path / f"worker-{seed}.log") for seed in (1, 2)]
    for seed, worker in zip((1, 2), workers):
        finish(worker, tmp_path / f"worker-{seed}.log")
    trials = trials_of(storage)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert all(t.state == TrialState.COMPLETE or t.user_attrs["note"].startswith("surplus") for t in trials)
    assert len({t.user_attrs["output_dir"] for t in finished}) == 4  # no trial run twice
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 4
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers ran trials of the one study
    for trial in finished:
        results = json.loads((Path(trial.user_attrs["output_dir"]) / "eval_results.json").read_text())
        assert results["eval_wer"] == trial.value


def test_pruning_stops_a_hopeless_trial_and_the_best_config_trains_as_it_is(tiny_model_dir, corpus, tmp_path):
    out, storage = tmp_path / "search", f"sqlite:///{tmp_path / 'study.db'}"
    config = write_base_config(tiny_model_dir, corpus, tmp_path, max_steps=6, save_steps=6)
    study = optuna.create_study(study_name="test", storage=storage)
    for lr in (GOOD_LR, GOOD_LR, HOPELESS_LR):  # two trials to compare with, then the hopeless one
        study.enqueue_trial({"learning_rate": lr, "weight_decay": 0.0})
    search(["--config", str(config), "--space", str(write_space(tmp_path)), "--n_trials", "3", "--output_dir",
            str(out), "--storage", storage, "--study_name", "test", "--pruner", "median",
            "--pruner_startup_trials", "2"])
    good, also_good, hopeless = trials_of(storage)
    assert good.state == also_good.state == TrialState.COMPLETE and good.intermediate_values == {2: 100.0, 4: 100.0,
                                                                                                  6: 100.0}
    assert hopeless.state == TrialState.PRUNED and hopeless.params["learning_rate"] == HOPELESS_LR
    assert list(hopeless.intermediate_values) == [2] and hopeless.intermediate_values[2] > 130
    assert hopeless.user_attrs["note"].startswith("pruned at step 2 of 6")
    assert not (Path(hopeless.user_attrs["output_dir"]) / "model.safetensors").exists()  # stopped, nothing saved

    metrics = train_script.main([str(out / "best_config.yaml")])  # as it is: no flags
    assert metrics["eval_wer"] == good.value and (out / "best" / "model.safetensors").is_file()
    assert yaml.safe_load((out / "best_config.yaml").read_text())["learning_rate"] == GOOD_LR


def test_the_retention_objective_adds_the_weighted_retention_wer(tiny_model_dir, corpus, tmp_path):
    out, storage = tmp_path / "search", f"sqlite:///{tmp_path / 'study.db'}"
    config = write_base_config(tiny_model_dir, corpus, tmp_path, retention_dataset_name=str(corpus / "common_voice"),
                               retention_dataset_config_name="en", retention_language="en",
                               max_retention_samples=4)
    search(["--config", str(config), "--space", str(write_space(tmp_path)), "--n_trials", "1", "--output_dir",
            str(out), "--storage", storage, "--study_name", "test", "--retention_weight", "0.5"])
    (trial,) = trials_of(storage)
    run = Path(trial.user_attrs["output_dir"])
    final = json.loads((run / "eval_results.json").read_text())
    assert trial.value == pytest.approx(final["eval_wer"] + 0.5 * final["eval_retention_wer"])
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    for step in (2, 4):  # every evaluation during training reported the same weighted sum
        logged = {k: v for entry in history if entry["step"] == step for k, v in entry.items()}
        assert trial.intermediate_values[step] == pytest.approx(logged["eval_wer"]
                                                                + 0.5 * logged["eval_retention_wer"])
