"""Loaders for every layout, "+" mixing, sharding across processes, fast log-mel, and counted filters."""

import csv
import json
from collections import Counter

import numpy as np
import pyarrow
import pyarrow.parquet
import pytest
import soundfile
from transformers import WhisperFeatureExtractor

from whisper_finetuning.features.log_mel import LogMelExtractor
from whisper_finetuning.data.mixing import load_mixture, parse_dataset_specs, parse_probabilities
from whisper_finetuning.features.preprocessing import FilterSettings, Preprocessor, prepare
from whisper_finetuning.data.rows import COLUMNS, DataSourceError
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.synthetic.corpus import CV_COLUMNS


def read_tsv(path, header=True):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t") if header else csv.reader(handle, delimiter="\t"))


def test_common_voice_layout(corpus):
    folder = corpus / "common_voice" / "sv-SE"
    splits = {s: read_tsv(folder / f"{s}.tsv") for s in ("train", "dev", "test")}
    assert list(splits["train"][0]) == CV_COLUMNS
    sentences = {s: {r["sentence"] for r in rows} for s, rows in splits.items()}
    assert not (sentences["train"] & sentences["dev"]) and not (sentences["train"] & sentences["test"])
    assert len(read_tsv(folder / "validated.tsv")) == sum(len(rows) for rows in splits.values())
    assert {r["gender"] for r in splits["train"]} == {"male_masculine", "female_feminine"}
    assert len({r["client_id"] for r in splits["train"]}) == 4
    info = soundfile.info(folder / "clips" / splits["test"][0]["path"])
    assert info.samplerate == 48000 and info.format == "MP3" and info.duration > 1
    english = read_tsv(corpus / "common_voice" / "en" / "train.tsv")
    assert {r["accents"] for r in english} == {"United States English", "England English", "Scottish English",
                                               "Caribbean English"}


def test_fleurs_layout(corpus):
    folder = corpus / "fleurs" / "uk_ua"
    rows = read_tsv(folder / "test.tsv", header=False)
    assert len(rows[0]) == 7 and rows[0][1].endswith(".wav") and rows[0][6] in ("MALE", "FEMALE")
    assert rows[0][3] == rows[0][3].lower() and "'" in " ".join(r[3] for r in read_tsv(folder / "train.tsv", False))
    info = soundfile.info(folder / "audio" / "test" / rows[0][1])
    assert info.samplerate == 16000 and int(rows[0][5]) == info.frames


@pytest.mark.parametrize("name, config, split, count, text_of_first", [
    ("common_voice", "sv-SE", "train", 18, "sentence"),
    ("common_voice/sv-SE", None, "validation", 6, "sentence"),
    ("fleurs", "uk_ua", "test", 6, "raw_transcription"),
    ("fleurs/uk_ua", None, "dev", 6, "raw_transcription"),
])
def test_release_folders_load_with_common_columns(corpus, name, config, split, count, text_of_first):
    rows = list(load_source(str(corpus / name), config, split))
    assert len(rows) == count and list(rows[0]) == COLUMNS
    assert all(r["audio"]["path"] and r["text"] and r["gender"] in ("male", "female") for r in rows)
    assert all(r["duration"] > 0.5 and r["error"] == "" for r in rows)


