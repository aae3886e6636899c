"""Data faults are named, counted and never silently wrong: malformed rows, wrong encodings, missing columns, clips
shorter than listed, zero rows, FLEURS archives as the Hub packs them, and byte-range shards across processes."""

import csv
import itertools
import json
import re
import shutil
import tarfile
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

import whisper_finetuning.data.text_files as text_files
from whisper_finetuning.args import DataArguments, PreprocessingArguments
from whisper_finetuning.data.audio import decode_row_audio, load_audio
from whisper_finetuning.data.common_voice import CommonVoiceTable
from whisper_finetuning.data.fleurs import is_fleurs_folder
from whisper_finetuning.data.mixing import count_samples, load_mixture, parse_dataset_specs
from whisper_finetuning.data.rows import COLUMNS, DataSourceError
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features.preprocessing import FilterSettings, Preprocessor, prepare
from whisper_finetuning.training.arguments import RetentionArguments, TrainingDataArguments
from whisper_finetuning.training.stream import eval_set, train_stream


def read_tsv(path, header=True):
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader if header else csv.reader
        return list(reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def common_voice_copy(corpus, tmp_path, locale="sv-SE") -> Path:
    """The corpus's Common Voice folder with its own TSVs (to damage) and the corpus's clips."""
    source = corpus / "common_voice" / locale
    folder = tmp_path / locale
    folder.mkdir()
    (folder / "clips").symlink_to(source / "clips")
    for tsv in source.glob("*.tsv"):
        shutil.copy(tsv, folder)
    return folder


def pack_like_the_hub(corpus, tmp_path, member_prefix=True, leave_out=()) -> Path:
    """FLEURS sv_se as the Hub distributes it: data/sv_se/{split}.tsv and data/sv_se/audio/{split}.tar.gz."""
    source = corpus / "fleurs" / "sv_se"
    folder = tmp_path / "data" / "sv_se"
    (folder / "audio").mkdir(parents=True)
    for split in ("train", "dev", "test"):
        shutil.copy(source / f"{split}.tsv", folder)
        with tarfile.open(folder / "audio" / f"{split}.tar.gz", "w:gz") as archive:
            for wav in sorted((source / "audio" / split).iterdir()):
                if wav.name not in leave_out:
                    archive.add(wav, arcname=f"{split}/{wav.name}" if member_prefix else wav.name)
    return tmp_path / "data"


def audio_manifest(corpus, tmp_path, good: int, missing: int) -> Path:
    wavs = sorted((corpus / "fleurs" / "sv_se" / "audio" / "train").iterdir())[:good]
    files = [str(w) for w in wavs] + [str(tmp_path / f"gone{i}.wav") for i in range(missing)]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps({"file_name": f, "text": "ett ord"}) for f in files))
    return path


# --- malformed rows -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shard_bytes", [text_files.SHARD_BYTES, 300])  # one shard, and the rows spread over many
def test_malformed_rows_flow_as_rows_naming_file_and_line(corpus, tmp_path, processor, monkeypatch, shard_bytes):
    monkeypatch.setattr(text_files, "SHARD_BYTES", shard_bytes)
    folder = common_voice_copy(corpus, tmp_path)
    tsv = folder / "train.tsv"
    header, *lines = tsv.read_text().splitlines(keepends=True)
    fields = lines[13].split("\t")
    fields[3] = fields[3].replace(" ", "\t", 1)  # a tab inside the sentence: today it silently cut the transcript
    lines[13] = "\t".join(fields)
    lines[17] = "\t".join(lines[17].split("\t")[:3])  # the file cut mid-row
    tsv.write_text(header + "".join(lines))

    rows = list(load_source(str(folder), None, "train"))
    assert len(rows) == 18 and COLUMNS[-1] == "error"
    broken = [r for r in rows if r["error"]]
    assert [r["error"] for r in broken] == [f"{tsv} line 15: 14 columns, the header has 13",
                                            f"{tsv} line 19: 3 columns, the header has 13"]
    assert all(r["text"] == "" and r["audio"]["path"] is None for r in broken)
    original = read_tsv(corpus / "common_voice" / "sv-SE" / "train.tsv")
    assert [r["text"] for r in rows if not r["error"]] == [o["sentence"] for i, o in enumerate(original)
                                                           if i not in (13, 17)]

    tolerant = Preprocessor(processor, FilterSettings(max_failure_fraction=0.2))
    assert len(list(prepare(load_source(str(folder), None, "train"), tolerant))) == 16
    tolerant.finish()
    assert tolerant.stats.skipped == Counter({"malformed row": 2})
    assert set(tolerant.stats.broken) == {("train.tsv line 15", f"{tsv} line 15: 14 columns, the header has 13"),
                                          ("train.tsv line 19", f"{tsv} line 19: 3 columns, the header has 13")}
    strict = Preprocessor(processor)  # 2 of 18 is more than 5 %: fewer than 100 samples, still an error
    list(prepare(load_source(str(folder), None, "train"), strict))
    with pytest.raises(DataSourceError, match=r"2 of 18 samples are broken \(2 malformed row\), more than 5%"):
        strict.finish()


