"""The search space file: parsing, its errors, conditional parameters, the grid, and the shipped spaces."""

from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial
from transformers import HfArgumentParser

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.args import config_to_flags, parse_config_and_flags
from whisper_finetuning.search.objective import Objective, check_base_config
from whisper_finetuning.search.space import grid_of, parse_space, read_space, sample

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "configs" / "search").glob("*.yaml"))
BASE = str(REPO / "configs" / "cpu_smoke.yaml")


def test_parameters_become_optuna_distributions():
    space = parse_space({
        "learning_rate": {"type": "float", "low": "1e-6", "high": 1.0e-4, "log": True},  # YAML reads 1e-6 as text
        "warmup_steps": {"type": "int", "low": 0, "high": 50, "step": 10, "grid": [0, 20]},
        "per_device_train_batch_size": {"type": "categorical", "choices": [8, 16]},
    }, "space.yaml")
    assert [p.name for p in space] == ["learning_rate", "warmup_steps", "per_device_train_batch_size"]
    assert space[0].distribution == FloatDistribution(1e-6, 1e-4, log=True)
    assert space[1].distribution == IntDistribution(0, 50, step=10) and space[1].grid == (0, 20)
    assert space[2].distribution == CategoricalDistribution([8, 16]) and space[2].grid == (8, 16)


@pytest.mark.parametrize("spec, message", [
    ({"type": "uniform", "low": 0, "high": 1}, "`type` must be float, int or categorical"),
    ({"type": "categorical"}, "needs `choices`"),
    ({"type": "float", "low": 1.0, "high": 0.1}, "low <= high"),
    ({"type": "float", "low": 0.0, "high": 0.1, "log": True}, "low > 0"),
    ({"type": "float", "low": 0.0, "high": 0.1, "grid": [0.5]}, "outside"),
    ({"type": "float", "low": 0.0, "high": 0.1, "when": {"use_peft": True}}, "earlier in the file"),
    ({"type": "float", "low": 0.0, "high": 0.1, "logarithmic": True}, "unknown keys ['logarithmic']"),
    ({"type": "float", "high": 0.1}, "'low'"),
    (0.1, "give a mapping"),
])
def test_a_wrong_parameter_is_named_with_the_problem(spec, message):
    with pytest.raises(ValueError, match="space.yaml, weight_decay: ") as error:
        parse_space({"weight_decay": spec}, "space.yaml")
    assert message in str(error.value)


def test_conditional_parameters_are_sampled_only_when_their_condition_holds():
    space = parse_space({
        "use_peft": {"type": "categorical", "choices": [False, True]},
        "freeze_encoder": {"type": "categorical", "choices": [False, True], "when": {"use_peft": False}},
        "lora_r": {"type": "categorical", "choices": [8, 32], "when": {"use_peft": True}},
    }, "space.yaml")
    # FixedTrial raises for a parameter it was not given, so these also show nothing else is suggested.
    assert sample(FixedTrial({"use_peft": True, "lora_r": 32}), space) == {"use_peft": True, "lora_r": 32}
    assert sample(FixedTrial({"use_peft": False, "freeze_encoder": True}), space) == {
        "use_peft": False, "freeze_encoder": True}


def test_the_grid_is_every_combination_of_the_grid_values():
    space = parse_space({"learning_rate": {"type": "float", "low": 1e-6, "high": 1e-3, "grid": [1e-5, 1e-4]},
                         "freeze_encoder": {"type": "categorical", "choices": [False, True]}}, "space.yaml")
    assert grid_of(space) == {"learning_rate": [1e-5, 1e-4], "freeze_encoder": [False, True]}
    with pytest.raises(ValueError, match=r"give `grid:` values for \['weight_decay'\]"):
        grid_of(parse_space({"weight_decay": {"type": "float", "low": 0, "high": 0.1}}, "space.yaml"))
    with pytest.raises(ValueError, match="conditional parameters"):
        grid_of(parse_space({"use_peft": {"type": "categorical", "choices": [True]},
                             "lora_r": {"type": "categorical", "choices": [8], "when": {"use_peft": True}}}, "s"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spaces_give_arguments_the_training_script_accepts(path):
    space = read_space(str(path))
    check_base_config(train_script, BASE, space, Objective(), pruning=True)
    parser = HfArgumentParser(train_script.ARGUMENTS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        params = sample(study.ask(), space)
        *_, training_args = parse_config_and_flags(parser, [BASE, *config_to_flags(params)])
        assert training_args.learning_rate == params["learning_rate"]


def test_the_space_must_name_training_arguments():
    space = parse_space({"learnig_rate": {"type": "float", "low": 1e-6, "high": 1e-4}}, "space.yaml")
    with pytest.raises(ValueError, match=r"\['learnig_rate'\], which are not arguments"):
        check_base_config(train_script, BASE, space, Objective(), pruning=True)
    space = parse_space({"output_dir": {"type": "categorical", "choices": ["a", "b"]}}, "space.yaml")
    with pytest.raises(ValueError, match="sets .'output_dir'. for each trial"):
        check_base_config(train_script, BASE, space, Objective(), pruning=True)


def test_the_retention_objective_needs_a_retention_set():
    space = read_space(str(SHIPPED[0]))
    with pytest.raises(ValueError, match="set retention_dataset_name"):
        check_base_config(train_script, BASE, space, Objective(retention_weight=0.5), pruning=True)
    assert Objective(0.5).value({"eval_wer": 20.0}) is None  # waits for the retention sets' evaluation
    assert Objective(0.5).value({"eval_wer": 20.0, "eval_retention_wer": 10.0}) == 25.0
    assert Objective().value({"eval_wer": 20.0, "eval_retention_wer": 10.0}) == 20.0
