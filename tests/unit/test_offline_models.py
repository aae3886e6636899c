"""Finding, verifying, converting and caching the offline weight packages."""

import hashlib
import importlib
import json
import logging

import pytest
from ct2_writer import ct2_variables, write_ct2_model

from whisper_finetuning.offline import resolver as offline_models
from whisper_finetuning.offline.resolver import OfflineModelError, offline_model_dir, resolve_model


def install_fake_package(site, name: str, files: dict) -> dict:
    """Lay out an installed distribution under `site`; returns the table entry (pinned hash and size) per file."""
    module = name.replace("-", "_")
    entries = {}
    for relative, content in files.items():
        path = site / module / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        entries[relative] = {"package": name, "path": f"{module}/{relative}",
                             "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content)}
    (site / module / "__init__.py").write_text("")
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    return entries


@pytest.fixture
def fake_model(tmp_path, monkeypatch, tiny_whisper, base_ct2_config, base_tokenizer_file):
    """A tiny model split over two fake installed packages, registered as 'test/tiny-whisper'."""
    site = tmp_path / "site"
    blob = write_ct2_model(ct2_variables(tiny_whisper.state_dict(), 2, 2))
    half = len(blob) // 2
    part1 = install_fake_package(site, "fake-whisper-part1", {
        "data/model.bin.part1": blob[:half],
        "data/config.json": json.dumps(base_ct2_config).encode(),
        "data/tokenizer.json": base_tokenizer_file.read_bytes(),
    })
    part2 = install_fake_package(site, "fake-whisper-part2", {"data/model.bin.part2": blob[half:]})
    monkeypatch.syspath_prepend(str(site))
    table = {"test/tiny-whisper": [{
        "model_bin": [part1["data/model.bin.part1"], part2["data/model.bin.part2"]],
        "config": part1["data/config.json"], "tokenizer": part1["data/tokenizer.json"],
    }]}
    monkeypatch.setattr(offline_models, "offline_model_table", lambda: table)
    monkeypatch.setenv("WHISPER_FINETUNING_CACHE", str(tmp_path / "cache"))
    return site


def test_builds_once_and_reuses_the_cached_copy(fake_model, tmp_path):
    first = offline_model_dir("test/tiny-whisper")
    assert first == tmp_path / "cache" / "models" / "test--tiny-whisper"
    assert (first / "model.safetensors").is_file() and (first / "preprocessor_config.json").is_file()
    stamp = json.loads((first / "offline_source.json").read_text())
    assert stamp["packages"] == {"fake-whisper-part1": "1.0", "fake-whisper-part2": "1.0"}
    built_at = (first / "model.safetensors").stat().st_mtime_ns
    assert offline_model_dir("test/tiny-whisper") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == built_at


def test_an_interrupted_build_is_rebuilt(fake_model):
    target = offline_model_dir("test/tiny-whisper")
    (target / "offline_source.json").unlink()  # as if killed before the build finished
    (target / "model.safetensors").write_bytes(b"partial")
    rebuilt = offline_model_dir("test/tiny-whisper")
    assert (rebuilt / "offline_source.json").is_file()
    assert (rebuilt / "model.safetensors").stat().st_size > 1000


def test_missing_package_names_the_install_command(fake_model):
    for path in fake_model.glob("fake_whisper_part2*"):
        path.rename(path.with_name("gone-" + path.name))
    with pytest.raises(OfflineModelError, match="pip install fake-whisper-part1 fake-whisper-part2"):
        offline_model_dir("test/tiny-whisper")


def test_truncated_package_file_is_reported(fake_model):
    part = fake_model / "fake_whisper_part2" / "data" / "model.bin.part2"
    part.write_bytes(part.read_bytes()[:-100])
    with pytest.raises(OfflineModelError, match=r"truncated, damaged.*pip install --force-reinstall fake-whisper-part2"):
        offline_model_dir("test/tiny-whisper")


def test_corrupted_package_file_fails_its_hash(fake_model):
    part = fake_model / "fake_whisper_part1" / "data" / "model.bin.part1"
    data = bytearray(part.read_bytes())
    data[-1] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(OfflineModelError, match="does not have the SHA-256 the kit pins.*fake-whisper-part1"):
        offline_model_dir("test/tiny-whisper")


def test_the_pinned_hash_is_checked_not_the_uploaders_record(fake_model, monkeypatch):
    """A changed upload with a matching RECORD (as the uploader would ship it) still fails the kit's own pin."""
    table = offline_models.offline_model_table()
    entry = table["test/tiny-whisper"][0]["config"]
    monkeypatch.setattr(offline_models, "offline_model_table",
                        lambda: {"test/tiny-whisper": [{**table["test/tiny-whisper"][0],
                                                        "config": {**entry, "sha256": "0" * 64}}]})
    with pytest.raises(OfflineModelError, match="SHA-256 the kit pins"):
        offline_model_dir("test/tiny-whisper")


def test_every_shipped_entry_pins_a_hash_and_a_size():
    for name, sources in offline_models.offline_model_table().items():
        for source in sources:
            for entry in source["model_bin"] + [source["config"], source["tokenizer"]]:
                assert len(entry["sha256"]) == 64 and entry["bytes"] > 0, (name, entry["path"])


def test_resolve_falls_back_to_the_offline_copy_and_says_so(fake_model, caplog):
    with caplog.at_level(logging.WARNING):
        resolved = resolve_model("test/tiny-whisper")
    assert resolved == str(offline_model_dir("test/tiny-whisper"))
    assert "offline copy of test/tiny-whisper" in caplog.text and "could not be reached" in caplog.text


def test_no_fallback_for_another_revision_or_an_answer_from_the_hub(fake_model, monkeypatch):
    with pytest.raises(OfflineModelError, match="revision 'mian' of test/tiny-whisper needs the Hub"):
        resolve_model("test/tiny-whisper", revision="mian")
    from huggingface_hub.errors import Response, RevisionNotFoundError

    def hub_says_no(*args, **kwargs):  # what a reachable Hub answers for a wrong revision
        http = importlib.import_module(Response.__module__.split(".")[0])  # huggingface_hub's own HTTP client
        response = Response(404, request=http.Request("GET", "https://huggingface.co/x"))
        raise OSError("revision not found") from RevisionNotFoundError("Revision Not Found", response=response)

    monkeypatch.setattr("transformers.utils.cached_file", hub_says_no)
    with pytest.raises(OSError, match="revision not found"):
        resolve_model("test/tiny-whisper")

def test_resolve_keeps_local_directories_and_rejects_unknown_ids(fake_model, tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    with pytest.raises(OSError):
        resolve_model("nobody/no-such-whisper")


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(OfflineModelError, match="openai/whisper-base"):
        offline_models._sources("openai/whisper-gigantic")