def test_malformed_fleurs_and_manifest_rows(corpus, tmp_path):
    fleurs = tmp_path / "fleurs"
    shutil.copytree(corpus / "fleurs" / "sv_se", fleurs, ignore=shutil.ignore_patterns("train", "dev"))
    lines = (fleurs / "test.tsv").read_text().splitlines(keepends=True)
    lines[2] = "\t".join(lines[2].split("\t")[:6]) + "\n"
    (fleurs / "test.tsv").write_text("".join(lines))
    rows = list(load_source(str(fleurs), None, "test"))
    assert [r["error"] for r in rows if r["error"]] == [f"{fleurs / 'test.tsv'} line 3: 6 columns, FLEURS rows have 7"]

    wav = str(next((corpus / "fleurs" / "sv_se" / "audio" / "test").iterdir()))
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(f'{{"file_name": "{wav}", "text": "ett"}}\n{{"file_name": "{wav}", "text": \n\n'
                     f'{{"file_name": "{wav}"}}\n[1, 2]\n')
    jsonl.write_text(jsonl.read_text() + f'{{"file_name": "{wav}", "text": ""}}\n')
    rows = list(load_source(str(jsonl), None, "train"))
    errors = [r["error"] for r in rows]
    assert errors[0] == "" and errors[1].startswith(f"{jsonl} line 2: not valid JSON (Expecting value")
    assert errors[2:] == [f"{jsonl} line 4: no 'text' value", f"{jsonl} line 5: a JSON list, not an object", ""]
    assert rows[-1]["text"] == ""  # an empty transcript is a sample (the preprocessor skips it as "empty text")
    tsv = tmp_path / "m.tsv"
    tsv.write_text(f'file_name\ttext\n{wav}\t"he said ""hej"""\n{wav}\tett\ttvå\n')
    rows = list(load_source(str(tsv), None, "train"))
    assert [(r["text"], r["error"]) for r in rows] == [('he said "hej"', ""),
                                                       ("", f"{tsv} line 3: 3 columns, the header has 2")]
    csv_file = tmp_path / "m.csv"
    csv_file.write_text(f"file_name,text\n{wav},ett\n{wav}\n")
    assert [r["error"] for r in load_source(str(csv_file), None, "train")] == [
        "", f"{csv_file} line 3: 1 columns, the header has 2"]


# --- encodings and columns ------------------------------------------------------------------------------------

def test_a_legacy_8_bit_tsv_names_file_line_encoding_and_fix(corpus, tmp_path):
    folder = common_voice_copy(corpus, tmp_path)
    tsv = folder / "train.tsv"
    data = tsv.read_text().encode("cp1252")
    tsv.write_bytes(data)
    offset = next(i for i, byte in enumerate(data) if byte >= 0x80)
    line = data[:offset].count(b"\n") + 1
    with pytest.raises(DataSourceError) as error:
        list(load_source(str(folder), None, "train"))
    assert str(error.value).startswith(f"{tsv} is not UTF-8 text: line {line}, byte {offset} (0x")
    assert "a legacy 8-bit encoding such as cp1252/latin-1" in str(error.value)
    assert f"iconv -f CP1252 -t UTF-8 {tsv} > {folder / 'train.utf8.tsv'} && mv" in str(error.value)


