"""The one argument surface: every option documented, the language canonicalised once, config values typed."""

import dataclasses

import pytest
from transformers import HfArgumentParser

import run_eval
import run_speech_recognition_seq2seq_streaming as train_script
from training_runs import arguments
from whisper_finetuning.args import DataArguments, ModelArguments, PreprocessingArguments, parse_config_and_flags
from whisper_finetuning.data.balancing import BalancingArguments
from whisper_finetuning.evaluation.arguments import EvalArguments
from whisper_finetuning.features.cache import CacheArguments
from whisper_finetuning.training.arguments import FineTuningArguments, TrainingDataArguments

KIT_ARGUMENTS = [ModelArguments, DataArguments, PreprocessingArguments, FineTuningArguments, TrainingDataArguments,
                 BalancingArguments, EvalArguments, CacheArguments]


@pytest.mark.parametrize("dataclass", KIT_ARGUMENTS, ids=lambda d: d.__name__)
def test_every_option_has_help(dataclass):
    missing = [f.name for f in dataclasses.fields(dataclass) if not f.metadata.get("help")]
    assert not missing, f"{dataclass.__name__} fields without help: {missing}"


@pytest.mark.parametrize("script, dataclasses_", [
    (train_script, [ModelArguments, DataArguments, PreprocessingArguments, FineTuningArguments,
                    TrainingDataArguments]),
    (run_eval, [ModelArguments, DataArguments, EvalArguments]),
], ids=["training", "run_eval"])
def test_help_of_the_entry_scripts_lists_every_option(script, dataclasses_, capsys):
    with pytest.raises(SystemExit) as exit_:
        script.main(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    for dataclass in dataclasses_:
        for option in dataclasses.fields(dataclass):
            assert f"--{option.name}" in shown, option.name


def test_shared_options_are_declared_once():
    names = [f.name for d in KIT_ARGUMENTS for f in dataclasses.fields(d)]
    # The exceptions are options of training and of run_eval.py, which never share a parser, with the same meaning
    # and their own defaults (run_eval transcribes clips over 30 s in full, so its duration limit is higher).
    exceptions = {"max_eval_samples", "output_dir", "split", "overwrite_output_dir", "max_duration_in_seconds"}
    duplicated = {n for n in names if names.count(n) > 1} - exceptions
    assert not duplicated


@pytest.mark.parametrize("given", ["swedish", "Swedish", "<|sv|>", "sv"])
def test_the_language_is_canonicalised_to_its_code_at_parsing(given):
    (data_args,) = HfArgumentParser(DataArguments).parse_args_into_dataclasses(args=["--language", given])
    assert data_args.language == "sv"


def test_language_name_and_code_give_identical_cards(tiny_model_dir, corpus, tmp_path):
    cards = []
    for language in ("swedish", "sv"):
        out = tmp_path / language / "model"
        argv = arguments(tiny_model_dir, corpus, out, "--do_train", "--do_eval", "--max_steps", "1",
                         "--max_eval_samples", "2", "--save_strategy", "no")
        argv[argv.index("--language") + 1] = language
        train_script.main(argv)
        cards.append((out / "README.md").read_text())
    assert cards[0] == cards[1]
    assert "language: sv\n" in cards[0] and "swedish" not in cards[0]


def test_run_eval_writes_the_language_code(tiny_model_dir, corpus, tmp_path):
    results = run_eval.main(["--model_name_or_path", str(tiny_model_dir), "--language", "<|sv|>",
                             "--dataset_name", str(corpus / "fleurs"), "--dataset_config_name", "sv_se",
                             "--max_eval_samples", "2", "--output_dir", str(tmp_path), "--dtype", "float32",
                             "--generation_max_length", "8"])
    assert results[0]["language"] == "sv"
    assert "language: sv" in (tmp_path / "model_index.yaml").read_text()


def test_config_values_keep_their_types(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model_name_or_path: m\ndataset_name: d\nlanguage: swedish\noutput_dir: o\nmax_steps: 5\n"
                      "gradient_checkpointing_kwargs: {use_reentrant: false}\nreport_to: [none]\n")
    parsed = parse_config_and_flags(HfArgumentParser(train_script.ARGUMENTS), [str(config)])
    training_args = parsed[-1]
    assert training_args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    assert parsed[1].language == "sv" and training_args.report_to == []


@pytest.mark.parametrize("argv, message", [
    (["--task", "translit"], "--task must be one of transcribe, translate"),
    (["--min_duration_in_seconds", "5", "--max_duration_in_seconds", "2"], "min_duration_in_seconds"),
    (["--shuffle_buffer_size", "0"], "--shuffle_buffer_size must be at least 1"),
    (["--stopping_strategy", "longest"], "--stopping_strategy must be one of"),
])
def test_bad_values_are_refused_at_parsing(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_config_and_flags(HfArgumentParser(train_script.ARGUMENTS),
                               ["--model_name_or_path", "m", "--output_dir", "o", *argv])


@pytest.mark.parametrize("module", ["whisper_finetuning.app.__main__", "whisper_finetuning.live_captions"])
def test_the_argparse_commands_take_model_name_or_path_and_the_model_alias(module):
    import importlib

    parse_args = importlib.import_module(module).parse_args
    extra = ["--source", "x.wav"] if module.endswith("live_captions") else []
    for flag in ("--model_name_or_path", "--model"):
        args = parse_args([flag, "openai/whisper-tiny", "--language", "sv", "--dtype", "float32", *extra])
        assert (args.model_name_or_path, args.language, args.dtype) == ("openai/whisper-tiny", "sv", "float32")


def test_export_and_merge_take_model_name_or_path_too():
    from whisper_finetuning.export.__main__ import parse_arguments

    for flag in ("--model_name_or_path", "--model"):
        assert parse_arguments([flag, "m", "--output_dir", "out"]).model_name_or_path == "m"