def test_audiofolder_jsonl_and_parquet_manifests(corpus, tmp_path):
    fleurs = corpus / "fleurs" / "sv_se"
    tsv = read_tsv(fleurs / "test.tsv", header=False)
    records = [{"file_name": str(fleurs / "audio" / "test" / r[1]), "transcription": r[2]} for r in tsv]
    records[0]["prompt"] = "Karolinska institutet"  # a prompt column: the row's domain words
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    from_folder = list(load_source(str(tmp_path), None, "test"))
    assert [r["text"] for r in from_folder] == [r[2] for r in tsv]
    assert [r["prompt"] for r in from_folder] == ["Karolinska institutet"] + [""] * (len(tsv) - 1)
    parquet_dir = tmp_path / "hub_repo" / "data"
    parquet_dir.mkdir(parents=True)
    table = pyarrow.table({
        "audio": [{"bytes": open(r["file_name"], "rb").read(), "path": r["file_name"]} for r in records],
        "sentence": [r["transcription"] for r in records], "prompt": [r.get("prompt") for r in records]})
    pyarrow.parquet.write_table(table, parquet_dir / "test-00000-of-00001.parquet")
    from_parquet = list(load_source(str(tmp_path / "hub_repo"), None, "test", text_column="sentence"))
    assert [r["text"] for r in from_parquet] == [r[2] for r in tsv]
    assert all(r["audio"]["bytes"] for r in from_parquet) and list(from_parquet[0]) == COLUMNS
    assert [r["prompt"] for r in from_parquet] == [r["prompt"] for r in from_folder]
    not_streamed = list(load_source(str(tmp_path / "hub_repo"), None, "test", text_column="sentence", streaming=False))
    assert sorted(r["text"] for r in not_streamed) == sorted(r[2] for r in tsv)


def test_clear_errors_for_bad_sources(corpus, tmp_path):
    with pytest.raises(DataSourceError, match="no split 'holdout'.*available: .*dev"):
        load_source(str(corpus / "common_voice"), "sv-SE", "holdout")
    with pytest.raises(DataSourceError, match="no column 'txt'.*sentence"):
        load_source(str(corpus / "common_voice"), "sv-SE", "train", text_column="txt")
    with pytest.raises(DataSourceError, match="neither a Common Voice folder"):
        load_source(str(tmp_path), None, "train")


def manifest(tmp_path, name, count):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps({"file_name": f"{name}-{i}.wav", "text": f"{name} {i}"}) for i in range(count)))
    for i in range(count):  # the files exist (a manifest whose files are all missing is refused); none is decoded
        (tmp_path / f"{name}-{i}.wav").touch()
    return str(path)


def test_plus_syntax_expands_per_dataset():
    specs = parse_dataset_specs("a+b", "sv-SE+sv_se", "train+validation", "sentence+transcription")
    assert [(s.name, s.config, s.split, s.text_column) for s in specs] == [
        ("a", "sv-SE", "train", "sentence"), ("b", "sv_se", "validation", "transcription")]
    assert [s.split for s in parse_dataset_specs("a", None, "train+validation", None)] == ["train", "validation"]
    with pytest.raises(ValueError, match="dataset_name has 2 .* but there are 3 datasets"):
        parse_dataset_specs("a+b", "x+y+z", "train", None)
    assert parse_probabilities("2000+1000", 2) == pytest.approx([2 / 3, 1 / 3])


def test_interleaving_loses_and_duplicates_nothing(tmp_path):
    specs = parse_dataset_specs(f"{manifest(tmp_path, 'big', 50)}+{manifest(tmp_path, 'small', 10)}", None, "train", None)
    ids = [row["id"] for row in load_mixture(specs)]
    assert len(ids) == len(set(ids)) == 60
    # The anchor's default strategy: stops when the small dataset runs out.
    assert len(list(load_mixture(specs, stopping_strategy="first_exhausted"))) < 25


def test_interleaving_follows_probabilities(tmp_path):
    specs = parse_dataset_specs(f"{manifest(tmp_path, 'a', 1000)}+{manifest(tmp_path, 'b', 1000)}", None, "train", None)
    first = [row["id"].split("-")[0] for row in load_mixture(specs, probabilities=[0.8, 0.2], seed=1)][:500]
    assert Counter(first)["a"] / 500 == pytest.approx(0.8, abs=0.05)


@pytest.mark.parametrize("sizes", [(40, 20), (7, 5)])  # shards divisible by 2, and not
def test_two_processes_see_disjoint_samples(tmp_path, sizes):
    names = "+".join(manifest(tmp_path, f"d{i}", n) for i, n in enumerate(sizes))
    specs = parse_dataset_specs(names, None, "train", None)
    ranks = [[row["id"] for row in load_mixture(specs, rank=r, world_size=2)] for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])
    assert sorted(ranks[0] + ranks[1]) == sorted(row["id"] for row in load_mixture(specs))


