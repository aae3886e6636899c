"""Skewing and balancing the training rows by a metadata column (data.balancing): exact caps, weights, skew and
fractions on a corpus of known accents, duplicates only when allowed, a rule that survives shuffling, "+" mixing,
several processes and resume, no audio decoded for dropped rows, clear errors, and the bar chart command."""

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from whisper_finetuning.data import balancing
from whisper_finetuning.data.balancing import BalancingArguments, BalancingError, balance_rows, group_targets
from whisper_finetuning.data.mixing import load_mixture, parse_dataset_specs
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.features import preprocessing
from whisper_finetuning.features.preprocessing import Preprocessor, prepare
from whisper_finetuning.training.stream import TrainingStream


def manifest(folder, name, accents: dict[str, int], durations=None, audio=False) -> str:
    """A .jsonl manifest with `count` rows of each accent ("" for none), ids r0, r1, ... (the same in every
    manifest), one audio file per row: empty files (never decoded), or short tones when `audio`."""
    records = []
    for accent, count in accents.items():
        for _ in range(count):
            i = len(records)
            records.append({"id": f"r{i}", "file_name": f"{name}-{i}.wav", "text": f"sentence {i}", "accent": accent,
                            "speaker_id": f"speaker{i % 3}", "duration": durations[i] if durations else ""})
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    for i, record in enumerate(records):
        if audio:
            time = np.arange(4000) / 16_000
            soundfile.write(folder / record["file_name"], (0.3 * np.sin(2 * np.pi * (200 + 10 * i) * time)), 16_000)
        else:
            (folder / record["file_name"]).touch()
    return str(path)


def rows_of(path: str):
    return load_source(path, None, "train")


def accent_counts(rows) -> Counter:
    return Counter(row["accent"] or "(none)" for row in rows)


def keys(rows) -> list[tuple[str, str]]:
    return [(row["dataset"], row["id"]) for row in rows]


def balanced(path, seed=42, **settings):
    return balance_rows(rows_of(path), BalancingArguments(**settings), seed)


def test_a_cap_per_group_is_exact_and_drops_only(tmp_path):
    path = manifest(tmp_path, "m", {"north": 50, "south": 20, "skane": 5, "": 4})
    rows, report = balanced(path, balance_by="accent", balance_max_per_group=10)
    output = list(rows)
    assert accent_counts(output) == {"north": 10, "south": 10, "skane": 5, "(none)": 4}
    assert report.before == {"north": 50, "south": 20, "skane": 5, "(none)": 4}
    assert report.after == dict(accent_counts(output))
    assert len(set(keys(output))) == len(output)  # no row twice
    assert set(keys(output)) <= set(keys(rows_of(path)))
    assert output[0].keys() == next(iter(rows_of(path))).keys()  # every column kept


def test_a_row_listed_twice_is_kept_or_dropped_as_one_and_counted_as_it_is(tmp_path):
    path = manifest(tmp_path, "m", {"north": 12})
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    (tmp_path / "m.jsonl").write_text("\n".join(lines + lines[:6]) + "\n")  # six rows listed a second time
    totals = set()
    for seed in range(40):  # the keys hash with the (temporary) folder's path: many seeds, so both cases occur
        rows, report = balanced(path, seed=seed, balance_max_per_group=5)
        output = Counter(keys(rows))
        assert all(output[key] == 2 for key in output if int(key[1][1:]) < 6)  # both listings, or neither
        assert sum(output.values()) == report.total_after
        totals.add(report.total_after)
    assert totals == {5, 6}  # some seeds put a twice-listed row at the threshold: 6 rows, counted as 6


