"""The search space: which training arguments a trial samples, and from what. It is data (configs/search/*.yaml):

    learning_rate: {type: float, low: 1.0e-6, high: 1.0e-4, log: true, grid: [3.0e-6, 1.0e-5, 3.0e-5]}
    per_device_train_batch_size: {type: categorical, choices: [8, 16, 32]}
    lora_r: {type: categorical, choices: [8, 32], when: {use_peft: true}}

Each key is a flag of run_speech_recognition_seq2seq_streaming.py. `float` and `int` take low, high, and optionally
log (sample on a log scale) and step; `categorical` takes choices. `grid` lists the values the grid sampler tries (a
categorical parameter tries its choices). `when` samples a parameter only in trials where the parameters it names,
earlier in the file, took those values; in the other trials the base config's value stays.
"""

import math
from dataclasses import dataclass, field

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ..args import read_config

KEYS = ("type", "low", "high", "log", "step", "choices", "grid", "when")


@dataclass(frozen=True)
class Parameter:
    name: str
    distribution: BaseDistribution
    grid: tuple = ()  # the values the grid sampler tries
    when: dict = field(default_factory=dict)  # {earlier parameter: the value it must have taken}

    def applies(self, values: dict) -> bool:
        return all(name in values and values[name] == value for name, value in self.when.items())

    def suggest(self, trial):
        distribution = self.distribution
        if isinstance(distribution, CategoricalDistribution):
            return trial.suggest_categorical(self.name, list(distribution.choices))
        suggest = trial.suggest_int if isinstance(distribution, IntDistribution) else trial.suggest_float
        return suggest(self.name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


def read_space(path: str) -> list[Parameter]:
    return parse_space(read_config(path), str(path))


def parse_space(settings: dict, source: str) -> list[Parameter]:
    if not settings:
        raise ValueError(f"{source} holds no parameter: map training arguments to their ranges, e.g. "
                         "learning_rate: {type: float, low: 1.0e-6, high: 1.0e-4, log: true}")
    space = []
    for name, spec in settings.items():
        try:
            space.append(parse_parameter(name, spec, [parameter.name for parameter in space]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{source}, {name}: {error}") from None
    return space


def parse_parameter(name: str, spec, earlier: list[str]) -> Parameter:
    if not isinstance(spec, dict):
        raise ValueError("give a mapping, e.g. {type: float, low: 1.0e-6, high: 1.0e-4, log: true}")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown keys {unknown}; the keys are {', '.join(KEYS)}")
    kind = spec.get("type")
    if kind == "categorical":
        if not isinstance(spec.get("choices"), list):
            raise ValueError("a categorical parameter needs `choices`, a list")
        distribution = CategoricalDistribution(spec["choices"])
        grid = tuple(distribution.choices)
    elif kind in ("float", "int"):
        number = float if kind == "float" else int  # float() also reads the 1e-5 that YAML leaves as a string
        low, high = number(spec["low"]), number(spec["high"])
        step = None if spec.get("step") is None else number(spec["step"])
        if kind == "float":
            distribution = FloatDistribution(low, high, log=bool(spec.get("log", False)), step=step)
        else:
            distribution = IntDistribution(low, high, log=bool(spec.get("log", False)), step=step or 1)
        grid = tuple(number(value) for value in spec.get("grid", ()))
        outside = [value for value in grid if not (low <= value <= high and math.isfinite(value))]
        if outside:
            raise ValueError(f"grid values {outside} are outside [{low}, {high}]")
    else:
        raise ValueError(f"`type` must be float, int or categorical, not {kind!r}")
    when = spec.get("when") or {}
    if not isinstance(when, dict):
        raise ValueError("`when` maps earlier parameters to the value they must take, e.g. {use_peft: true}")
    not_earlier = [other for other in when if other not in earlier]
    if not_earlier:
        raise ValueError(f"`when` names {not_earlier}: a condition must be a parameter earlier in the file")
    return Parameter(name, distribution, grid, dict(when))


def sample(trial, space: list[Parameter]) -> dict:
    """The trial's training arguments: each parameter whose conditions hold, suggested by the trial's sampler."""
    values = {}
    for parameter in space:
        if parameter.applies(values):
            values[parameter.name] = parameter.suggest(trial)
    return values


def grid_of(space: list[Parameter]) -> dict[str, list]:
    """The grid sampler's search space: every combination of these values is one trial."""
    conditional = [parameter.name for parameter in space if parameter.when]
    if conditional:
        raise ValueError(f"the grid sampler tries every combination, so conditional parameters ({conditional}) would "
                         "repeat identical runs: remove their `when` or use --sampler tpe")
    missing = [parameter.name for parameter in space if not parameter.grid]
    if missing:
        raise ValueError(f"give `grid:` values for {missing} to use --sampler grid")
    return {parameter.name: list(parameter.grid) for parameter in space}