def test_fast_log_mel_equals_the_feature_extractor(corpus):
    clips = [r for r in load_source(str(corpus / "fleurs"), "sv_se", "train")][:8]
    from whisper_finetuning.data.audio import load_audio

    audio = [load_audio(r["audio"]["path"]) for r in clips] + [np.zeros(8000, np.float32),
                                                               np.random.default_rng(0).normal(size=490_000).astype(np.float32)]
    for mel_bins in (80, 128):
        extractor = WhisperFeatureExtractor(feature_size=mel_bins)
        expected = extractor(audio, sampling_rate=16000, return_tensors="np").input_features
        actual = np.stack([LogMelExtractor(extractor)(a) for a in audio])
        assert actual.shape == expected.shape == (len(audio), mel_bins, 3000)
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)


def test_broken_samples_are_skipped_and_counted(corpus, tmp_path, processor):
    good = str(next(iter(load_source(str(corpus / "fleurs"), "sv_se", "test")))["audio"]["path"])
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(open(corpus / "common_voice" / "sv-SE" / "clips" / "common_voice_sv-SE_10000000.mp3", "rb").read()[:300])
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16000)
    stereo = tmp_path / "stereo_44k.wav"
    soundfile.write(stereo, np.stack([soundfile.read(good)[0]] * 2, axis=1), 16000)
    soundfile.write(tmp_path / "resampled.wav", soundfile.read(good)[0], 44100)  # a wrong sample rate is resampled
    long_clip = tmp_path / "long.wav"
    soundfile.write(long_clip, np.zeros(16000 * 31, np.float32), 16000)
    records = [("ok.wav", good, "a good clip"), ("t", str(truncated), "truncated"), ("e", str(empty), "empty"),
               ("m", str(tmp_path / "missing.wav"), "missing"), ("s", str(stereo), "stereo"),
               ("r", str(tmp_path / "resampled.wav"), "other rate"), ("l", str(long_clip), "too long"),
               ("n", good, "   "), ("x", good, "word " * 500)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"id": i, "file_name": f, "text": t}) for i, f, t in records))
    preprocessor = Preprocessor(processor)
    kept = list(prepare(load_source(str(tmp_path / "m.jsonl"), None, "train"), preprocessor))
    assert [k["labels"][0] for k in kept] == [processor.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")] * 3
    assert kept[0]["input_features"].shape == (80, 3000)
    assert preprocessor.stats.skipped == Counter({"unreadable audio": 3, "longer than 30.0 s": 1, "empty text": 1,
                                                  "labels longer than 448 tokens": 1})
    assert {path for path, _ in preprocessor.stats.broken} == {str(truncated), str(empty), str(tmp_path / "missing.wav")}


def test_too_many_unreadable_files_stop_with_a_clear_error(corpus, tmp_path, processor):
    good = str(next(iter(load_source(str(corpus / "fleurs"), "sv_se", "test")))["audio"]["path"])
    files = [good] + [str(tmp_path / f"gone{i}.wav") for i in range(5)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps({"file_name": f, "text": "x"}) for f in files))
    preprocessor = Preprocessor(processor, FilterSettings(min_samples_for_failure_check=4))
    # The rows are decoded in threads: which missing file is met first depends on the machine's load.
    with pytest.raises(DataSourceError, match=r"(\d) of \d samples are broken \(\1 unreadable audio\), more than 5%.*"
                                              r"Fix or remove them; the first: .*gone\d\.wav"):
        list(prepare(load_source(str(tmp_path / "m.jsonl"), None, "train"), preprocessor))


def test_shuffle_is_epoch_aware_and_reproducible(tmp_path):
    specs = parse_dataset_specs(manifest(tmp_path, "s", 200), None, "train", None)

    def order(epoch):
        stream = load_mixture(specs).shuffle(seed=7, buffer_size=50)
        stream.set_epoch(epoch)
        return [row["id"] for row in stream]

    assert order(0) != order(1) and sorted(order(0)) == sorted(order(1))
    assert order(1) == order(1)  # a resumed run that sets the same epoch sees the same order
