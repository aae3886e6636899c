"""What a search leaves: the best trial's config as a ready training YAML, a table of the trials (CSV and in
report.md) and plots (optimisation history, intermediate values, parameter importances, parallel coordinates,
slices) as PNG."""

import csv
import io
import logging
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from ..figures import pyplot, save_png
from ..files import write_text_atomic
from .study import FINISHED

logger = logging.getLogger(__name__)
TRAIN_COMMAND = "python run_speech_recognition_seq2seq_streaming.py"
PLOTS = {
    "optimization_history": "plot_optimization_history",
    "intermediate_values": "plot_intermediate_values",
    "param_importances": "plot_param_importances",
    "parallel_coordinate": "plot_parallel_coordinate",
    "slice": "plot_slice",
}


def trial_rows(study: optuna.Study) -> list[dict]:
    """One row per trial: its outcome, metrics and parameters."""
    names = list(dict.fromkeys(name for trial in study.trials for name in trial.params))
    rows = []
    for trial in study.trials:
        duration = trial.duration.total_seconds() if trial.duration else None
        rows.append({
            "trial": trial.number, "state": trial.state.name.lower(), "objective": trial.value,
            "eval_wer": trial.user_attrs.get("eval_wer"), "eval_retention_wer": trial.user_attrs.get("eval_retention_wer"),
            **{name: trial.params.get(name) for name in names},
            "last_step": max(trial.intermediate_values, default=None), "duration_s": duration,
            "retry_of": trial.system_attrs.get("failed_trial"), "note": trial.user_attrs.get("note", ""),
            "worker": trial.user_attrs.get("worker"), "output_dir": trial.user_attrs.get("output_dir"),
        })
    return rows


def trials_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()


def markdown_table(rows: list[dict], leave_out=("worker", "output_dir")) -> str:
    if not rows:
        return "(no trials)\n"
    columns = [column for column in rows[0] if column not in leave_out]

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "/")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def best_config(study: optuna.Study, base_settings: dict, base_config: str, output_dir: Path) -> str:
    """The base config with the best trial's values, and an output_dir of its own: it trains as it is."""
    best = study.best_trial
    path = output_dir / "best_config.yaml"
    settings = {**base_settings, **best.params, "output_dir": str(output_dir / "best")}
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    header = (f"# The best trial of the search {study.study_name!r}: trial {best.number} of {finished} finished, "
              f"objective {best.value:.4g}.\n"
              f"# {base_config} with the searched values {best.params}\n"
              f"# and an output_dir of its own. Train it:  {TRAIN_COMMAND} {path}\n")
    return header + yaml.safe_dump(settings, sort_keys=False, allow_unicode=True)


def write_plots(study: optuna.Study, folder: Path) -> dict[str, Path]:
    """The PNG plots; they need at least two completed trials to show anything."""
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        logger.warning("No plots: they need at least 2 completed trials")
        return {}
    import numpy as np
    from optuna.visualization import matplotlib as plots

    pyplot()  # the Agg backend, before Optuna's plots draw

    written = {}
    for name, function in PLOTS.items():
        with warnings.catch_warnings():  # the matplotlib backend of Optuna's plots is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = getattr(plots, function)(study)
        figure = np.atleast_1d(axes).flat[0].figure  # plot_slice gives one axes per parameter
        written[name] = save_png(figure, folder / f"{name}.png", dpi=110, bbox_inches="tight")
    return written


def write_report(study: optuna.Study, base_settings: dict, base_config: str, space: str, objective_text: str,
                 output_dir: str) -> dict[str, Path]:
    """Write best_config.yaml, trials.csv, plots/*.png and report.md into output_dir; returns their paths."""
    output_dir = Path(output_dir)
    rows = trial_rows(study)
    written = {"trials": output_dir / "trials.csv", "report": output_dir / "report.md"}
    write_text_atomic(written["trials"], trials_csv(rows))
    plots = write_plots(study, output_dir / "plots")
    written.update(plots)

    states = {state: len(study.get_trials(deepcopy=False, states=(state,))) for state in TrialState}
    starts = [trial.datetime_start for trial in study.trials if trial.datetime_start]
    ends = [trial.datetime_complete for trial in study.trials if trial.datetime_complete]
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    busy = sum(trial.duration.total_seconds() for trial in study.trials if trial.duration)
    lines = [f"# Hyper-parameter search `{study.study_name}`", "",
             f"Base config `{base_config}`, space `{space}`; objective: {objective_text}, minimised.", "",
             f"Trials: {states[TrialState.COMPLETE]} completed, {states[TrialState.PRUNED]} pruned, "
             f"{states[TrialState.FAIL]} failed (cut off and queued again, or surplus), "
             f"{states[TrialState.RUNNING]} running, {states[TrialState.WAITING]} waiting. "
             f"Wall time from the first trial's start to the last trial's end: {wall / 60:.1f} min; the trials "
             f"themselves took {busy / 60:.1f} min.", ""]
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        lines += ["No trial has completed yet, so there is no best config.", ""]
    else:
        written["best_config"] = output_dir / "best_config.yaml"
        write_text_atomic(written["best_config"], best_config(study, base_settings, base_config, output_dir))
        lines += [f"## Best: trial {best.number}, objective {best.value:.4g}", "",
                  "| parameter | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in best.params.items()), "",
                  f"Train it: `{TRAIN_COMMAND} {written['best_config']}`", ""]
    lines += ["## Trials", "", markdown_table(rows)]
    if plots:
        lines += ["## Plots", "", *(f"![{name}](plots/{path.name})" for name, path in plots.items()), ""]
    write_text_atomic(written["report"], "\n".join(lines))
    return written
