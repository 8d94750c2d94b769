"""The page at `/`, driven for real in headless Chromium (the system's, through playwright): enter the API key,
upload a recording, press Transcribe, wait for the text; the transcript, the timeline and the segment table must
show what the API returns. The screenshot is kept as tests/artifacts/serving_page.png (ignored by git)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.serving_helpers import make_clips
from transformers_fireredasr.segmentation import vad_available

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
playwright = pytest.importorskip("playwright.sync_api")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HELD_OUT = Path(__file__).resolve().parents[1] / "examples" / "audio" / "held_out_1.wav"
ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "serving_page.png"
KEY = "page-key"
pytestmark = [
    pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]


def test_upload_and_transcribe_in_the_browser(tmp_path):
    clips = make_clips(tmp_path, count=4)
    with ServerProcess(["--api-key", KEY]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
        with open(clips.long_path, "rb") as file:
            expected = client.audio.transcriptions.create(
                file=file,
                model="fireredasr-demo",
                response_format="verbose_json",
                timestamp_granularities=["segment", "word"],
            )
        assert len(expected.segments) == 4
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.goto(server.url)
                page.locator("#key-row").wait_for(state="visible")  # /v1/models said 401
                page.fill("#api-key", KEY)
                page.dispatch_event("#api-key", "change")
                page.wait_for_function("document.getElementById('model').textContent === 'model: fireredasr-demo'")
                page.set_input_files("#file", str(clips.long_path))
                page.click("#transcribe")
                page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=120_000)
                transcript = page.inner_text("#transcript")
                blocks = page.locator("#segment-track .block")
                rows = page.locator("#segments tbody tr")
                assert transcript == expected.text and transcript
                assert blocks.count() == 4 and rows.count() == 4
                assert [blocks.nth(i).get_attribute("title").split(": ", 1)[1] for i in range(4)] == [
                    segment.text for segment in expected.segments
                ]
                lefts = [blocks.nth(i).bounding_box()["x"] for i in range(4)]
                assert lefts == sorted(lefts) and len(set(lefts)) == 4  # placed along the timeline in order
                words = page.locator("#word-track .block")  # the demo times words: the page asks for them
                assert expected.words and words.count() == len(expected.words)
                assert [words.nth(i).inner_text() for i in range(words.count())] == [w.word for w in expected.words]
                assert page.inner_text("#duration") == f"{expected.duration:.2f} s"
                assert "real time" in page.inner_text("#elapsed")
                confidences = [segment.model_extra["confidence"] for segment in expected.segments]
                assert page.inner_text("#confidence") == f"{sum(confidences) / len(confidences):.3f}"
                assert page.is_visible("#transcript")
                ARTIFACT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACT), full_page=True)
            finally:
                browser.close()
    assert ARTIFACT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and ARTIFACT.stat().st_size > 20_000
    print(f"screenshot: {ARTIFACT}")


def test_the_page_shows_an_error_for_bad_audio_and_takes_hotwords(tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    with ServerProcess() as server, playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_function("document.getElementById('model').textContent.startsWith('model: ')")
            page.set_input_files("#file", str(not_audio))
            page.click("#transcribe")
            page.wait_for_function("document.getElementById('status').className === 'error'", timeout=60_000)
            message = page.inner_text("#status")
            assert message.startswith("error 400:") and "notes.wav" in message and "not readable as audio" in message
            # The hotwords box: the demo hears 快网产 in this clip unless it is told 快望产.
            page.set_input_files("#file", str(HELD_OUT))
            page.fill("#hotwords", "快望产")
            page.click("#transcribe")
            page.wait_for_function("document.getElementById('status').textContent === 'done'", timeout=60_000)
            assert "快望产" in page.inner_text("#transcript")
        finally:
            browser.close()
