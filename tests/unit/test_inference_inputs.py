"""What the app and the stream command accept: checkpoint folders (and the clear errors for adapters and exports),
audio files in any common format, streams with their own sample rate and channels, and bad input."""

import functools
import http.server
import json
import shutil
import threading

import av
import numpy as np
import pytest
import soundfile
import torch

from whisper_finetuning.app.sessions import MicrophoneCaptions
from whisper_finetuning.backends.base import ModelFormatError
from whisper_finetuning.backends.load import check_checkpoint, checkpoint_kind, load_backend
from whisper_finetuning.backends.words import WindowTranscript, Word
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.inference.audio_input import AudioInputError, AudioSource, read_audio_file
from whisper_finetuning.inference.guards import Guards
from whisper_finetuning.inference.live import caption_live
from whisper_finetuning.inference.streaming import StreamingTranscriber, StreamSettings


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([wave] * channels)  # [channels, samples]


def encode(path, samples: np.ndarray, rate: int, codec: str, container_format: str, options=None) -> None:
    """Write audio with FFmpeg's encoders (as phones and browsers do: AAC in .m4a, Opus in .webm)."""
    layout = "stereo" if samples.shape[0] == 2 else "mono"
    with av.open(str(path), "w", format=container_format, options=options or {}) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize("codec,container_format,suffix,rate", [("aac", "mp4", "m4a", 44_100),
                                                                ("libopus", "webm", "webm", 48_000)])
def test_files_libsndfile_cannot_read_are_decoded_with_ffmpeg(tmp_path, codec, container_format, suffix, rate):
    path = tmp_path / f"speech.{suffix}"
    encode(path, tone(2.0, rate, channels=2), rate, codec, container_format)
    with pytest.raises(Exception):
        soundfile.read(path)  # not the kit's decoder's formats
    samples = read_audio_file(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) / SAMPLING_RATE - 2.0) < 0.1
    rms = np.sqrt(np.mean(samples[4000:-4000] ** 2))
    assert 0.2 < rms < 0.32  # the tone (RMS 0.21 a channel), mixed down to mono by FFmpeg: (L + R) / sqrt 2


def test_bad_files_get_a_message_not_a_traceback(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not audio\n" * 100)
    with pytest.raises(AudioInputError, match="not an audio file"):
        read_audio_file(text)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 16_000)
    with pytest.raises(AudioInputError, match="no audio"):
        read_audio_file(empty)
    long = tmp_path / "long.wav"
    soundfile.write(long, tone(3.0, 16_000)[0], 16_000)
    with pytest.raises(AudioInputError, match="long.wav is 3 s long, longer than the limit of 2 s"):
        read_audio_file(long, max_seconds=2.0)


def test_a_stream_reports_its_own_rate_and_channels_and_comes_out_16k_mono(tmp_path):
    path = tmp_path / "radio.m4a"
    encode(path, tone(1.5, 44_100, channels=2), 44_100, "aac", "mp4")
    source = AudioSource(str(path), realtime=False)
    chunks = list(source)
    assert source.info["sample_rate"] == 44_100 and source.info["channels"] == 2
    assert source.info["codec"] == "aac"
    total = sum(len(c) for c in chunks)
    assert abs(total / SAMPLING_RATE - 1.5) < 0.1
    assert all(len(c) >= 0.1 * SAMPLING_RATE for c in chunks[:-1])


class FilesAndLiveStream(http.server.SimpleHTTPRequestHandler):
    """Files as a web server sends them (with their size), and /live.mp3 as Icecast does: no size, no end known
    (the bytes come as fast as the connection takes them, then the connection closes)."""

    def do_GET(self):
        if self.path != "/live.mp3":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.end_headers()
        with open(f"{self.directory}/radio.mp3", "rb") as stream:
            shutil.copyfileobj(stream, self.wfile)

    def log_message(self, *args):
        pass


def source_kind(source: str, realtime: bool | None = None) -> tuple[bool, bool]:
    """(finite, paced) as an AudioSource decides them once it is open (after its first piece)."""
    audio_source = AudioSource(source, realtime=realtime)
    pieces = iter(audio_source)
    next(pieces)
    pieces.close()
    return audio_source.info["finite"], audio_source.info["paced"]


