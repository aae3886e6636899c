"""The Trainer callback that reports evaluations to the trial: what it reports, when it prunes."""

import optuna
import pytest
from transformers import TrainerControl, TrainerState, TrainingArguments

from whisper_finetuning.search.objective import Objective, ReportToTrial


def study_with_a_finished_trial() -> optuna.Study:
    """A study whose one finished trial reached WER 100 at steps 2 and 4: the median to beat."""
    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    trial = study.ask()
    trial.report(100.0, 2)
    trial.report(100.0, 4)
    study.tell(trial, 100.0)
    return study


def evaluate(callback, step, max_steps, metrics, hook="on_evaluate"):
    state = TrainerState(global_step=step, max_steps=max_steps)
    args = TrainingArguments(output_dir="unused", report_to="none")
    getattr(callback, hook)(args, state, TrainerControl(), **{"metrics" if hook == "on_evaluate" else "logs": metrics})


def test_a_clearly_worse_evaluation_prunes_the_trial():
    study = study_with_a_finished_trial()
    better = ReportToTrial(study.ask(), Objective())
    evaluate(better, 2, 6, {"eval_wer": 90.0})  # better than the median at this step: it goes on
    worse_trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned at step 2 of 6"):
        evaluate(ReportToTrial(worse_trial, Objective()), 2, 6, {"eval_wer": 139.0})
    assert worse_trial.user_attrs["note"] == "pruned at step 2 of 6 (objective 139.00)"
    assert [t.intermediate_values for t in study.trials[1:]] == [{2: 90.0}, {2: 139.0}]


def test_the_last_step_and_repeated_steps_are_not_pruned():
    study = study_with_a_finished_trial()
    trial = study.ask()
    callback = ReportToTrial(trial, Objective())
    evaluate(callback, 4, 4, {"eval_wer": 139.0})  # the run is done: pruning would save nothing
    evaluate(callback, 4, 4, {"eval_wer": 120.0})  # the final evaluation at the same step is not reported again
    assert study.trials[1].intermediate_values == {4: 139.0}


def test_the_retention_objective_waits_for_the_retention_wer():
    study = optuna.create_study()
    trial = study.ask()
    callback = ReportToTrial(trial, Objective(retention_weight=0.5))
    evaluate(callback, 2, 6, {"loss": 3.0}, hook="on_log")
    evaluate(callback, 2, 6, {"eval_wer": 40.0})
    assert study.trials[0].intermediate_values == {}  # the retention sets are evaluated next
    evaluate(callback, 2, 6, {"eval_retention_en_wer": 20.0})
    evaluate(callback, 2, 6, {"eval_retention_wer": 20.0}, hook="on_log")
    assert study.trials[0].intermediate_values == {2: 50.0}
    evaluate(callback, 4, 6, {"eval_retention_wer": 10.0}, hook="on_log")  # a new step starts from nothing
    assert study.trials[0].intermediate_values == {2: 50.0}
