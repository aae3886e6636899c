"""Atomic writes (files.py): the whole content or the old file, never a half-written one, with the permissions an
ordinary write would give."""

import os

import pytest

from whisper_finetuning.files import write_json_atomic, write_text_atomic


def test_a_new_file_gets_the_mode_of_an_ordinary_write_and_a_replaced_one_keeps_its_own(tmp_path):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x")  # open() applies the umask to 0o666
    write_text_atomic(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode == ordinary.stat().st_mode
    os.chmod(ordinary, 0o640)
    write_json_atomic(ordinary, {"a": 1})
    assert ordinary.stat().st_mode & 0o777 == 0o640 and ordinary.read_text() == '{\n  "a": 1\n}\n'


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    write_json_atomic(target, {"wer": 10})

    def full_disk(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(target, {"wer": 20})
    assert target.read_text() == '{\n  "wer": 10\n}\n' and sorted(tmp_path.iterdir()) == [target]
