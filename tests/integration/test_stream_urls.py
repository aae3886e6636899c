"""Finite sources given as URLs (a podcast-style HTTP mp3, an HLS VOD playlist) are played at real time, so the live
captions cover the whole recording about as well as the File tab does; a live source that arrives faster than the
model can keep up ends with a warning naming the seconds dropped, never a plain success. Real speech (eSpeak NG), a
real model (whisper-tiny.en), ffmpeg and a web server on 127.0.0.1.

The recording is about 19 s: the tests that play it at real time take that long each."""

import functools
import html
import http.server
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import webvtt
from spoken_audio import SENTENCES, spoken_recording, write_wav

from normalizers import get_normalizer
from whisper_finetuning.app.handlers import Handlers
from whisper_finetuning.backends.load import load_backend
from whisper_finetuning.data.audio import SAMPLING_RATE
from whisper_finetuning.inference.audio_input import format_duration
from whisper_finetuning.inference.streaming import StreamSettings
from whisper_finetuning.metrics import error_rate

REPO = Path(__file__).resolve().parents[2]
MODEL = "openai/whisper-tiny.en"
REFERENCE = " ".join(SENTENCES)
# Live captions of a finite URL must be within 1.5x the File tab's WER on the same audio, plus 20 points: the File
# tab gets this recording (37 words) all right here (0 %), and 1.5x of nothing leaves no room for the sentence that
# whisper-tiny.en mishears in a short streaming buffer of the mp3 ("The train to the city leaves at seven." as "The
# train to miss Italy, Matt Severn.": 5 words, 13.5 %, in most runs) and a word or two more on a busy machine.
# Dropped audio, the failure these tests are about, costs far more (the reported case: 98 %), and any dropped
# second also turns the final status into a warning, which the tests check on their own.
WER_FACTOR, WER_SLACK = 1.5, 0.20


def wer(hypothesis: str) -> float:
    return error_rate([REFERENCE], [hypothesis], "wer", get_normalizer("en")).value


class FilesAndLiveStream(http.server.SimpleHTTPRequestHandler):
    """Files as a web server sends them (with their size), and /live.mp3 as a live stream: no size and no end known
    in advance (chunked), the bytes as fast as the connection takes them (as an Icecast server bursts its buffer).
    Chunked rather than Icecast's close-delimited body, whose end FFmpeg reports as an error ("Stream ends
    prematurely", EIO): the stream ends cleanly here."""

    def do_GET(self):
        if self.path != "/live.mp3":
            return super().do_GET()
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        data = (Path(self.directory) / "radio.mp3").read_bytes()
        for start in range(0, len(data), 4096):
            piece = data[start:start + 4096]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def tiny_en():
    return load_backend(MODEL, dtype="float32")