def test_finite_sources_are_played_at_real_time_and_live_ones_as_they_arrive(tmp_path):
    """Auto-detection (realtime=None): a local file, an HTTP file FFmpeg knows the duration of and an HLS VOD
    playlist (#EXT-X-ENDLIST) are finite, played at real time; an HLS playlist without #EXT-X-ENDLIST (live: it
    may still grow) and an Icecast-like HTTP stream without a size are live, read as they arrive."""
    encode(tmp_path / "episode.mp3", tone(4.0, 44_100), 44_100, "libmp3lame", "mp3")
    shutil.copy(tmp_path / "episode.mp3", tmp_path / "radio.mp3")
    encode(tmp_path / "vod.m3u8", tone(4.0, 44_100), 44_100, "aac", "hls",
           {"hls_playlist_type": "vod", "hls_time": "1"})
    vod = (tmp_path / "vod.m3u8").read_text()
    assert "#EXT-X-ENDLIST" in vod
    (tmp_path / "live.m3u8").write_text("".join(line for line in vod.splitlines(keepends=True)
                                                if "#EXT-X-ENDLIST" not in line and "PLAYLIST-TYPE" not in line))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(FilesAndLiveStream, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert source_kind(str(tmp_path / "episode.mp3")) == (True, True)
        assert source_kind(f"{url}/episode.mp3") == (True, True)
        assert source_kind(f"{url}/vod.m3u8") == (True, True)
        assert source_kind(f"{url}/live.m3u8") == (False, False)
        assert source_kind(f"{url}/live.mp3") == (False, False)
        # The choice can be forced either way.
        assert source_kind(f"{url}/episode.mp3", realtime=False) == (True, False)
        assert source_kind(f"{url}/live.mp3", realtime=True) == (False, True)
        described = AudioSource(f"{url}/vod.m3u8")
        next(iter(described))
        assert described.describe().endswith("finite, 4 s, played at real time")
    finally:
        server.shutdown()


def test_a_source_that_fails_midway_still_gets_what_arrived_captioned():
    """The audio that came before a source failed (a dropped connection) is transcribed and committed, and the
    dropped-audio count covers it, before the failure is raised."""
    def radio():
        yield np.full(3 * SAMPLING_RATE, 0.1, dtype=np.float32)
        raise OSError("connection reset by peer")

    def heard(audio, prompt):  # what a model would hear in the 3 s (the streaming logic is under test here)
        return WindowTranscript([Word(" Hello", 0.5, 1.0), Word(" there.", 1.0, 1.5)], "en", 0.0, -0.1)

    transcriber = StreamingTranscriber(heard)
    updates = []
    with pytest.raises(AudioInputError, match="reading the radio failed: connection reset by peer"):
        for update in caption_live(radio(), transcriber, "the radio"):
            updates.append(update)
    assert "".join(w.text for w in transcriber.committed) == " Hello there."
    assert transcriber.audio_time == 3.0 and updates[-1].partial == []


def test_unreachable_and_missing_sources_fail_with_the_reason(tmp_path):
    with pytest.raises(AudioInputError, match="neither a URL nor an existing file"):
        AudioSource(str(tmp_path / "nothing.mp3"))
    with pytest.raises(AudioInputError, match="cannot open http://127.0.0.1:9/"):
        list(AudioSource("http://127.0.0.1:9/live.m3u8", open_timeout=5))


def test_checkpoint_kinds_and_what_is_refused(tmp_path, tiny_model_dir):
    assert checkpoint_kind("openai/whisper-base") == "hub"
    assert checkpoint_kind(str(tiny_model_dir)) == "transformers"
    export = tmp_path / "ct2"
    export.mkdir()
    (export / "model.bin").write_bytes(b"\0")
    (export / "config.json").write_text(json.dumps({"alignment_heads": [[0, 0]], "lang_ids": []}))
    assert checkpoint_kind(str(export)) == "ctranslate2"
    with pytest.raises(ModelFormatError, match="cannot load the CTranslate2 export .*processor files"):
        load_backend(str(export))  # a real export runs: test_export_ctranslate2.py
    with pytest.raises(ModelFormatError, match="no config.json"):
        check_checkpoint(str(tmp_path))
    no_processor = tmp_path / "weights-only"
    no_processor.mkdir()
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, no_processor / name)
    with pytest.raises(ModelFormatError, match="processor saved with the model"):
        load_backend(str(no_processor))


