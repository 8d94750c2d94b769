"""The page's live mode in headless Chromium with a fake microphone playing a recording
(`--use-file-for-fake-audio-capture`): press Live, and the captions of what is said appear and become final."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.audio import HELD_OUT_CLIPS, join_with_pauses, read_wav, write_wav
from transformers_fireredasr.segmentation import vad_available

pytest.importorskip("fastapi")
pytest.importorskip("websockets")
playwright = pytest.importorskip("playwright.sync_api")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
KEY = "page-key"
pytestmark = [
    pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (apt-get install chromium)"),
]


def test_live_captions_from_the_microphone(tmp_path):
    clips = [read_wav(path) for path in HELD_OUT_CLIPS]
    recording, _ = join_with_pauses(clips, np.random.default_rng(5), (1.2, 1.4))
    microphone = tmp_path / "microphone.wav"
    write_wav(microphone, np.concatenate([np.zeros(8000, dtype=np.float32), recording]))
    arguments = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with ServerProcess(["--api-key", KEY, "--no-access-log"]) as server:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=arguments)
            try:
                page = browser.new_page()
                page.goto(server.url)
                page.locator("#key-row").wait_for(state="visible")
                page.fill("#api-key", KEY)
                page.dispatch_event("#api-key", "change")
                page.wait_for_function("document.getElementById('model').textContent === 'model: fireredasr-demo'")
                page.click("#live")
                page.wait_for_function("document.getElementById('status').textContent === 'live: listening'")
                page.wait_for_function("document.querySelectorAll('#captions p.final').length >= 1", timeout=60_000)
                finals = page.locator("#captions p.final")
                assert finals.count() >= 1 and all(finals.nth(i).inner_text() for i in range(finals.count()))
                page.click("#live")
                assert page.inner_text("#live") == "◉ Live" and page.inner_text("#status") == "live: stopped"
                assert "error" not in (page.get_attribute("#status", "class") or "")
            finally:
                browser.close()
    assert "WebSocket /v1/realtime" in server.output