@pytest.fixture(scope="module")
def handlers(tiny_en):
    """The app's handlers with max_pending 20 s instead of 10 (as test_live_stream.py): on a busy machine the model
    may fall behind for a while, and what these tests check is the pacing; dropping is checked with the defaults."""
    return Handlers(tiny_en, StreamSettings(max_pending=20.0), max_audio_seconds=600)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The recording as speech.mp3 (with its size, as a podcast host serves it), as an HLS VOD playlist vod.m3u8
    (AAC segments of 2 s, #EXT-X-ENDLIST), and as live.mp3 (an Icecast-like stream of the same audio), on
    127.0.0.1; (base URL, folder, duration in seconds, the sentences' timeline)."""
    assert shutil.which("ffmpeg"), "these tests need the ffmpeg command: apt-get install ffmpeg (.ci/run does)"
    folder = tmp_path_factory.mktemp("served")
    audio, timeline = spoken_recording()
    wav = write_wav(folder / "speech.wav", audio)

    def ffmpeg(*arguments):
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav), *arguments], check=True)

    ffmpeg("-c:a", "libmp3lame", "-b:a", "64k", str(folder / "speech.mp3"))
    ffmpeg("-c:a", "libmp3lame", "-b:a", "64k", "-write_xing", "0", str(folder / "radio.mp3"))  # as radio sends
    ffmpeg("-c:a", "aac", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", str(folder / "vod.m3u8"))
    assert "#EXT-X-ENDLIST" in (folder / "vod.m3u8").read_text()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(FilesAndLiveStream, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder, len(audio) / SAMPLING_RATE, timeline
    server.shutdown()


@pytest.fixture(scope="module")
def file_tab_wer(handlers, served):
    """The File tab's WER on the mp3 (long-form decoding of the whole recording)."""
    _, folder, _, _ = served
    transcript, _, _, final = list(handlers.transcribe_file(str(folder / "speech.mp3"), "en", "transcribe"))[-1]
    assert "Transcribed" in final, final
    text = " ".join(re.sub(r"^\[[^]]*\] ", "", line) for line in transcript.splitlines())
    print(f"\nFile tab WER {wer(text):.3f}: {text}")
    return wer(text)


def status_text(status_html: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", status_html))


def check_covers_the_recording(vtt_path: str, timeline: list[dict], allowed_wer: float, what: str,
                               context: str = "") -> None:
    """The subtitles' WER is at most `allowed_wer`, and they run from the first sentence to the last."""
    cues = list(webvtt.read(vtt_path))
    text = " ".join(c.text for c in cues)
    print(f"{what} WER {wer(text):.3f} (allowed {allowed_wer:.3f}): {text}")
    assert wer(text) <= allowed_wer, f"{what}: {text}\n{context}"
    assert cues[0].start_in_seconds < timeline[0]["end"] and cues[-1].end_in_seconds > timeline[-1]["start"], (
        [(c.start_in_seconds, c.end_in_seconds, c.text) for c in cues], context)


@pytest.mark.parametrize("name", ["speech.mp3", "vod.m3u8"])
def test_the_stream_tab_plays_a_finite_url_at_real_time_and_captions_all_of_it(handlers, served, file_tab_wer, name):
    base, _, duration, timeline = served
    began = time.monotonic()
    outputs = list(handlers.caption_stream(f"{base}/{name}", "en", "transcribe"))
    elapsed = time.monotonic() - began
    _, lag, final, _, vtt = outputs[-1]
    print(f"\n{name}: {elapsed:.1f} s for {duration:.1f} s of audio; {status_text(final)}")
    assert 'class="status"' in final, final  # not a warning: nothing was dropped
    assert f"The stream ended after {format_duration(duration)}" in status_text(final)
    assert f"finite, {format_duration(duration)}, played at real time" in status_text(final)
    assert elapsed >= duration - 1.0  # played at real time, not as fast as the server sends it
    check_covers_the_recording(vtt, timeline, WER_FACTOR * file_tab_wer + WER_SLACK, f"Stream tab ({name})",
                               f"{status_text(final)}\n{status_text(lag)}")


def test_the_stream_command_plays_a_podcast_link_at_real_time_and_captions_all_of_it(tmp_path, served,
                                                                                      file_tab_wer):
    base, _, duration, timeline = served
    output = tmp_path / "captions.vtt"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.live_captions", "--model", MODEL, "--source",
                          f"{base}/speech.mp3", "--language", "en", "--output", str(output),
                          "--max_pending", "20"],  # as the handlers fixture: the test is about pacing
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"finite, {format_duration(duration)}, played at real time" in run.stderr, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1].startswith("[end of stream]"), run.stderr[-3000:]
    check_covers_the_recording(str(output), timeline, WER_FACTOR * file_tab_wer + WER_SLACK, "stream command",
                               run.stdout + run.stderr[-3000:])


def test_a_live_source_faster_than_the_model_ends_with_a_warning_naming_the_dropped_seconds(tiny_en, served):
    """A live stream that sends the whole recording at once: live (no size, no end), so it is not played at real
    time, and with the app's settings the model cannot take 19 s in at once (max_pending 10 s): audio is dropped,
    and the final status is a warning that says how much, not a plain "The stream ended"."""
    base, _, duration, _ = served
    handlers = Handlers(tiny_en, StreamSettings(), max_audio_seconds=600)
    _, lag, final, _, _ = list(handlers.caption_stream(f"{base}/live.mp3", "en", "transcribe"))[-1]
    text = status_text(final)
    assert 'class="status warning"' in final, final
    assert text.startswith("The stream ended after") and "live, read as it arrives" in text, text
    dropped = re.search(r"; ([\d.]+) s of the ([\d.]+) s of audio were dropped because the model fell behind", text)
    assert dropped, text
    assert 1.0 < float(dropped.group(1)) < float(dropped.group(2)) and abs(float(dropped.group(2)) - duration) < 0.5
    assert "fell behind" in lag  # and the lag line showed the warnings as they came


def test_the_stream_command_ends_with_a_warning_when_audio_was_dropped(tmp_path, served):
    """--realtime false hands the podcast link on as fast as it downloads: audio is dropped, and the last line and
    the exit status say so."""
    base, _, duration, _ = served
    output = tmp_path / "captions.vtt"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.live_captions", "--model", MODEL, "--source",
                          f"{base}/speech.mp3", "--language", "en", "--output", str(output), "--realtime", "false"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 3, run.stderr[-3000:]
    assert "finite, " in run.stderr and "read as it arrives" in run.stderr, run.stderr[-3000:]
    assert last.startswith("[warning: audio dropped]") and "end of stream" not in last, last
    assert re.search(r"\] [\d.]+ s of the [\d.]+ s of audio were dropped because the model fell behind", last), last
    assert "--transcribe_whole" in last, last


def test_a_finite_url_can_be_transcribed_whole_and_a_live_one_is_refused(tmp_path, handlers, served, file_tab_wer):
    base, _, duration, timeline = served
    allowed = WER_FACTOR * file_tab_wer + WER_SLACK
    _, _, final, _, vtt = list(handlers.caption_stream(f"{base}/vod.m3u8", "en", "transcribe", whole=True))[-1]
    assert f"Transcribed {format_duration(duration)} of {base}/vod.m3u8 whole" in status_text(final), final
    check_covers_the_recording(vtt, timeline, allowed, "Stream tab, whole (vod.m3u8)")

    _, _, refused, _, _ = list(handlers.caption_stream(f"{base}/live.mp3", "en", "transcribe", whole=True))[-1]
    assert 'class="status warning"' in refused and "is a live stream" in refused, refused

    output = tmp_path / "whole.vtt"
    run = subprocess.run([sys.executable, "-m", "whisper_finetuning.live_captions", "--model", MODEL, "--source",
                          f"{base}/speech.mp3", "--language", "en", "--output", str(output), "--transcribe_whole"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.strip().splitlines()[-1].startswith("[end of source] transcribed whole"), run.stderr[-3000:]
    check_covers_the_recording(str(output), timeline, allowed, "stream command, whole (speech.mp3)",
                               run.stdout + run.stderr[-3000:])
