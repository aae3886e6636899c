"""Hyper-parameter search over the kit's own training runs, with Optuna (python -m whisper_finetuning.search).

    space.py      the search space, read from a YAML data file (configs/search/space.yaml)
    study.py      the study in a database (SQLite or PostgreSQL), samplers, pruner, and the worker loop that
                  re-runs trials cut off by a killed worker
    objective.py  one trial = one run of run_speech_recognition_seq2seq_streaming.py, reporting each evaluation
    report.py     the best config as a training YAML, the table of trials, plots
"""