def test_weights_give_the_requested_distribution(tmp_path):
    path = manifest(tmp_path, "m", {"north": 60, "south": 60, "skane": 10})
    # skane's 10 rows at 20 % allow 50 rows in all: 25 + 15 + 10.
    rows, report = balanced(path, balance_by="accent", balance_weights="north=0.5,south=0.3,skane=0.2")
    assert accent_counts(rows) == report.after == {"north": 25, "south": 15, "skane": 10}
    rows, _ = balanced(path, balance_by="accent", balance_weights="uniform")
    assert accent_counts(rows) == {"north": 10, "south": 10, "skane": 10}
    # A JSON object (what a YAML mapping becomes); groups it leaves out are dropped; weights need not add up to 1.
    rows, _ = balanced(path, balance_by="accent", balance_weights='{"north": 1, "skane": 3}')
    assert accent_counts(rows) == {"north": 3, "skane": 10}


def test_the_skew_preset_makes_one_group_dominate(tmp_path):
    path = manifest(tmp_path, "m", {"north": 60, "south": 60, "skane": 20})
    rows, report = balanced(path, balance_by="accent", balance_skew_to="south", balance_skew_share=0.9)
    counts = accent_counts(rows)
    total = sum(counts.values())
    assert counts["south"] == 60  # every south row, and the others shrink to 10 % of the output
    assert abs(counts["south"] / total - 0.9) <= 1 / total
    # The other 10 % of 66.7 rows in proportion to their sizes (60 : 20): 5 and 1.7 rows, whole rows 5 and 1.
    assert (counts["north"], counts["skane"]) == (5, 1)
    assert report.after == counts

    # With duplicates nothing is dropped: the small group is repeated until it is 90 %.
    rows, report = balanced(path, balance_by="accent", balance_skew_to="skane", balance_skew_share=0.9,
                            balance_allow_duplicates=True)
    output = list(rows)
    counts = accent_counts(output)
    assert counts == {"north": 60, "south": 60, "skane": 1080}
    repeats = Counter(keys(row for row in output if row["accent"] == "skane"))
    assert set(repeats.values()) == {54} and len(repeats) == 20
    assert set(Counter(keys(row for row in output if row["accent"] != "skane")).values()) == {1}


def test_keep_fraction_is_exact_in_total_and_per_group(tmp_path):
    path = manifest(tmp_path, "m", {"north": 50, "south": 20, "skane": 5})
    rows, report = balanced(path, balance_by="accent", balance_keep_fraction=0.3)
    output = list(rows)
    counts = accent_counts(output)
    assert sum(counts.values()) == 23  # 30 % of 75 is 22.5, rounded half up
    assert all(abs(counts[group] - 0.3 * count) < 1 for group, count in report.before.items())
    assert len(set(keys(output))) == len(output)
    # Without --balance_by: a fraction of all rows.
    rows, report = balanced(path, balance_keep_fraction=0.5)
    assert len(list(rows)) == report.total_after == 38


def test_duplicates_only_when_allowed_and_as_configured(tmp_path):
    path = manifest(tmp_path, "m", {"north": 50, "south": 20, "skane": 5})
    rows, _ = balanced(path, balance_by="accent", balance_weights="uniform")
    output = list(rows)
    assert accent_counts(output) == {"north": 5, "south": 5, "skane": 5}
    assert len(set(keys(output))) == len(output)

    rows, report = balanced(path, balance_by="accent", balance_weights="uniform", balance_allow_duplicates=True)
    output = list(rows)
    assert accent_counts(output) == report.after == {"north": 50, "south": 50, "skane": 50}
    times = {accent: Counter(keys(row for row in output if row["accent"] == accent)) for accent in report.before}
    assert set(times["north"].values()) == {1} and len(times["north"]) == 50  # the largest group is kept whole
    assert Counter(times["south"].values()) == {2: 10, 3: 10}  # 50 = 2 x 20 + 10 rows a third time
    assert set(times["skane"].values()) == {10} and len(times["skane"]) == 5
    assert report.distinct_after == {"north": 50, "south": 20, "skane": 5}


