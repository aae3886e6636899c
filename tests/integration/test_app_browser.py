"""The app end to end in a real browser: `python -m whisper_finetuning.app` on 127.0.0.1 with whisper-tiny.en,
driven by headless Chromium (Debian's `chromium`, through Playwright) with a fake microphone that plays a WAV
file. Screenshots of each tab after its transcription go to output/screenshots/."""

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import srt
from playwright.sync_api import sync_playwright
from spoken_audio import SENTENCES, spoken_recording, write_wav

from normalizers import get_normalizer
from whisper_finetuning.metrics import error_rate

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "output" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SPOKEN = SENTENCES[:2]  # "Please open the window. My brother lives in London."


def wer(reference: str, hypothesis: str) -> float:
    return error_rate([reference], [hypothesis], "wer", get_normalizer("en")).value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    audio, _ = spoken_recording(SPOKEN, pause=1.0)
    return write_wav(tmp_path_factory.mktemp("app") / "speech.wav", audio)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("app-log") / "app.log").open("w")
    app = subprocess.Popen([sys.executable, "-m", "whisper_finetuning.app", "--model", "openai/whisper-tiny.en",
                            "--host", "127.0.0.1", "--port", str(port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        assert app.poll() is None, Path(log.name).read_text()[-3000:]
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "the app did not start within 3 minutes"
            time.sleep(1)
    yield url
    app.terminate()
    app.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def browser(speech):
    assert Path(CHROMIUM).is_file(), "the browser test needs Debian's chromium: apt-get install chromium (.ci/run does)"
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={speech}"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1200, "height": 1500}, accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#upload")
    yield page
    context.close()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def transcript_text(timed: str) -> str:
    return " ".join(re.sub(r"^\[[^\]]*\]\s*", "", line) for line in timed.splitlines())


def upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.wait_for_selector('#upload [data-testid="audio-player-Audio file"]', state="attached", timeout=30_000)


def test_upload_shows_the_transcript_and_the_srt_downloads(page, speech, tmp_path):
    upload(page, speech)
    page.click("#transcribe-file")
    page.wait_for_function("() => document.querySelector('#transcript textarea').value.length > 0", timeout=180_000)
    timed = page.locator("#transcript textarea").first.input_value()
    assert re.match(r"^\[00:0\d\.\d → 00:\d\d\.\d\] ", timed), timed  # timestamps shown
    text = transcript_text(timed)
    assert wer(" ".join(SPOKEN), text) < 0.25, text
    assert "Transcribed" in page.locator("#file-status").inner_text()
    screenshot(page, "app_file.png")

    with page.expect_download() as download:
        page.locator('#srt-file a[data-testid="download-link"]').click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "speech.srt"
    subtitles = list(srt.parse(saved.read_text()))
    assert " ".join(s.content for s in subtitles).split() == text.split()
    times = [(s.start.total_seconds(), s.end.total_seconds()) for s in subtitles]
    assert all(a < b for a, b in times) and all(b <= c for (_, b), (c, _) in zip(times, times[1:]))
    assert times[-1][1] <= 10.0


def test_bad_uploads_get_a_message_in_the_page(page, tmp_path):
    page.click("#transcribe-file")  # nothing uploaded
    page.wait_for_function("() => document.querySelector('#file-status').innerText.includes('Upload')")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("these are notes, not audio\n" * 50)
    upload(page, not_audio)
    page.click("#transcribe-file")
    page.wait_for_function("() => document.querySelector('#file-status').innerText.includes('not an audio file')",
                           timeout=60_000)
    status = page.locator("#file-status").inner_text()
    assert "notes.wav is not an audio file" in status and "Traceback" not in page.content()
    assert "/tmp/" not in status  # no server paths in the page


def test_microphone_recording_and_live_captions(page):
    page.get_by_role("tab", name="Microphone").click()
    page.locator("#recording button.record-button").click()
    time.sleep(6)  # the fake microphone plays the WAV file (in a loop)
    page.locator("#recording button.stop-button").click()
    page.wait_for_selector('#recording [data-testid="audio-player-Recording"]', state="attached", timeout=30_000)
    page.click("#transcribe-recording")
    page.wait_for_function("() => document.querySelector('#recording-status').innerText.includes('Transcribed')",
                           timeout=180_000)
    recorded = transcript_text(page.locator("#transcript textarea").nth(1).input_value())
    assert "window" in recorded.lower() or "london" in recorded.lower(), recorded

    # Live: captions appear while the microphone is on. Gradio's microphone drops pieces while the server is busy
    # (a loaded machine); the page must then say that audio is lost, and captions may come later or be gappy.
    page.locator("#live-microphone button.record-button").click()
    page.wait_for_function(
        "() => { const t = document.querySelector('#live-captions').innerText.trim(); "
        "const lag = document.querySelector('#live-lag').innerText; "
        "return (t.length > 0 && /lag \\d/.test(lag)) || lag.includes('audio is being lost'); }", timeout=120_000)
    time.sleep(5)  # a few more steps
    lag = page.locator("#live-lag").inner_text()
    assert "live" in lag, lag
    screenshot(page, "app_microphone.png")
    page.locator("#live-microphone button", has_text="Stop").first.click()
    page.wait_for_function("() => document.querySelector('#live-lag').innerText.includes('stopped')",
                           timeout=120_000)
    captions = page.locator("#live-captions").inner_text()
    assert captions.strip(), lag  # what was heard is committed when the microphone stops
    assert re.search(r"window|brother|london", captions, re.IGNORECASE) or "audio is being lost" in lag, (
        captions, lag)
    page.wait_for_selector('#live-srt a[data-testid="download-link"]', state="attached", timeout=30_000)


def test_stream_tab_captions_a_file_as_it_plays_and_reports_a_dead_url(page, speech):
    page.get_by_role("tab", name="Stream / URL").click()
    page.fill("#stream-source textarea", str(speech))
    page.click("#stream-start")
    page.wait_for_function("() => document.querySelector('#stream-status').innerText.includes('16000 Hz')",
                           timeout=60_000)
    page.wait_for_function("() => document.querySelector('#stream-status').innerText.includes('ended')",
                           timeout=120_000)
    captions = page.locator("#stream-captions").inner_text()
    assert wer(" ".join(SPOKEN), captions) < 0.25, captions
    screenshot(page, "app_stream.png")

    page.fill("#stream-source textarea", "http://127.0.0.1:9/live.m3u8")
    page.click("#stream-start")
    page.wait_for_function("() => document.querySelector('#stream-status').innerText.includes('cannot open')",
                           timeout=60_000)
    assert "Traceback" not in page.content()
