"""The CTranslate2 export on the tiny model: a folder faster-whisper loads as it is, transcripts identical to the
trained model's in float32, LoRA adapters merged first, the parity report, and clear errors for bad input."""

import json
import shutil
from itertools import islice

import numpy as np
import pytest
from faster_whisper import WhisperModel

from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.backends.transformers_backend import TransformersBackend
from whisper_finetuning.data.mixing import load_mixture, parse_dataset_specs
from whisper_finetuning.evaluation.transcriber import Transcriber
from whisper_finetuning.export.__main__ import main as export_main
from whisper_finetuning.export.checkpoint import ExportError, load_for_export
from whisper_finetuning.export.ctranslate2 import convert_to_ctranslate2
from whisper_finetuning.export.parity import check_parity
from whisper_finetuning.loading import load_whisper
from whisper_finetuning.offline.ct2_reader import read_ct2_model
from normalizers import get_normalizer

SHORT = {"language": "sv", "task": "transcribe", "num_beams": 1}


def rows(corpus, count=6):
    specs = parse_dataset_specs(str(corpus / "fleurs"), "sv_se", "test", None)
    return list(islice(iter(load_mixture(specs)), count))


def transcripts(transcriber, clips) -> dict:
    return {t.row["id"]: t.text for t in transcriber(clips)}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """The tiny model as fine-tuning saves it: language and task in the generation config. Its max_length is 8
    (a random model rambles up to the limit): both models read it when generate() is given none."""
    folder = tmp_path_factory.mktemp("trained") / "model"
    shutil.copytree(tiny_model_dir, folder)
    generation = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").write_text(json.dumps({**generation, "language": "sv", "max_length": 8}))
    return folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model, processor = load_for_export(str(trained))
    return convert_to_ctranslate2(model, processor, tmp_path_factory.mktemp("export") / "ct2", "float32")


def test_the_export_is_a_folder_faster_whisper_loads_as_it_is(exported, trained):
    generation = json.loads((trained / "generation_config.json").read_text())
    config = json.loads((exported / "config.json").read_text())
    assert config["lang_ids"] == sorted(generation["lang_to_id"].values()) and len(config["lang_ids"]) == 99
    assert config["alignment_heads"] == generation["alignment_heads"]
    assert config["suppress_ids"] == generation["suppress_tokens"]
    assert config["suppress_ids_begin"] == generation["begin_suppress_tokens"]
    assert json.loads((exported / "preprocessor_config.json").read_text())["feature_size"] == 80
    model = WhisperModel(str(exported), device="cpu", compute_type="float32")
    assert model.feat_kwargs["feature_size"] == 80 and model.model.is_multilingual
    segments, info = model.transcribe(np.zeros(16000, np.float32), language="sv", beam_size=1)
    assert info.language == "sv" and isinstance(" ".join(s.text for s in segments), str)


def test_float32_transcripts_are_those_of_the_trained_model(exported, trained, corpus):
    model, processor = load_whisper(str(trained))
    clips = rows(corpus)
    trained = transcripts(Transcriber(TransformersBackend(model, processor), SHORT, batch_size=4), clips)
    export = load_backend(str(exported), device="cpu")
    assert export.name == "ctranslate2" and export.compute_type == "float32"
    exported_texts = transcripts(Transcriber(export, SHORT, batch_size=4), clips)
    assert len(trained) == 6 and exported_texts == trained and any(trained.values())


def test_a_prompt_conditions_both_backends_alike(exported, trained, corpus):
    """--prompt (Backend.prompt_ids): <|startofprev|> and the text's last 223 tokens, the same ids on both backends,
    and the same transcripts with it; a random model's text changes with the prompt it reads."""
    backends = [load_backend(str(trained), dtype="float32"), load_backend(str(exported), device="cpu")]
    long_prompt = " ".join(f"ord{i}" for i in range(600))
    ids = [backend.prompt_ids(long_prompt) for backend in backends]
    assert ids[0] == ids[1] and len(ids[0]) == 224
    assert backends[0].processor.tokenizer.convert_ids_to_tokens(ids[0][:1]) == ["<|startofprev|>"]
    assert backends[0].processor.tokenizer.decode(ids[0][1:]).strip().endswith("ord599")
    clips = rows(corpus)
    prompted = [transcripts(Transcriber(backend, {**SHORT, **backend.generate_kwargs("sv", prompt="Hej på dig, hur mår "
                                                                                      "du idag? Tack, bara bra.")},
                                        batch_size=4), clips) for backend in backends]
    plain = transcripts(Transcriber(backends[0], SHORT, batch_size=4), clips)
    assert prompted[0] == prompted[1] and prompted[0] != plain


