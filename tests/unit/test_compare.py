"""The comparison command's parts: noisy test clips at an exact SNR (the same every call), the variants file and its
errors, reusing evaluations, and the report written from results."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from transformers import HfArgumentParser

import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning import compare
from whisper_finetuning.args import parse_config_and_flags
from whisper_finetuning.compare import CompareError
from whisper_finetuning.data.audio import decode_row_audio
from whisper_finetuning.data.mixing import DatasetSpec, load_mixture, parse_dataset_specs
from whisper_finetuning.data.sources import load_source
from whisper_finetuning.evaluation import robustness
from whisper_finetuning.evaluation.paired import paired_differences
from whisper_finetuning.evaluation.robustness import (RobustnessError, add_noise, measured_snr_db, parse_snrs,
                                                      write_noisy_sets)

REPO = Path(__file__).resolve().parents[2]


def sv_test_rows(corpus, count=4):
    return list(load_source(str(corpus / "common_voice"), "sv-SE", "test"))[:count]


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_clip(manifest: Path, entry: dict) -> np.ndarray:
    samples, rate = soundfile.read(manifest.parent / entry["file_name"], dtype="float32")
    assert rate == 16_000
    return samples


# --- noisy test clips ---------------------------------------------------------------------------------------------

def test_noisy_clips_have_the_snr_asked_for_and_keep_the_texts(corpus, tmp_path):
    rows = sv_test_rows(corpus)
    snrs = parse_snrs(["clean", "20", "5", "0", "-5"])
    noisy = write_noisy_sets(iter(rows), "cv test", tmp_path, snrs, max_samples=3)
    assert [s.manifest.name for s in noisy.sets] == ["clean.jsonl", "snr_20db.jsonl", "snr_5db.jsonl",
                                                      "snr_0db.jsonl", "snr_minus5db.jsonl"]
    assert noisy.description["clips"] == 3 and noisy.description["ids"] == [r["id"] for r in rows[:3]]
    clean_entries = read_manifest(noisy.sets[0].manifest)
    for noisy_set in noisy.sets:
        entries = read_manifest(noisy_set.manifest)
        assert [e["text"] for e in entries] == [r["text"] for r in rows[:3]]
        assert [(e["id"], e["speaker_id"], e["gender"]) for e in entries] == [
            (r["id"], r["speaker_id"], r["gender"]) for r in rows[:3]]
        for row, entry, clean_entry in zip(rows, entries, clean_entries):
            clean = read_clip(noisy.sets[0].manifest, clean_entry)
            samples = read_clip(noisy_set.manifest, entry)
            assert len(samples) == len(clean)
            if noisy_set.snr == "clean":  # the clip as run_eval.py decodes the original
                np.testing.assert_array_equal(samples, decode_row_audio(row["audio"]))
            else:
                assert measured_snr_db(clean, samples) == pytest.approx(noisy_set.snr, abs=0.1)


def test_the_noisy_clips_are_the_same_every_call_and_seeded_per_clip(corpus, tmp_path):
    rows = sv_test_rows(corpus, 2)
    snrs = parse_snrs(["10", "0"])
    first = write_noisy_sets(iter(rows), "cv test", tmp_path / "a", snrs)
    again = write_noisy_sets(iter(rows), "cv test", tmp_path / "b", snrs)
    other_seed = write_noisy_sets(iter(rows), "cv test", tmp_path / "c", snrs, seed=1)
    for a, b, c in zip(first.sets, again.sets, other_seed.sets):
        assert read_manifest(a.manifest) == read_manifest(b.manifest) == read_manifest(c.manifest)
        for entry in read_manifest(a.manifest):
            assert read_clip(a.manifest, entry).tobytes() == read_clip(b.manifest, entry).tobytes()
            assert not np.array_equal(read_clip(a.manifest, entry), read_clip(c.manifest, entry))
    assert first.fingerprint == again.fingerprint != other_seed.fingerprint
    # Each clip's noise is seeded by the clip: the same noise at every SNR, 10 dB apart in level
    clean = decode_row_audio(rows[0]["audio"])
    noise_10, noise_0 = (read_clip(s.manifest, read_manifest(s.manifest)[0]) - clean for s in first.sets)
    np.testing.assert_allclose(noise_0, noise_10 * np.sqrt(10), rtol=1e-3, atol=1e-6)
    # A second call into the same folder reuses the files; other settings write them again
    stamp = (tmp_path / "a" / "noisy_sets.json").stat().st_mtime_ns
    assert write_noisy_sets(iter([]), "cv test", tmp_path / "a", snrs).description == first.description
    assert (tmp_path / "a" / "noisy_sets.json").stat().st_mtime_ns == stamp
    assert write_noisy_sets(iter(rows), "cv test", tmp_path / "a", snrs, max_samples=1).description["clips"] == 1


def test_unusable_rows_are_left_out_of_every_set_alike(corpus, tmp_path):
    rows = sv_test_rows(corpus, 3)
    soundfile.write(tmp_path / "silence.wav", np.zeros(16_000, dtype=np.float32), 16_000)
    silent = {**rows[0], "id": "silent", "audio": {"path": str(tmp_path / "silence.wav"), "bytes": None}}
    broken = {**rows[0], "id": "broken", "error": "test.tsv line 3: 2 columns, the header has 13"}
    missing = {**rows[0], "id": "missing", "audio": {"path": str(tmp_path / "nothing.wav"), "bytes": None}}
    noisy = write_noisy_sets(iter([rows[0], silent, broken, missing, rows[1]]), "mixed", tmp_path / "out",
                             parse_snrs(["clean", "5"]))
    for noisy_set in noisy.sets:
        assert [e["id"] for e in read_manifest(noisy_set.manifest)] == [rows[0]["id"], rows[1]["id"]]
    assert [(r["id"], r["reason"][:12]) for r in noisy.description["left_out"]] == [
        ("silent", "digital sile"), ("broken", "test.tsv lin"), ("missing", "cannot decod")]
    with pytest.raises(RobustnessError, match="none of its first 1 rows could be used"):
        write_noisy_sets(iter([silent]), "silence only", tmp_path / "none", parse_snrs(["5"]))


def test_snr_values_are_checked():
    assert parse_snrs(["clean", "20", "-2.5"]) == ["clean", 20.0, -2.5]
    with pytest.raises(RobustnessError, match="'loud' is neither 'clean' nor"):
        parse_snrs(["clean", "loud"])
    with pytest.raises(RobustnessError, match="'10' is given twice"):
        parse_snrs(["10", "clean", "10"])
    with pytest.raises(RobustnessError, match="digital silence"):
        add_noise(np.zeros(100, dtype=np.float32), 10, seed=0)
    with pytest.raises(RobustnessError, match="unknown noise color 'green'"):
        add_noise(np.ones(100, dtype=np.float32), 10, seed=0, color="green")


# --- variants -----------------------------------------------------------------------------------------------------

def test_variant_flags_are_training_arguments():
    variants = compare.load_variants(REPO / "configs" / "demo" / "variants.yaml")
    parser = HfArgumentParser(train_script.ARGUMENTS)
    base = [str(REPO / "configs" / "demo_sv.yaml")]
    for name in variants:
        flags = compare.variant_flags(variants[name], {"corpus": "/data/corpus"})
        compare.check_referenced_files(name, variants[name], REPO)  # its augmentation file is there
        _, _, _, finetuning, train_data, balancing, retention, training = parse_config_and_flags(parser, base + flags)
        if name.startswith("replay"):
            assert retention.replay_dataset_name == "/data/corpus/common_voice"
            assert retention.replay_language == "en"
            assert retention.replay_probability == {"replay": 0.25, "replay_light": 0.1, "replay_light_100": 0.1}[name]
        assert finetuning.freeze_encoder is (name == "freeze_encoder")
        assert finetuning.use_peft is (name == "lora")
        assert training.learning_rate == (1e-3 if name == "lora" else 3e-5)
        assert (train_data.augmentation_config is not None) is name.startswith("noise")
        assert training.max_steps == (int(name.rsplit("_", 1)[1]) if name.endswith(("_100", "_200")) else 40)
        assert (balancing.balance_by, balancing.balance_skew_to) == (("gender", "female") if name == "skewed" else
                                                                    (None, None))
    course = compare.load_variants(REPO / "configs" / "compare" / "course.yaml")
    assert list(course) == ["baseline", "augmented", "skewed"] and course["baseline"] == {}
    train_data = parse_config_and_flags(parser, base + compare.variant_flags(course["augmented"]))[4]
    assert train_data.augmentation_config == "configs/augmentation/noise.yaml"
    compare.check_referenced_files("augmented", course["augmented"], REPO)  # the file is there
    assert compare.variant_flags(course["skewed"]) == ["--balance_by", "gender", "--balance_skew_to", "female",
                                                        "--balance_skew_share", "0.9"]


def test_variant_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(CompareError, match="no variants file .*nothing.yaml"):
        compare.load_variants(tmp_path / "nothing.yaml")
    (tmp_path / "list.yaml").write_text("- baseline\n")
    with pytest.raises(CompareError, match="must map variant names to training arguments"):
        compare.load_variants(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("baseline: 3\n")
    with pytest.raises(CompareError, match="variant 'baseline' .* must be a mapping"):
        compare.load_variants(tmp_path / "bad.yaml")
    path = tmp_path / "variants.yaml"
    path.write_text("plain:\nfast: {learning_rate: 0.01}\nbase: {}\nmine: {output_dir: x}\n")
    variants = compare.load_variants(path)
    assert compare.select_variants(variants, ["fast", "plain"], path) == {"fast": {"learning_rate": 0.01},
                                                                          "plain": {}}
    with pytest.raises(CompareError, match="no variant 'slow' in .*; known: plain, fast, base, mine"):
        compare.select_variants(variants, ["plain", "slow"], path)
    with pytest.raises(CompareError, match="names plain more than once"):
        compare.select_variants(variants, ["plain", "plain"], path)
    with pytest.raises(CompareError, match="not 'base'"):
        compare.select_variants(variants, ["base"], path)
    with pytest.raises(CompareError, match="variant 'mine' .* sets output_dir"):
        compare.select_variants(variants, ["mine"], path)
    with pytest.raises(CompareError, match="variant 'noisy': augmentation_config configs/none.yaml does not exist"):
        compare.check_referenced_files("noisy", {"augmentation_config": "configs/none.yaml"}, REPO)


def test_the_command_stops_before_any_work_on_a_bad_request(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(CompareError, match="no training config missing.yaml"):
        compare.main(["missing.yaml", "--output_dir", str(out)])
    (tmp_path / "base.yaml").write_text("model_name_or_path: m\nlanguage: sv\ndataset_name: data/cv\n")
    with pytest.raises(CompareError, match="no variant 'fancy'"):
        compare.main(["base.yaml", "--variants", "fancy", "--output_dir", str(out)])
    with pytest.raises(CompareError, match="variant 'augmented': augmentation_config"):  # read from this folder
        compare.main(["base.yaml", "--variants_file", str(REPO / "configs/compare/course.yaml"), "--output_dir",
                      str(out)])
    with pytest.raises(CompareError, match="'loud' is neither"):
        compare.main(["base.yaml", "--variants", "baseline", "--snr", "loud", "--output_dir", str(out)])
    (tmp_path / "eval.yaml").write_text("language: en\n")
    with pytest.raises(CompareError, match="--eval_config eval.yaml sets language"):
        compare.main(["base.yaml", "--variants", "baseline", "--eval_config", "eval.yaml", "--output_dir", str(out)])
    assert not out.exists()


# --- test sets and evaluations ----------------------------------------------------------------------------------

def test_the_test_sets_default_to_the_config_datasets_and_fleurs_once():
    args = compare.parse_args(["c.yaml", "--fleurs_dir", "/data/fleurs"])
    settings = {"dataset_name": "/data/common_voice+/data/fleurs", "dataset_config_name": "sv-SE+sv_se"}
    tests = compare.test_specs(args, settings)
    assert tests == [DatasetSpec("/data/common_voice", "sv-SE", "test", None),
                     DatasetSpec("/data/fleurs", "sv_se", "test", None)]
    assert compare.fleurs_spec(args, "sv", tests) is None  # FLEURS is one of the test sets already
    only_cv = tests[:1]
    fleurs = compare.fleurs_spec(args, "sv", only_cv)
    assert fleurs == DatasetSpec("/data/fleurs", "sv_se", "test", "raw_transcription")
    flags = compare.dataset_flags(only_cv + [fleurs])
    values = dict(zip(flags[::2], flags[1::2]))
    assert parse_dataset_specs(values["--dataset_name"], values["--dataset_config_name"], values["--split"],
                               values["--text_column_name"]) == only_cv + [fleurs]
    assert compare.fleurs_spec(compare.parse_args(["c.yaml", "--no_fleurs"]), "sv", only_cv) is None


def test_an_evaluation_is_reused_only_for_the_same_weights_and_request(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    fingerprint = compare.weights_fingerprint(str(model))
    request = {"arguments": ["--model_name_or_path", str(model)], "weights": fingerprint}
    results = {"model": str(model), "complete": True, "results": [{"wer": 12.5}]}
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text(json.dumps(results))
    assert compare.reusable(out, str(model), request) is None  # no record of what was evaluated
    (out / compare.REQUEST).write_text(json.dumps(request))
    assert compare.reusable(out, str(model), request) == [{"wer": 12.5}]
    assert compare.reusable(out, str(model), {**request, "arguments": ["--split", "dev"]}) is None
    (model / "model.safetensors").write_bytes(b"trained again")
    assert compare.weights_fingerprint(str(model)) != fingerprint
    (out / "results.json").write_text(json.dumps({**results, "complete": False}))
    assert compare.reusable(out, str(model), request) is None
    assert compare.weights_fingerprint("openai/whisper-base") == "openai/whisper-base"


# --- the report ---------------------------------------------------------------------------------------------------

def fake_summary(tmp_path) -> tuple[dict, dict]:
    def model(name, wers, noisy):
        return {"model": name, "test_sets": {
            "Common Voice 17.0 sv-SE test": {"wer": wers[0], "cer": wers[0] / 3, "metric": "wer", "samples": 9},
            "FLEURS sv_se test": {"wer": wers[1], "cer": wers[1] / 3, "metric": "wer", "samples": 8}},
            "robustness": {label: {"wer": w, "cer": w / 2, "metric": "wer", "samples": 5}
                           for label, w in zip(["clean", "10 dB", "0 dB"], noisy)}}

    cards = {}
    for name in ("baseline", "augmented"):
        cards[name] = tmp_path / f"{name}.md"
        cards[name].write_text(f"# card of {name}\n")
    summary = {"base_config": "base.yaml", "variants_file": "course.yaml", "base_model": "openai/whisper-base",
               "language": "sv", "test_sets": ["Common Voice 17.0 sv-SE test", "FLEURS sv_se test"],
               "variants": {"baseline": {"flags": [], "model": "m/baseline"},
                            "augmented": {"flags": ["--augmentation_config", "noise.yaml"], "model": "m/augmented"}},
               "robustness": {"snr": ["clean", "10 dB", "0 dB"], "source": "cv test", "clips": 5, "color": "white",
                              "seed": 0},
               "models": {"base": model("openai/whisper-base", [60.0, 55.5], [61.0, 75.0, 98.0]),
                          "baseline": model("m/baseline", [20.25, 25.0], [21.0, 45.0, 90.0]),
                          "augmented": model("m/augmented", [21.0, 24.0], [21.5, 30.0, 60.0])}}
    return summary, cards


def test_the_report_has_both_tables_the_plots_and_the_cards(tmp_path):
    summary, cards = fake_summary(tmp_path)
    report = tmp_path / "report"
    compare.write_report(report, summary, cards)
    text = (report / "results.md").read_text()
    assert "paired-bootstrap" not in text  # no per-clip predictions given, no paired comparison
    assert ("| model | WER % Common Voice 17.0 sv-SE test | CER % Common Voice 17.0 sv-SE test | "
            "WER % FLEURS sv_se test | CER % FLEURS sv_se test |") in text
    assert "| baseline | 20.2 | 6.8 | 25.0 | 8.3 |" in text
    assert "| base | 60.0 | 20.0 | 55.5 | 18.5 |" in text
    assert "| model | WER % clean | WER % 10 dB | WER % 0 dB |" in text
    assert "| augmented | 21.5 | 30.0 | 60.0 |" in text
    assert "`--augmentation_config noise.yaml`" in text and "(the base config as it is)" in text
    assert json.loads((report / "results.json").read_text()) == summary
    for name in ("comparison_wer.png", "robustness_wer_vs_snr.png"):
        data = (report / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000, name
        assert f"]({name})" in text
    for name in cards:
        assert (report / f"model_card_{name}.md").read_text() == f"# card of {name}\n"


def test_the_report_says_whether_a_variant_is_clearly_better_clip_by_clip(tmp_path):
    summary, cards = fake_summary(tmp_path)
    references = ["en katt satt på mattan", "hunden springer i parken", "vi går hem nu", "det regnar igen idag"]
    for name, wrong in (("baseline", {"10 dB": 4, "0 dB": 1}), ("augmented", {"10 dB": 0, "0 dB": 2})):
        for label in summary["robustness"]["snr"]:
            path = tmp_path / f"{name}_{label}.jsonl"
            path.write_text("".join(json.dumps({
                "id": str(i), "dataset": f"{label}:test", "reference_normalized": reference,
                "prediction_normalized": "fel " + reference if i < wrong.get(label, 0) else reference}) + "\n"
                for i, reference in enumerate(references)))
            summary["models"][name]["robustness"][label]["predictions"] = str(path)
    summary["robustness"]["paired"] = paired_differences(
        {name: summary["models"][name]["robustness"] for name in summary["variants"]}, summary["robustness"]["snr"],
        "baseline")
    compare.write_report(tmp_path / "report", summary, cards)
    text = (tmp_path / "report" / "results.md").read_text()
    assert "WER difference from **baseline**" in text and "| model | clean | 10 dB | 0 dB |" in text
    # 4 of 17 words fewer at 10 dB: every clip better, an interval below 0; one clip worse at 0 dB: not clear
    assert "| augmented | +0.0 (+0.0 to +0.0), 0 clips better, 0 worse | -23.5 (" in text
    assert "4 clips better, 0 worse | +5.9 (" in text and "0 clips better, 1 worse |" in text
    paired = json.loads((tmp_path / "report" / "results.json").read_text())["robustness"]["paired"]
    assert paired["models"]["augmented"]["10 dB"]["verdict"] == "lower"
    assert paired["models"]["augmented"]["0 dB"]["verdict"] == "no clear difference"


def test_the_noisy_sets_are_what_run_eval_reads(corpus, tmp_path):
    """The manifests load as a run_eval.py dataset: the same clips, texts and durations."""
    noisy = write_noisy_sets(iter(sv_test_rows(corpus, 2)), "cv test", tmp_path, parse_snrs(["clean", "10"]))
    flags = compare.robustness_flags(noisy)
    values = dict(zip(flags[::2], flags[1::2]))
    specs = parse_dataset_specs(values["--dataset_name"], None, values["--split"], values["--text_column_name"])
    for spec, noisy_set in zip(specs, noisy.sets):
        rows = list(load_mixture([spec]))
        assert [r["text"] for r in rows] == [r["text"] for r in sv_test_rows(corpus, 2)]
        assert all(r["error"] == "" and r["duration"] > 0 for r in rows)
        assert spec.name == str(noisy_set.manifest)


def test_the_robustness_plot_caps_a_hallucinating_model_and_writes_its_value(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(robustness, "save_png", lambda figure, path: figures.append(figure))
    labels = ["clean", "10 dB", "5 dB"]
    models = {"base": {"clean": {"wer": 135.8}, "10 dB": {"wer": 132.2}, "5 dB": {"wer": 354.0}},
              "tuned": {"clean": {"wer": 25.1}, "10 dB": {"wer": 64.9}, "5 dB": {"wer": 81.2}}}
    robustness.plot_robustness(models, labels, tmp_path / "curve.png")
    axis = figures[-1].axes[0]
    base_line, tuned_line = axis.get_lines()
    assert list(base_line.get_ydata()) == [135.8, 132.2, robustness.WER_AXIS_CAP]
    assert list(tuned_line.get_ydata()) == [25.1, 64.9, 81.2]
    assert axis.get_ylim()[1] < 160 and [text.get_text() for text in axis.texts] == ["354 %"]
    # Nothing off the scale: the axis is matplotlib's own and says nothing about a cap.
    robustness.plot_robustness({"tuned": models["tuned"]}, labels, tmp_path / "curve.png")
    assert not figures[-1].axes[0].texts and figures[-1].axes[0].get_ylabel() == "WER (%)"
