"""Live captions on real speech and a real model (whisper-tiny.en): an HLS stream made by ffmpeg and served from
127.0.0.1, a stream that stops, sources that never start, the stream command, word times, voice activity and long
audio."""

import functools
import http.server
import io
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import webvtt
from spoken_audio import SENTENCES, spoken_recording, write_wav

from normalizers import get_normalizer
from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.inference.audio_input import AudioInputError, AudioSource
from whisper_finetuning.inference.live import caption_live
from whisper_finetuning.inference.long_audio import transcribe_long
from whisper_finetuning.inference.streaming import ModelWindows, StreamingTranscriber, StreamSettings
from whisper_finetuning.inference.subtitles import cues_from_words, to_vtt
from whisper_finetuning.inference.vad import VoiceActivity
from whisper_finetuning.metrics import error_rate

REPO = Path(__file__).resolve().parents[2]
MODEL = "openai/whisper-tiny.en"
LAG_SLACK_SECONDS = 2.0


def wer(reference: str, hypothesis: str) -> float:
    return error_rate([reference], [hypothesis], "wer", get_normalizer("en")).value


@pytest.fixture(scope="module")
def tiny_en():
    return load_backend(MODEL, dtype="float32")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    audio, timeline = spoken_recording()
    return write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", audio), audio, timeline


class HLSServer:
    """ffmpeg turning a WAV file into a live HLS stream (AAC, 44.1 kHz stereo, 2 s segments) in real time,
    served over HTTP on 127.0.0.1."""

    def __init__(self, wav: Path, folder: Path):
        assert shutil.which("ffmpeg"), "these tests need the ffmpeg command: apt-get install ffmpeg (.ci/run does)"
        handler = functools.partial(QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live.m3u8"
        self.ffmpeg = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-i", str(wav), "-ar", "44100", "-ac", "2",
             "-c:a", "aac", "-f", "hls", "-hls_time", "2", "-hls_list_size", "0", str(folder / "live.m3u8")])
        deadline = time.monotonic() + 30
        while not (folder / "live.m3u8").is_file():
            assert time.monotonic() < deadline and self.ffmpeg.poll() is None, "ffmpeg made no playlist"
            time.sleep(0.1)

    def close(self):
        if self.ffmpeg.poll() is None:
            self.ffmpeg.kill()
        self.ffmpeg.wait()
        self.server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_hls_stream_is_captioned_with_monotonic_times_valid_vtt_and_bounded_lag(tmp_path, tiny_en, recording):
    wav, audio, timeline = recording
    hls = HLSServer(wav, tmp_path)
    try:
        source = AudioSource(hls.url)
        # max_pending 20 s: on a busy machine the model may fall behind for a while; dropping is test_streaming's.
        transcriber = StreamingTranscriber(ModelWindows(tiny_en, "en"), StreamSettings(max_pending=20.0),
                                           vad=VoiceActivity())
        updates = list(caption_live(source, transcriber, hls.url))
    finally:
        hls.close()
    assert source.info["sample_rate"] == 44_100 and source.info["channels"] == 2  # read from the stream
    # A live playlist (no #EXT-X-ENDLIST while ffmpeg writes it): no duration, captioned as it arrives.
    assert source.info["duration"] is None and not source.info["finite"] and not source.info["paced"]
    words = transcriber.committed
    text = "".join(w.text for w in words)
    assert wer(" ".join(SENTENCES), text) < 0.3, text
    starts, ends = [w.start for w in words], [w.end for w in words]
    assert starts == sorted(starts) and ends == sorted(ends) and all(w.end >= w.start for w in words)
    assert 0 <= starts[0] and ends[-1] <= len(audio) / SAMPLING_RATE + 1.0

    vtt = to_vtt(cues_from_words(words))
    cues = list(webvtt.from_buffer(io.StringIO(vtt)))
    assert len(cues) >= len(SENTENCES) // 2
    assert " ".join(c.text for c in cues).split() == text.split()
    times = [(c.start_in_seconds, c.end_in_seconds) for c in cues]
    assert all(s < e for s, e in times) and all(e <= s2 for (_, e), (s2, _) in zip(times, times[1:]))

    # Bounded lag, not growing: each update comes at most two steps' work after its newest audio arrived (audio
    # that came in while the previous step ran waits for it), plus time for voice activity and the HLS reader. A
    # backlog would add up from step to step; this bound holds on a loaded machine too, where steps are slow.
    assert transcriber.dropped_seconds == 0
    for previous, update in zip(updates, updates[1:-1]):
        assert update.lag <= previous.compute + update.compute + LAG_SLACK_SECONDS, [
            (round(u.lag, 2), round(u.compute, 2)) for u in updates]