def test_an_exported_model_that_transcribes_worse_fails_the_check(exported, corpus):
    # The same export, once decoding 2 tokens a clip and once 60: the longer transcripts of the random model are
    # insertions, so their WER is far worse than the "trained" ones' and the check must say so.
    export = load_backend(str(exported), device="cpu")
    clips = rows(corpus, 4)
    short = Transcriber(export, {**SHORT, "max_length": 2})
    worse = Transcriber(export, {**SHORT, "max_length": 60})
    report = check_parity(short, worse, clips, get_normalizer("sv"), 2.0, {})
    assert not report["passed"] and report["wer_difference"] > 2.0
    assert report["exported"]["wer"] > report["trained"]["wer"] and report["identical"] == 0.0
    same = check_parity(short, short, clips, get_normalizer("sv"), 0.0, {})
    assert same["passed"] and same["identical"] == 1.0 and same["samples"] == 4


def test_the_command_exports_checks_and_writes_the_parity_report(trained, corpus, tmp_path, capsys):
    out = tmp_path / "ct2"
    export_main(["--model", str(trained), "--quantization", "float32", "--output_dir", str(out),
                 "--check", str(corpus / "fleurs"), "--dataset_config_name", "sv_se", "--max_samples", "4"])
    report = json.loads((out / "parity.json").read_text())
    assert report["passed"] and report["samples"] == 4 and report["identical"] == 1.0
    assert report["language"] == "sv"  # from the model's generation config
    assert report["trained"]["wer"] == report["exported"]["wer"] and report["tolerance"] == 0.5
    assert str(tmp_path) not in (out / "parity.json").read_text() + (out / "parity.md").read_text()
    assert "Parity passed" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists and is not empty.*--overwrite_output_dir"):
        export_main(["--model", str(trained), "--output_dir", str(out)])


def test_a_lora_adapter_is_merged_before_conversion(trained, corpus, tmp_path, exported):
    from peft import LoraConfig, get_peft_model

    base, processor = load_whisper(str(trained))
    adapter = tmp_path / "adapter"
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    lora.save_pretrained(adapter)
    processor.save_pretrained(adapter)
    base.generation_config.save_pretrained(adapter)
    out = tmp_path / "ct2"
    export_main(["--model", str(adapter), "--quantization", "float32", "--output_dir", str(out)])

    exported_weights = read_ct2_model((out / "model.bin").read_bytes()).variables
    base_weights = read_ct2_model((exported / "model.bin").read_bytes()).variables
    query = "decoder/layer_0/self_attention/linear_0/weight"
    assert not np.array_equal(exported_weights[query], base_weights[query])  # the adapter is in the weights
    merged, merged_processor = load_whisper(str(adapter))
    clips = rows(corpus, 4)
    assert (transcripts(Transcriber(load_backend(str(out), device="cpu"), SHORT), clips)
            == transcripts(Transcriber(TransformersBackend(merged, merged_processor), SHORT), clips))


def test_language_ids_and_mel_bins_are_completed(trained, tmp_path):
    # A checkpoint whose generation config lacks lang_to_id, saved with a 128-bin feature extractor by mistake.
    folder = tmp_path / "odd"
    shutil.copytree(trained, folder)
    generation = json.loads((folder / "generation_config.json").read_text())
    del generation["lang_to_id"]
    (folder / "generation_config.json").write_text(json.dumps(generation))
    for name in ("preprocessor_config.json", "processor_config.json"):
        text = (folder / name).read_text().replace('"feature_size": 80', '"feature_size": 128')
        (folder / name).write_text(text)
    out = tmp_path / "ct2"
    export_main(["--model", str(folder), "--quantization", "int8", "--output_dir", str(out)])
    assert json.loads((out / "config.json").read_text())["lang_ids"] == list(range(50259, 50358))
    assert json.loads((out / "preprocessor_config.json").read_text())["feature_size"] == 80