def test_utf16_files_and_legacy_manifests_are_named(corpus, tmp_path):
    folder = common_voice_copy(corpus, tmp_path)
    tsv = folder / "train.tsv"
    tsv.write_bytes(tsv.read_text().encode("utf-16"))
    with pytest.raises(DataSourceError, match=r"train.tsv is not UTF-8 text: line 1, byte 0 .*looks like UTF-16\. "
                                              r"Convert it .*iconv -f UTF-16 -t UTF-8"):
        load_source(str(folder), None, "train")
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_bytes(b'{"file_name": "a.wav", "text": "ok"}\n' + '{"file_name": "a.wav", "text": "Läkaren"}\n'.encode("latin-1"))
    offset = jsonl.read_bytes().index(b"\xe4")
    with pytest.raises(DataSourceError, match=rf"m.jsonl is not UTF-8 text: line 2, byte {offset} \(0xe4.*cp1252/latin-1"):
        load_source(str(jsonl), None, "train")


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(corpus, tmp_path):
    folder = common_voice_copy(corpus, tmp_path)
    tsv = folder / "dev.tsv"
    tsv.write_bytes(b"\xef\xbb\xbf" + tsv.read_bytes())
    rows = list(load_source(str(folder), None, "dev"))
    assert len(rows) == 6 and all(r["speaker_id"] and not r["error"] for r in rows)


def test_a_common_voice_tsv_without_a_path_column_lists_its_columns(corpus, tmp_path):
    folder = common_voice_copy(corpus, tmp_path)
    tsv = folder / "train.tsv"
    tsv.write_text(tsv.read_text().replace("\tpath\t", "\tfilename\t", 1))
    with pytest.raises(DataSourceError, match=r"train.tsv has no column 'path' .*its columns are: client_id, "
                                              r"filename, sentence_id, sentence"):
        load_source(str(folder), None, "train")


# --- clips shorter than listed --------------------------------------------------------------------------------

def test_a_clip_much_shorter_than_listed_is_a_counted_broken_sample(corpus, tmp_path, processor):
    folder = common_voice_copy(corpus, tmp_path)
    dev = [r["path"] for r in read_tsv(folder / "dev.tsv")]
    durations = read_tsv(folder / "clip_durations.tsv")
    listed = {r["clip"]: int(r["duration[ms]"]) for r in durations}
    listed[dev[0]] = 9000  # a truncated clip: 9 s listed
    listed[dev[1]] += 300  # within the tolerance: kept
    (folder / "clip_durations.tsv").write_text(
        "clip\tduration[ms]\n" + "".join(f"{clip}\t{ms}\n" for clip, ms in listed.items()))
    rows = list(load_source(str(folder), None, "dev"))
    assert [r["duration"] for r in rows] == pytest.approx([listed[clip] / 1000 for clip in dev])

    preprocessor = Preprocessor(processor, FilterSettings(max_failure_fraction=0.5))
    assert len(list(prepare(load_source(str(folder), None, "dev"), preprocessor))) == 5
    decoded = len(load_audio(folder / "clips" / dev[0])) / 16000
    assert preprocessor.stats.skipped == Counter({"audio shorter than listed": 1})
    path, error = preprocessor.stats.broken[0]
    assert path == str(folder / "clips" / dev[0])
    assert error.startswith(f"audio shorter than listed: {decoded:.1f} s decoded, 9.0 s listed ({path}")


# --- zero rows ------------------------------------------------------------------------------------------------

def test_zero_rows_from_a_local_source_is_an_error_naming_what_was_looked_for(corpus, tmp_path):
    with pytest.raises(DataSourceError, match=r"other.tsv lists no samples"):
        load_source(str(corpus / "common_voice"), "sv-SE", "other")
    folder = common_voice_copy(corpus, tmp_path)
    (folder / "test.tsv").write_bytes(b"")
    with pytest.raises(DataSourceError, match=r"test.tsv is empty: it should start with a header line"):
        load_source(str(folder), None, "test")
    (folder / "clips").unlink()
    (folder / "clips").mkdir()
    where = re.escape(str(folder))
    with pytest.raises(DataSourceError, match=rf"none of the 18 clips listed in {where}/train.tsv exists \(looked "
                                              rf"for {where}/clips/common_voice_sv-SE_10000000.mp3, .*\); extract "
                                              rf"the release's clips into {where}/clips"):
        load_source(str(folder), None, "train")

    fleurs = tmp_path / "fleurs"
    shutil.copytree(corpus / "fleurs" / "sv_se", fleurs, ignore=shutil.ignore_patterns("test"))
    where = re.escape(str(fleurs))
    with pytest.raises(DataSourceError, match=rf"has test.tsv but no audio for it: looked for {where}/audio/test/ "
                                              rf"and {where}/audio/test.tar.gz"):
        load_source(str(fleurs), None, "test")
    with tarfile.open(fleurs / "audio" / "test.tar.gz", "w:gz") as archive:
        archive.add(next((fleurs / "audio" / "train").iterdir()), arcname="test/not-listed.wav")
    with pytest.raises(DataSourceError, match=r"test.tar.gz holds none of the audio files listed in .*test.tsv"):
        load_source(str(fleurs), None, "test")

    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataSourceError, match="empty.jsonl lists no samples"):
        load_source(str(tmp_path / "empty.jsonl"), None, "train")
    (tmp_path / "m.tsv").write_text("file_name\ttext\na.wav\n")
    with pytest.raises(DataSourceError, match=r"m.tsv lists no samples; no row is readable: .*m.tsv line 2: 1 columns"):
        load_source(str(tmp_path / "m.tsv"), None, "train")