def test_a_lora_adapter_folder_loads_merged_into_its_base(tmp_path, tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    base = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir)
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # a non-zero update, so that merging changes the weights
        for name, parameter in adapter.named_parameters():
            if "lora_B" in name:
                parameter.fill_(0.01)
    adapter.save_pretrained(tmp_path / "adapter")
    assert checkpoint_kind(str(tmp_path / "adapter")) == "lora_adapter"
    loaded = load_backend(str(tmp_path / "adapter"), dtype="float32")
    assert isinstance(loaded.model, WhisperForConditionalGeneration)  # merged: a plain Whisper model
    original = WhisperForConditionalGeneration.from_pretrained(tiny_model_dir).state_dict()
    merged = loaded.model.state_dict()
    name = "model.decoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(merged[name], original[name])

    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone"),
                                                            "peft_type": "LORA"}))
    with pytest.raises(ModelFormatError, match="LoRA adapter for .*gone, which cannot be found"):
        load_backend(str(orphan))


@pytest.fixture(scope="module")
def tiny_inference_model(tmp_path_factory, tiny_model_dir):
    """The tiny random Whisper with alignment heads that exist in its 2-layer, 2-head decoder."""
    folder = tmp_path_factory.mktemp("tiny-aligned")
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    config = json.loads((folder / "generation_config.json").read_text())
    config["alignment_heads"] = [[1, 0], [1, 1]]
    (folder / "generation_config.json").write_text(json.dumps(config))
    return load_backend(str(folder), dtype="float32")


def test_word_times_lie_inside_the_window_in_order(tiny_inference_model):
    audio = tone(1.0, SAMPLING_RATE)[0]  # (a random model babbles to the token limit: 16 tokens for 1 s)
    result = tiny_inference_model.window_transcriber()(audio, tiny_inference_model.generate_kwargs(None),
                                                       prompt="Hej hopp.")
    assert result.language in tiny_inference_model.languages()  # detected: no language was given
    assert 0.0 <= result.no_speech_prob <= 1.0 and result.avg_logprob <= 0.0
    assert result.words, "the random model says something"
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0.0 <= w.start <= w.end <= 1.0 + 0.02 for w in result.words)
    # Babbling to the token limit is flagged, and the guards throw it away.
    assert result.truncated and "token limit" in Guards().rejection(result)


def test_microphone_audio_arriving_slower_than_real_time_is_reported(tiny_inference_model):
    """The page sends the microphone in pieces; when fewer seconds of audio come than seconds pass (the browser
    dropped pieces), the live view says so instead of captioning a gappy recording silently."""
    session = MicrophoneCaptions(tiny_inference_model, "en", "transcribe", StreamSettings())
    silence = np.zeros(48_000 // 10, dtype=np.int16)  # 0.1 s at the browser's 48 kHz
    try:
        for _ in range(60):
            session.feed(48_000, silence)
        session.first_piece -= 6.0  # these 6 s of audio came in 6 s: nothing lost
        assert session.shortfall() is None
        session.first_piece -= 24.0  # 6 s of audio in 30 s
        assert "sent 6 s of microphone audio in 30 s" in session.shortfall()
    finally:
        session.stop()
    assert session.done.is_set() and session.error is None and session.shortfall() is None


def test_long_recordings_get_run_evals_guards_and_a_fixed_seed(tiny_model_dir):
    """The app's long-form path decodes a recording over 30 s with run_eval.py's guards (temperature fallback,
    no-speech skip), seeded, and a short one plainly; the caller's language and task win."""
    from whisper_finetuning.backends.guards import LONG_FORM_GUARDS
    from whisper_finetuning.inference.long_audio import transcribe_long

    loaded = load_backend(str(tiny_model_dir), dtype="float32")
    calls = []

    def recording_generate(input_features, **kwargs):
        calls.append({"frames": input_features.shape[-1], "seed_draw": torch.rand(1).item(), **kwargs})
        return {"segments": [[]], "sequences": torch.zeros((1, 0), dtype=torch.long)}

    loaded.model.generate = recording_generate
    torch.manual_seed(123)
    before = torch.rand(1).item()
    torch.manual_seed(123)
    for seconds in (45, 45, 5):
        transcribe_long(loaded, np.zeros(seconds * 16000, dtype=np.float32) + 0.01, {"language": "sv", "task": "transcribe"})
    assert torch.rand(1).item() == before  # the caller's random state is left as it was
    long_a, long_b, short = calls
    assert long_a["frames"] > 3000 and short["frames"] == 3000
    for name, value in LONG_FORM_GUARDS.items():
        assert long_a[name] == value and name not in short
    assert long_a["language"] == "sv" and long_a["task"] == "transcribe"
    assert long_a["seed_draw"] == long_b["seed_draw"]  # the fallback's sampling starts from the same seed each time
