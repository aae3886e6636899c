"""What a search writes: the best config (a training YAML that parses as it is) and the table of trials."""

import csv
import io
from pathlib import Path

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from transformers import HfArgumentParser

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.args import parse_config_and_flags, read_config
from whisper_finetuning.search.report import best_config, markdown_table, trial_rows, trials_csv

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "configs" / "cpu_smoke.yaml"
DISTRIBUTIONS = {"learning_rate": FloatDistribution(1e-6, 1e-3, log=True),
                 "freeze_encoder": CategoricalDistribution([False, True])}


def finished_study() -> optuna.Study:
    study = optuna.create_study(study_name="demo")
    for lr, freeze, wer, state in [(1e-5, False, 30.0, TrialState.COMPLETE), (3e-4, True, 21.5, TrialState.COMPLETE),
                                   (1e-3, False, None, TrialState.PRUNED), (2e-6, True, 45.0, TrialState.COMPLETE)]:
        study.add_trial(create_trial(
            state=state, value=wer, params={"learning_rate": lr, "freeze_encoder": freeze},
            distributions=DISTRIBUTIONS, intermediate_values={5: 80.0} if wer is None else {5: wer, 10: wer},
            user_attrs={"eval_wer": wer, "note": "pruned at step 5 of 10 (objective 80.00)" if wer is None else ""}))
    return study


def test_the_best_config_is_the_base_config_with_the_best_values(tmp_path):
    study = finished_study()
    text = best_config(study, read_config(str(BASE)), str(BASE), tmp_path)
    assert text.startswith("# The best trial of the search 'demo': trial 1 of 4 finished, objective 21.5.")
    path = tmp_path / "best_config.yaml"
    path.write_text(text)
    settings = yaml.safe_load(text)
    assert list(settings)[:len(read_config(str(BASE)))] == list(read_config(str(BASE)))  # the base's order kept
    model_args, _, _, finetuning_args, *_, training_args = parse_config_and_flags(
        HfArgumentParser(train_script.ARGUMENTS), [str(path)])
    assert training_args.learning_rate == 3e-4 and finetuning_args.freeze_encoder is True
    assert training_args.output_dir == str(tmp_path / "best")  # its own folder: no run there to refuse it
    assert training_args.max_steps == 10 and model_args.model_name_or_path == "openai/whisper-base"


def test_the_table_has_one_row_per_trial_with_its_outcome():
    rows = trial_rows(finished_study())
    table = list(csv.DictReader(io.StringIO(trials_csv(rows))))
    assert [row["state"] for row in table] == ["complete", "complete", "pruned", "complete"]
    assert [row["objective"] for row in table] == ["30.0", "21.5", "", "45.0"]
    assert [row["last_step"] for row in table] == ["10", "10", "5", "10"]
    assert table[2]["note"] == "pruned at step 5 of 10 (objective 80.00)" and table[1]["freeze_encoder"] == "True"
    markdown = markdown_table(rows).splitlines()
    assert markdown[0].startswith("| trial | state | objective | eval_wer |") and "output_dir" not in markdown[0]
    assert markdown[3] == "| 1 | complete | 21.5 | 21.5 |  | 0.0003 | True | 10 |  |  |  |"
