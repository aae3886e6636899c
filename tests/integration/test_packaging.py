"""The kit as a user gets it from `pip install .`: the built wheel holds every data file, and a non-editable
install in a fresh virtual environment works outside the checkout (language table, entry scripts, a transcription)."""

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("whisper_finetuning", "normalizers")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(REPO, build / "src", ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "__pycache__",
                                                                       "build", "*_output", "output"))
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                          str(out), str(build / "src")], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = out.glob("whisper_finetuning-*.whl")
    return path


def test_the_wheel_holds_every_file_of_the_packages(wheel):
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert any(name.endswith(".tsv") for name in tracked)
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [name for name in tracked if name not in shipped]
    assert not missing, f"not in the wheel: {missing}"


def test_a_non_editable_install_works_in_a_fresh_environment(wheel, tiny_model_dir, corpus, tmp_path):
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # The torch this suite runs with (the CPU build here), then the wheel with the rest of its dependencies.
    for requirement in (f"torch=={torch.__version__.split('+')[0]}", str(wheel)):
        run = subprocess.run([*pip, requirement], capture_output=True, text=True, timeout=1200)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    work = tmp_path / "work"  # outside the checkout, so nothing is imported from it
    work.mkdir()
    for script in ("run_eval.py", "run_speech_recognition_seq2seq_streaming.py"):
        shutil.copy(REPO / script, work / script)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}

    def check(*command) -> str:
        run = subprocess.run([str(python), *command], cwd=work, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, f"{command}: " + run.stdout[-3000:] + run.stderr[-3000:]
        return run.stdout

    where = check("-c", "import whisper_finetuning, normalizers; print(whisper_finetuning.__file__, normalizers.__file__)")
    assert str(REPO) not in where and "site-packages" in where
    assert check("-c", "from normalizers import get_language; l = get_language('swedish'); "
                       "print(l.code, l.fleurs, l.common_voice[0])").split() == ["sv", "sv_se", "sv-SE"]
    check("-c", "from whisper_finetuning.offline.resolver import offline_model_table; "
                "from whisper_finetuning.synthetic.corpus import read_sentences, base_voices; "
                "assert offline_model_table() and read_sentences('demo_sv_test') and base_voices('en')")
    assert "--model_name_or_path" in check("run_eval.py", "--help")
    assert "--feature_cache_dir" in check("run_speech_recognition_seq2seq_streaming.py", "--help")
    check("run_eval.py", "--model_name_or_path", str(tiny_model_dir), "--language", "sv", "--dtype", "float32",
          "--dataset_name", str(corpus / "fleurs"), "--dataset_config_name", "sv_se", "--max_eval_samples", "2",
          "--output_dir", str(work / "eval"))
    assert (work / "eval" / "results.json").is_file() and (work / "eval" / "model_index.yaml").is_file()