def test_the_same_rows_on_every_read_and_whatever_the_input_order(tmp_path):
    path = manifest(tmp_path, "m", {"north": 120, "south": 40, "skane": 15})
    settings = dict(balance_by="accent", balance_weights="uniform")
    rows, _ = balanced(path, **settings)
    first = keys(rows)
    assert keys(rows) == first
    shuffled = rows_of(path).shuffle(seed=3, buffer_size=50)
    other, _ = balance_rows(shuffled, BalancingArguments(**settings), 42)
    assert keys(other) != first and sorted(keys(other)) == sorted(first)
    # Shuffled after balancing, as training does every pass: the same rows in a new order.
    later = rows.shuffle(seed=5, buffer_size=20)
    later.set_epoch(2)
    assert sorted(keys(later)) == sorted(first)
    # Another seed keeps other rows of the same groups.
    reseeded, _ = balanced(path, seed=7, **settings)
    assert accent_counts(reseeded) == accent_counts(rows) and set(keys(reseeded)) != set(first)


def test_balancing_a_plus_mixture_by_dataset_and_by_accent(tmp_path):
    big = manifest(tmp_path, "big", {"north": 30, "south": 10})
    small = manifest(tmp_path, "small", {"north": 5, "south": 5})  # the same ids r0 .. r9 as the big one
    specs = parse_dataset_specs(f"{big}+{small}", None, "train", None)
    labels = [spec.label for spec in specs]

    rows, report = balance_rows(load_mixture(specs), BalancingArguments(balance_by="dataset",
                                                                        balance_weights="uniform"), 42)
    assert Counter(row["dataset"] for row in rows) == report.after == {labels[0]: 10, labels[1]: 10}

    rows, report = balance_rows(load_mixture(specs), BalancingArguments(balance_by="accent",
                                                                        balance_weights="uniform"), 42)
    output = list(rows)
    assert accent_counts(output) == {"north": 15, "south": 15}
    assert len(set(keys(output))) == 30  # rows are keyed on their dataset too: equal ids are different rows

    # One process's share, balanced by the counts of the whole mixture: the shares add up to the whole.
    settings = BalancingArguments(balance_by="accent", balance_max_per_group=12)
    whole, _ = balance_rows(load_mixture(specs), settings, 42)
    shares = [keys(balance_rows(load_mixture(specs, rank=rank, world_size=2), settings, 42,
                                counted=load_mixture(specs))[0]) for rank in (0, 1)]
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sorted(keys(whole))


def test_balancing_by_duration_buckets(tmp_path):
    durations = [1.0] * 30 + [7.0] * 10 + [15.0] * 5 + [-1] * 3
    path = manifest(tmp_path, "m", {"north": len(durations)}, durations=durations)
    rows, report = balanced(path, balance_by="duration", balance_weights="uniform")
    assert list(report.before) == ["0-5 s", "5-10 s", "10-20 s", "(none)"]  # bucket order, unlisted last
    assert report.before == {"0-5 s": 30, "5-10 s": 10, "10-20 s": 5, "(none)": 3}
    assert Counter(balancing.bucket_label(row["duration"], (0, 5, 10, 20, 30)) for row in rows) == \
        {"0-5 s": 3, "5-10 s": 3, "10-20 s": 3, "(none)": 3}
    rows, report = balanced(path, balance_by="duration", balance_duration_buckets="0,10", balance_max_per_group=8)
    assert report.after == {"0-10 s": 8, ">=10 s": 5, "(none)": 3}


def test_a_resumed_stream_continues_where_it_stopped(tmp_path):
    path = manifest(tmp_path, "m", {"north": 60, "south": 20, "skane": 8})
    rows, _ = balanced(path, balance_by="accent", balance_weights="uniform", balance_allow_duplicates=True)

    def examples(rows):
        return rows.map(lambda row: {"input_features": f"{row['dataset']}|{row['id']}", "labels": row["accent"]})

    def read(position, count):
        stream = TrainingStream(rows, examples, seed=11, shuffle_buffer_size=30)
        stream.position = position
        return [(e["pass"], e["row"], e["input_features"]) for e in itertools.islice(stream, count)]

    passes = read((0, 0), 2 * 180)  # two passes of 180 balanced rows (60 per accent)
    assert [p for p, _, _ in passes] == [0] * 180 + [1] * 180
    assert passes[:180] != passes[180:]  # each pass in its own order...
    assert sorted(s for _, _, s in passes[:180]) == sorted(s for _, _, s in passes[180:])  # ...of the same rows
    assert read((0, 70), 110 + 180) == passes[70:]
    assert read((1, 25), 50) == passes[180 + 25:180 + 75]