# --- the failure rule below 100 samples, in training and evaluation ------------------------------------------

def test_three_unreadable_files_of_ten_stop_training_and_evaluation(corpus, tmp_path, processor):
    manifest = str(audio_manifest(corpus, tmp_path, good=7, missing=3))
    data_args = DataArguments(dataset_name=manifest, language="sv")
    train_args = TrainingDataArguments(eval_split_name="train", shuffle_buffer_size=4)
    process = SimpleNamespace(process_index=0, world_size=1, seed=0)
    stream, preprocessor, _ = train_stream(data_args=data_args, preprocessing_args=PreprocessingArguments(),
                                           train_data_args=train_args, retention_args=RetentionArguments(),
                                           training_args=process, processor=processor, max_label_length=448)
    with pytest.raises(DataSourceError, match=r"3 of 10 samples are broken \(3 unreadable audio\), more than 5%"):
        list(itertools.islice(iter(stream), 50))  # the first pass ends after 7 samples: the rule applies there
    assert preprocessor.stats.skipped == Counter({"unreadable audio": 3})
    with pytest.raises(DataSourceError, match=r"3 of 10 samples are broken"):
        eval_set(data_args, PreprocessingArguments(), train_args, processor, 448)


# --- FLEURS as the Hub distributes it -------------------------------------------------------------------------

@pytest.mark.parametrize("member_prefix", [True, False])  # members named test/{file}.wav or {file}.wav
def test_fleurs_archives_give_the_rows_of_the_extracted_folder(corpus, tmp_path, member_prefix):
    root = pack_like_the_hub(corpus, tmp_path, member_prefix)
    assert is_fleurs_folder(root / "sv_se") and is_fleurs_folder(corpus / "fleurs" / "sv_se")
    assert not (root / "sv_se" / "audio" / "test").exists()
    keys = ("id", "text", "duration", "gender", "locale", "error")
    for split in ("train", "test"):
        from_archive = list(load_source(str(root), "sv_se", split))
        from_folder = list(load_source(str(corpus / "fleurs"), "sv_se", split))
        assert sorted(tuple(r[k] for k in keys) for r in from_archive) == \
            sorted(tuple(r[k] for k in keys) for r in from_folder)
        extracted = corpus / "fleurs" / "sv_se" / "audio" / split
        assert all(r["audio"]["bytes"] == (extracted / r["id"]).read_bytes() for r in from_archive)
    row = from_archive[0]
    assert row["audio"]["path"] == f"{root}/sv_se/audio/test.tar.gz/{'test/' if member_prefix else ''}{row['id']}"
    assert (decode_row_audio(row["audio"]) == load_audio(corpus / "fleurs" / "sv_se" / "audio" / "test" / row["id"])).all()
    assert count_samples(parse_dataset_specs(str(root), "sv_se", "train", None)[0]) == 18