@pytest.mark.parametrize("setup, message", [
    ("empty", "is not a Whisper model folder: it has neither config.json nor the adapter_config.json"),
    ("bert", "holds a 'bert' model, not Whisper"),
    ("ct2", "is a CTranslate2 model already"),
    ("adapter", r"LoRA adapter for .*moved-away, which cannot be found"),
])
def test_bad_models_are_clear_errors(setup, message, tmp_path, exported):
    folder = tmp_path / "model"
    if setup == "ct2":
        folder = exported
    else:
        folder.mkdir()
    if setup == "bert":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    if setup == "adapter":
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "moved-away"),
                                                                "peft_type": "LORA"}))
    with pytest.raises(ExportError, match=message):
        load_for_export(str(folder))
    with pytest.raises(SystemExit, match=message):
        export_main(["--model", str(folder), "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_an_unknown_quantization_is_a_clear_error(trained, tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main(["--model", str(trained), "--quantization", "int4", "--output_dir", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert "unknown quantization 'int4' for --to ctranslate2; choose one of float32, float16" in error


def test_the_app_and_stream_command_run_an_export_as_they_run_the_trained_model(trained, corpus, tmp_path):
    """load_backend takes the export: a streaming window gives the trained model's words (float32), timed
    inside the window, and a recording over 30 s comes back as ordered segments from faster-whisper's long form."""
    from whisper_finetuning.data.audio import decode_row_audio
    from whisper_finetuning.inference.long_audio import transcribe_long
    from whisper_finetuning.inference.streaming import LIVE_PROMPT_TOKENS, ModelWindows

    # Word times need alignment heads that exist in the tiny model (the fixture keeps whisper-base's, which point
    # past its 2 layers x 2 heads: CTranslate2 would read out of bounds).
    shutil.copytree(trained, tmp_path / "trained")
    trained = tmp_path / "trained"
    generation = json.loads((trained / "generation_config.json").read_text())
    (trained / "generation_config.json").write_text(json.dumps({**generation, "alignment_heads": [[1, 0], [1, 1]]}))
    exported = convert_to_ctranslate2(*load_for_export(str(trained)), tmp_path / "ct2", "float32")
    clip = decode_row_audio(rows(corpus, 1)[0]["audio"]).astype(np.float32)
    loaded_export = load_backend(str(exported))
    loaded_trained = load_backend(str(trained), dtype="float32")
    assert (loaded_export.name, loaded_trained.name) == ("ctranslate2", "transformers")
    assert loaded_export.languages() == loaded_trained.languages()
    export_window = ModelWindows(loaded_export, "sv")(clip, prompt="")
    trained_window = ModelWindows(loaded_trained, "sv")(clip, prompt="")
    assert export_window.words and export_window.language == "sv"
    # The random model's logits are nearly flat: float32 rounding differences let the two runs part after a few
    # words (the export's parity tests cap the length at 8 tokens for this reason).
    assert [w.text for w in export_window.words[:4]] == [w.text for w in trained_window.words[:4]]
    seconds = len(clip) / 16000
    for word in export_window.words:
        assert 0 <= word.start <= word.end <= seconds + 0.02
    # A live prompt (the app's live tabs): its last LIVE_PROMPT_TOKENS tokens come before the committed text, and a
    # long one leaves room for the window's new tokens on both backends.
    long_prompt = " ".join(["kvantdator"] * 200)
    for loaded in (loaded_export, loaded_trained):
        windows, seen = ModelWindows(loaded, "sv", prompt=long_prompt), []
        assert long_prompt.endswith(windows.prompt) and len(windows.prompt) < len(long_prompt)
        assert len(loaded.prompt_ids(windows.prompt)) - 1 <= LIVE_PROMPT_TOKENS + 1
        transcribe = windows.words
        windows.words = lambda audio, kwargs, prompt: seen.append(prompt) or transcribe(audio, kwargs, prompt)
        committed = " ".join(["det vi har sagt"] * 12)
        window = windows(clip, prompt=committed)
        assert seen == [f"{windows.prompt} {committed}"]
        assert all(0 <= word.start <= word.end <= seconds + 0.02 for word in window.words)
    long_recording = np.concatenate([clip] * int(np.ceil(40 / seconds)))
    segments = transcribe_long(loaded_export, long_recording, loaded_export.generate_kwargs("sv"))
    assert segments and all(a.start <= b.start for a, b in zip(segments, segments[1:]))
    assert segments[-1].end <= len(long_recording) / 16000 + 0.02