def test_dropped_rows_audio_is_never_decoded(tmp_path, processor, monkeypatch):
    path = manifest(tmp_path, "m", {"north": 24, "south": 8, "skane": 4}, audio=True)
    rows, report = balanced(path, balance_by="accent", balance_max_per_group=4)
    kept = {row["audio"]["path"] for row in rows}
    assert len(kept) == report.total_after == 12
    for row in rows_of(path):  # the dropped rows' files go: reading one would count as a broken sample
        if row["audio"]["path"] not in kept:
            Path(row["audio"]["path"]).unlink()
    decoded = []
    decode = preprocessing.decode_row_audio
    monkeypatch.setattr(preprocessing, "decode_row_audio", lambda audio: decoded.append(audio["path"]) or decode(audio))
    preprocessor = Preprocessor(processor, num_threads=1)
    examples = list(prepare(rows, preprocessor))
    assert len(examples) == 12 and sorted(decoded) == sorted(kept)
    assert not preprocessor.stats.broken and sum(preprocessor.stats.skipped.values()) == 0


def test_clear_errors(tmp_path):
    path = manifest(tmp_path, "m", {"north": 20, "south": 10})
    with pytest.raises(BalancingError, match="--balance_by must be one of speaker_id, gender, accent.*not 'age'"):
        BalancingArguments(balance_by="age", balance_max_per_group=3)
    with pytest.raises(BalancingError, match="--balance_by accent alone changes nothing"):
        BalancingArguments(balance_by="accent")
    with pytest.raises(BalancingError, match="need --balance_by"):
        BalancingArguments(balance_weights="uniform")
    with pytest.raises(BalancingError, match="either --balance_weights or --balance_skew_to"):
        BalancingArguments(balance_by="accent", balance_weights="uniform", balance_skew_to="north")
    with pytest.raises(BalancingError, match="item 'north' is not group=weight"):
        BalancingArguments(balance_by="accent", balance_weights="north,south=1")
    with pytest.raises(BalancingError, match="--balance_allow_duplicates repeats rows only"):
        BalancingArguments(balance_by="accent", balance_max_per_group=3, balance_allow_duplicates=True)
    with pytest.raises(BalancingError, match="--balance_skew_share must be between 0 and 1"):
        BalancingArguments(balance_by="accent", balance_skew_to="north", balance_skew_share=1.5)
    with pytest.raises(BalancingError, match="names 'west', which no row has in column accent; its groups are: "
                                             "'north', 'south'"):
        balanced(path, balance_by="accent", balance_weights="north=1,west=1")
    with pytest.raises(BalancingError, match="'skane' is not a group of column accent"):
        balanced(path, balance_by="accent", balance_skew_to="skane")
    with pytest.raises(BalancingError, match="no row has a gender"):
        balanced(path, balance_by="gender", balance_max_per_group=3)
    with pytest.raises(BalancingError, match="no row lists its duration"):
        balanced(path, balance_by="duration", balance_max_per_group=3)
    one = manifest(tmp_path, "one", {"north": 10})
    with pytest.raises(BalancingError, match="needs other groups for the other 10%.*every row.*is in 'north'"):
        balanced(one, balance_by="accent", balance_skew_to="north")
    with pytest.raises(BalancingError, match="keeps no row of the 10 rows.*no group can meet that target"):
        balanced(one, balance_by="accent", balance_keep_fraction=0.01)