def test_fleurs_archive_rows_are_split_by_row_across_processes(corpus, tmp_path):
    specs = parse_dataset_specs(str(pack_like_the_hub(corpus, tmp_path)), "sv_se", "train", None)
    everything = sorted(r["id"] for r in load_mixture(specs))
    for world_size in (2, 3):
        ranks = [[r["id"] for r in load_mixture(specs, rank=rank, world_size=world_size)] for rank in range(world_size)]
        assert sorted(sum(ranks, [])) == everything and len(everything) == 18
        assert [len(ids) for ids in ranks] == [18 // world_size] * world_size  # every world_size-th TSV row


def test_audio_missing_from_a_fleurs_archive_is_a_counted_row(corpus, tmp_path):
    missing = read_tsv(corpus / "fleurs" / "sv_se" / "test.tsv", header=False)[2][1]
    root = pack_like_the_hub(corpus, tmp_path, leave_out={missing})
    rows = list(load_source(str(root), "sv_se", "test"))
    assert len(rows) == 6 and sum(bool(r["audio"]["bytes"]) for r in rows) == 5
    tsv, archive = root / "sv_se" / "test.tsv", root / "sv_se" / "audio" / "test.tar.gz"
    assert [r["error"] for r in rows if r["error"]] == [
        f"{tsv} lists {missing}, which is not in {archive} (an incomplete archive? download it again)"]


def test_a_truncated_fleurs_archive_says_download_it_again(corpus, tmp_path):
    root = pack_like_the_hub(corpus, tmp_path)
    archive = root / "sv_se" / "audio" / "train.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataSourceError, match=r"train.tar.gz is damaged or incomplete .*download it again"):
        list(load_source(str(root), "sv_se", "train"))


# --- byte-range shards ----------------------------------------------------------------------------------------

@pytest.fixture
def opened_ranges(monkeypatch):
    """The byte ranges of text files read while rows stream (clear it after loading, before iterating)."""
    opened = []
    original = text_files.ShardLines.__iter__

    def recording(self):
        opened.append((str(self.path), self.start, self.end))
        return original(self)

    monkeypatch.setattr(text_files.ShardLines, "__iter__", recording)
    monkeypatch.setattr(text_files, "SHARD_BYTES", 400)
    return opened


def test_text_files_stream_in_byte_ranges_read_only_by_their_process(corpus, opened_ranges):
    tsv = corpus / "common_voice" / "sv-SE" / "train.tsv"
    listed = read_tsv(tsv)
    durations = {r["clip"]: int(r["duration[ms]"]) / 1000 for r in read_tsv(tsv.parent / "clip_durations.tsv")}
    whole = load_source(str(corpus / "common_voice"), "sv-SE", "train", world_size=3)
    assert whole.num_shards % 3 == 0 and whole.num_shards > 3
    rows = list(whole)  # every line exactly once, in file order, with its listed duration
    assert [r["id"] for r in rows] == [r["path"] for r in listed]
    assert [r["duration"] for r in rows] == pytest.approx([durations[r["path"]] for r in listed])

    specs = parse_dataset_specs(str(corpus / "common_voice"), "sv-SE", "train", None)
    read_by, ids = [], []
    for rank in range(3):
        share = load_mixture(specs, rank=rank, world_size=3)
        opened_ranges.clear()
        ids.append([r["id"] for r in share])
        read_by.append(set(opened_ranges))
    assert sorted(sum(ids, [])) == sorted(r["path"] for r in listed)
    assert not (read_by[0] & read_by[1]) and not (read_by[0] & read_by[2]) and not (read_by[1] & read_by[2])
    assert sum(end - start for ranges in read_by for _, start, end in ranges) == tsv.stat().st_size - len(
        tsv.read_text().splitlines(keepends=True)[0].encode())  # the three shares cover the rows once


def test_a_mixture_keeps_whole_shards_per_process(corpus, opened_ranges):
    specs = parse_dataset_specs(f"{corpus / 'common_voice'}+{corpus / 'common_voice'}", "sv-SE+en", "train", None)
    read_by, ids = [], []
    for rank in range(2):
        share = load_mixture(specs, probabilities=[0.5, 0.5], rank=rank, world_size=2)
        opened_ranges.clear()
        ids.append([r["id"] for r in share])
        read_by.append(set(opened_ranges))
    assert not set(ids[0]) & set(ids[1]) and not read_by[0] & read_by[1]
    assert sorted(ids[0] + ids[1]) == sorted(r["id"] for r in load_mixture(specs, probabilities=[0.5, 0.5]))


def test_counting_rows_parses_none(corpus, monkeypatch):
    parsed = []
    parse = CommonVoiceTable.parse
    monkeypatch.setattr(CommonVoiceTable, "parse", lambda self, line: parsed.append(line) or parse(self, line))
    assert count_samples(parse_dataset_specs(str(corpus / "common_voice"), "sv-SE", "validated", None)[0]) == 30
    assert len(parsed) == 1  # only the first row, to check that its clip exists
