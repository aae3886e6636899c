"""large-v3 and large-v3-turbo end to end, with tiny random models shaped like them: 128 mel bins, the 100-language
vocabulary of 51866 tokens (<|yue|> at 50358, the task and timestamp tokens one further up), and turbo's 4-layer
decoder. Training, evaluation (run_eval.py) and the export (CTranslate2 with its parity check, whisper.cpp) all run
on them; the Hub ids themselves resolve normally on a machine with the Hub."""

import json

import ctranslate2
import numpy as np
import pytest
from faster_whisper import WhisperModel
from tiny_models import build_v3_model_dir
from training_runs import arguments
from transformers import WhisperProcessor

import run_eval
import run_speech_recognition_seq2seq_streaming as train_script
from whisper_finetuning.export.__main__ import main as export_main
from whisper_finetuning.features.log_mel import LogMelExtractor

# Feed-forward layers 4 x d_model wide, as in every Whisper (whisper.cpp assumes it).
SHAPES = {"large-v3": {"encoder_layers": 1, "decoder_layers": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64},
          "large-v3-turbo": {"encoder_layers": 1, "decoder_layers": 4, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}}


@pytest.fixture(scope="module", params=list(SHAPES))
def v3_model_dir(request, tmp_path_factory, base_ct2_config, base_tokenizer_file):
    folder = tmp_path_factory.mktemp(request.param) / "model"
    return build_v3_model_dir(folder, base_ct2_config, base_tokenizer_file, **SHAPES[request.param])


def test_the_tiny_models_have_the_v3_layout(v3_model_dir):
    processor = WhisperProcessor.from_pretrained(v3_model_dir)
    tokenizer = processor.tokenizer
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in
           ("<|su|>", "<|yue|>", "<|translate|>", "<|transcribe|>", "<|nospeech|>", "<|notimestamps|>", "<|0.00|>")}
    assert ids == {"<|su|>": 50357, "<|yue|>": 50358, "<|translate|>": 50359, "<|transcribe|>": 50360,
                   "<|nospeech|>": 50363, "<|notimestamps|>": 50364, "<|0.00|>": 50365}
    assert len(tokenizer) == 51866
    features = LogMelExtractor(processor.feature_extractor)(np.zeros(16000, np.float32))
    assert features.shape == (128, 3000)


def test_training_evaluation_and_export(v3_model_dir, corpus, tmp_path):
    trained = tmp_path / "trained"
    metrics = train_script.main(arguments(v3_model_dir, corpus, trained, "--do_train", "--do_eval",
                                          "--max_steps", "2"))
    assert np.isfinite(metrics["eval_wer"]) and np.isfinite(metrics["train_loss"])
    assert json.loads((trained / "preprocessor_config.json").read_text())["feature_size"] == 128
    generation = json.loads((trained / "generation_config.json").read_text())
    assert generation["lang_to_id"]["<|yue|>"] == 50358 and generation["task_to_id"]["transcribe"] == 50360

    (result,) = run_eval.main(["--model_name_or_path", str(trained), "--language", "sv", "--dataset_name",
                               str(corpus / "fleurs"), "--dataset_config_name", "sv_se", "--split", "test",
                               "--max_eval_samples", "4", "--generation_max_length", "8",
                               "--output_dir", str(tmp_path / "eval")])
    assert result["samples"] == 4 and np.isfinite(result["wer"])

    ct2 = tmp_path / "ct2"
    export_main(["--model", str(trained), "--quantization", "float32", "--output_dir", str(ct2), "--check",
                 str(corpus / "fleurs"), "--dataset_config_name", "sv_se", "--max_samples", "4"])
    report = json.loads((ct2 / "parity.json").read_text())
    assert report["passed"] and report["samples"] == 4 and report["identical"] == 1.0
    assert json.loads((ct2 / "config.json").read_text())["lang_ids"] == list(range(50259, 50359))
    model = WhisperModel(str(ct2), device="cpu", compute_type="float32")
    assert model.model.n_mels == 128 and model.feat_kwargs["feature_size"] == 128 and model.model.is_multilingual
    features = model.feature_extractor(np.zeros(30 * 16000, np.float32))[None, :, :3000]
    (languages,) = model.model.detect_language(ctranslate2.StorageView.from_array(
        np.ascontiguousarray(features, np.float32)))
    assert len(languages) == 100 and "<|yue|>" in {token for token, _ in languages}

    # whisper.cpp reads the v3 vocabulary and mel count from the file (the export checks both when it loads it).
    export_main(["--model", str(trained), "--to", "ggml", "--quantization", "float16", "--output_dir",
                 str(tmp_path / "ggml")])
    assert (tmp_path / "ggml" / "ggml-model.bin").is_file()


def test_the_app_runs_them_and_their_export(v3_model_dir, tmp_path):
    """The app's and the stream command's model path (load_backend, live-caption windows, long-form files) on
    the v3 shapes, as checkpoints and as CTranslate2 exports: 128-bin features, <|yue|> among the languages."""
    import shutil

    from whisper_finetuning.export.checkpoint import load_for_export
    from whisper_finetuning.export.ctranslate2 import convert_to_ctranslate2
    from whisper_finetuning.backends.load import load_backend
    from whisper_finetuning.inference.long_audio import transcribe_long
    from whisper_finetuning.inference.streaming import ModelWindows

    # Alignment heads inside the tiny decoder (the builder keeps whisper-base's, which point past its layers).
    model_dir = tmp_path / "model"
    shutil.copytree(v3_model_dir, model_dir)
    generation = json.loads((model_dir / "generation_config.json").read_text())
    (model_dir / "generation_config.json").write_text(json.dumps({**generation, "alignment_heads": [[1, 0], [1, 1]]}))
    export_dir = convert_to_ctranslate2(*load_for_export(str(model_dir)), tmp_path / "ct2", "float32")
    rng = np.random.default_rng(0)
    window = (0.1 * rng.standard_normal(3 * 16000)).astype(np.float32)
    recording = (0.1 * rng.standard_normal(35 * 16000)).astype(np.float32)
    for name in (str(model_dir), str(export_dir)):
        loaded = load_backend(name, dtype="float32")
        assert "yue" in loaded.languages() and len(loaded.languages()) == 100
        transcript = ModelWindows(loaded, "yue")(window, prompt="")
        assert transcript.language == "yue"
        assert all(0 <= w.start <= w.end <= 3.02 for w in transcript.words), transcript.words
        segments = transcribe_long(loaded, recording, loaded.generate_kwargs("yue"))
        assert all(0 <= s.start <= s.end <= 35.02 for s in segments), segments