def test_targets_apportion_whole_rows():
    args = BalancingArguments(balance_by="accent", balance_weights="a=1,b=1,c=1")
    targets = group_targets({"a": 100, "b": 100, "c": 100}, args)
    assert targets == {"a": 100, "b": 100, "c": 100}
    args = BalancingArguments(balance_by="accent", balance_weights="a=2,b=1", balance_keep_fraction=0.5)
    # a's 7 rows at 2/3 allow 10.5 rows: 7 + 3; half of them is 3.5 + 1.5, the tied remainder goes to a.
    assert group_targets({"a": 7, "b": 9}, args) == {"a": 4, "b": 1}


def test_the_chart_command_writes_a_png_and_the_counts(tmp_path, capsys):
    big = manifest(tmp_path, "big", {"north": 30, "south": 10, "": 2})
    small = manifest(tmp_path, "small", {"north": 5, "skane": 5})
    out = tmp_path / "charts"
    report = balancing.main(["--dataset_name", f"{big}+{small}", "--balance_by", "accent", "--balance_weights",
                             "uniform", "--output_dir", str(out)])
    png = (out / "balance_by_accent.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    saved = json.loads((out / "balance_by_accent.json").read_text())
    assert {g["group"]: (g["before"], g["after"]) for g in saved["groups"]} == \
        {"north": (35, 2), "south": (10, 2), "skane": (5, 2), "(none)": (2, 2)}
    assert saved["total_after"] == report.total_after == 8
    assert (out / "balance_by_accent.csv").read_text().splitlines()[:2] == ["group,before,after,distinct_after",
                                                                          "north,35,2,2"]
    # A training config works as it is: its training settings are left out, its data and balancing settings used.
    config = tmp_path / "train.yaml"
    config.write_text(f"model_name_or_path: openai/whisper-small\nlearning_rate: 1.0e-5\ndataset_name: {big}\n"
                      "train_split_name: train\nseed: 3\nbalance_by: accent\nbalance_max_per_group: 4\n")
    report = balancing.main([str(config), "--output_dir", str(out)])
    assert report.seed == 3 and report.after == {"north": 4, "south": 4, "(none)": 2}
    with pytest.raises(SystemExit) as exit_info:
        balancing.main(["--help"])
    assert exit_info.value.code == 0
    assert "--balance_skew_share" in capsys.readouterr().out


def test_the_training_stream_reads_only_the_balanced_rows(tmp_path, processor):
    from types import SimpleNamespace

    from whisper_finetuning.args import DataArguments, PreprocessingArguments
    from whisper_finetuning.training.arguments import RetentionArguments, TrainingDataArguments
    from whisper_finetuning.training.stream import train_stream

    path = manifest(tmp_path, "m", {"north": 12, "south": 3}, audio=True)
    settings = BalancingArguments(balance_by="accent", balance_skew_to="south", balance_skew_share=0.5)
    kept = {row["id"] for row in balance_rows(rows_of(path), settings, 5)[0]}
    assert len(kept) == 6  # the 3 south rows and 3 of the 12 north ones

    def first_pass(balancing_args, rows):  # the first pass's samples, and how many were decoded for two passes
        stream, preprocessor, _ = train_stream(
            DataArguments(dataset_name=path, language="sv"), PreprocessingArguments(),
            TrainingDataArguments(shuffle_buffer_size=4), RetentionArguments(),
            SimpleNamespace(process_index=0, world_size=1, seed=5), processor, 448, balancing_args)
        examples = list(itertools.islice(iter(stream), rows + 1))  # one pass, and the first sample of the next
        assert [e["pass"] for e in examples] == [0] * rows + [1]
        return examples[:-1], sum(preprocessor.stats.kept.values())

    examples, decoded = first_pass(settings, 6)
    assert decoded == 2 * 6  # only the kept rows were decoded, in each pass
    assert len(first_pass(None, 15)[0]) == 15

    with pytest.raises(ValueError, match="feature cache does not keep"):
        train_stream(DataArguments(dataset_name=path, language="sv"), PreprocessingArguments(),
                     TrainingDataArguments(feature_cache_dir=str(tmp_path / "cache")), RetentionArguments(),
                     SimpleNamespace(process_index=0, world_size=1, seed=5), processor, 448, settings)