def test_a_stream_that_stops_ends_with_what_was_said(tmp_path, tiny_en, recording):
    wav, _, timeline = recording
    hls = HLSServer(wav, tmp_path)
    threading.Timer(timeline[1]["end"] + 1.0, lambda: hls.ffmpeg.send_signal(signal.SIGKILL)).start()
    transcriber = StreamingTranscriber(ModelWindows(tiny_en, "en"), vad=VoiceActivity())
    began = time.monotonic()
    try:
        try:
            for _ in caption_live(AudioSource(hls.url, read_timeout=10), transcriber, hls.url, stall_seconds=10):
                pass
        except AudioInputError as error:
            assert "stopped sending audio" in str(error)
    finally:
        hls.close()
    assert time.monotonic() - began < 60
    said = get_normalizer("en")("".join(w.text for w in transcriber.committed))
    # What was said before the stop is committed (ffmpeg had written up to a segment more), nothing after.
    assert said.startswith(get_normalizer("en")(" ".join(SENTENCES[:2]))), said
    assert len(said.split()) < len(get_normalizer("en")(" ".join(SENTENCES)).split()) - 5, said


def test_sources_that_never_start_fail_with_a_message(tmp_path, tiny_en):
    folder = tmp_path / "empty"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        missing = f"http://127.0.0.1:{server.server_address[1]}/missing.m3u8"
        transcriber = StreamingTranscriber(ModelWindows(tiny_en, "en"))
        with pytest.raises(AudioInputError, match="cannot open .*missing.m3u8"):
            list(caption_live(AudioSource(missing), transcriber, missing))
    finally:
        server.shutdown()
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("no audio here\n" * 50)
    with pytest.raises(AudioInputError):
        list(caption_live(AudioSource(str(not_audio), realtime=False), StreamingTranscriber(
            ModelWindows(tiny_en, "en")), str(not_audio)))


def test_the_stream_command_prints_committed_text_and_writes_vtt(tmp_path, recording):
    _, audio, timeline = recording
    short = write_wav(tmp_path / "two.wav", audio[:int((timeline[1]["end"] + 1.0) * SAMPLING_RATE)])
    output = tmp_path / "captions.vtt"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.live_captions", "--model_name_or_path", MODEL,
                          "--source", str(short),
                          "--language", "en", "--output", str(output)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert wer(" ".join(SENTENCES[:2]), run.stdout) < 0.3, run.stdout
    assert "end of stream" in run.stderr
    cues = list(webvtt.read(str(output)))
    assert " ".join(c.text for c in cues).split() == run.stdout.split()


def test_word_times_match_where_the_sentences_are(tiny_en, recording):
    _, audio, timeline = recording
    end = int((timeline[1]["end"] + 0.5) * SAMPLING_RATE)
    words = tiny_en.window_transcriber()(audio[:end], tiny_en.generate_kwargs("en")).words
    first_sentence = len(timeline[0]["text"].split())
    # Cross-attention times are good to a few tenths of a second; a pause tends to stick to the word before it.
    assert abs(words[0].start - timeline[0]["start"]) < 0.5
    assert abs(words[first_sentence - 1].end - timeline[0]["end"]) < 0.5
    assert abs(words[first_sentence].start - timeline[1]["start"]) < 0.5
    assert abs(words[-1].end - timeline[1]["end"]) < 0.5


def test_voice_activity_finds_the_speech_and_not_the_pauses(recording):
    _, audio, timeline = recording
    flags = VoiceActivity()(audio)
    window = 512 / SAMPLING_RATE
    for sentence in timeline:
        inside = flags[int((sentence["start"] + 0.2) / window):int((sentence["end"] - 0.2) / window)]
        assert inside.mean() > 0.8
    pause = flags[int((timeline[0]["end"] + 0.3) / window):int((timeline[1]["start"] - 0.3) / window)]
    assert pause.size and not pause.any()


def test_long_audio_is_transcribed_past_the_30_second_window(tiny_en):
    audio, timeline = spoken_recording(SENTENCES * 2, pause=2.0)
    assert len(audio) / SAMPLING_RATE > 45
    segments = transcribe_long(tiny_en, audio, tiny_en.generate_kwargs("en"))
    text = " ".join(s.text for s in segments)
    assert wer(" ".join(s["text"] for s in timeline), text) < 0.3, text
    assert segments[-1].end > 40
    assert [s.start for s in segments] == sorted(s.start for s in segments)
    assert np.all(np.array([s.end for s in segments]) >= np.array([s.start for s in segments]))


def test_long_audio_segments_start_on_the_voice_after_long_silences(tiny_en):
    """Sentences after pauses of 6 s: each starts within 0.3 s of a segment's start, and no start is earlier than the
    model's own start was: a start before the voice moves onto it, the text stays as decoded."""
    audio, timeline = spoken_recording(SENTENCES[:4], pause=6.0, lead=5.0)
    kwargs = tiny_en.generate_kwargs("en")
    raw = transcribe_long(tiny_en, audio, kwargs, start_on_voice=False)
    moved = transcribe_long(tiny_en, audio, kwargs)
    assert [s.text for s in moved] == [s.text for s in raw] and all(m.start >= r.start for m, r in zip(moved, raw))
    starts = [t["start"] for t in timeline]
    errors = [min(abs(s.start - start) for s in moved) for start in starts]
    assert max(errors) < 0.3, (errors, [(s.start, s.text) for s in raw])
