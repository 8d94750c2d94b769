"""`WS /v1/realtime` on a real `fireredasr-serve` (uvicorn on 127.0.0.1, the bundled demo model), driven by the
official `openai` client's realtime connections over both session shapes: manual commits and server_vad turns, the
event order and item ids, deltas that only append and join to the completed transcript, completed transcripts
equal to what `POST /v1/audio/transcriptions` gives for the same audio (and its timed words, when included), the
error events that keep the socket usable, the session cap, idle sessions closed, a bad session beside a good one, the
API key, the `fireredasr-live` command on a file and on a fake microphone, and the page's live mode in headless
Chromium."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time

import numpy as np
import pytest

from tests.audio import HELD_OUT_CLIPS, join_with_pauses, read_wav, write_wav
from tests.realtime_helpers import (
    DELTA,
    TRANSCRIBED,
    collect,
    completed_count,
    http_transcript,
    http_words,
    of_type,
    stream,
    to_pcm24,
)
from transformers_fireredasr.segmentation import vad_available

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("websockets")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402
from transformers_fireredasr.serving.realtime.resample import resample_pcm16  # noqa: E402

MODEL = "fireredasr-demo"
WORDS = "item.input_audio_transcription.words"  # this server's `include`: timed words in `completed`
KEY = "live-key"
pytestmark = pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)")
IDLE_SECONDS = 3  # a session that sends nothing for this long is closed (--realtime-idle-timeout)
MANUAL = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}
MANUAL["audio"]["input"]["turn_detection"] = None
MANUAL["audio"]["input"]["transcription"] = {"model": MODEL, "language": "zh"}


@pytest.fixture(scope="module")
def server():
    arguments = ["--api-key", KEY, "--max-realtime-sessions", "2", "--realtime-idle-timeout", str(IDLE_SECONDS)]
    with ServerProcess([*arguments, "--no-access-log"]) as process:
        yield process


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [read_wav(path) for path in HELD_OUT_CLIPS]


def client(server, key: str = KEY):
    # The beta connection always dials wss:// unless told the websocket URL.
    websocket_url = server.base_url.replace("http://", "ws://")
    return openai.AsyncOpenAI(base_url=server.base_url, websocket_base_url=websocket_url, api_key=key, max_retries=0)


def connect(server, key: str = KEY):
    return client(server, key).realtime.connect(extra_query={"intent": "transcription"})


def check_deltas(events: list[dict], item_id: str, transcript: str) -> str:
    """The item's deltas come before its completed event. They join to the transcript when the stable text the
    partial decodes agreed on is its prefix (the last delta then carries the rest); otherwise (a partial decode of
    truncated audio can agree on a wrong word) nothing is sent after the commit, and nothing is taken back."""
    mine = [e for e in events if e.get("item_id") == item_id]
    kinds = [e["type"] for e in mine]
    assert DELTA not in kinds[kinds.index(TRANSCRIBED) :]
    joined = "".join(e["delta"] for e in mine if e["type"] == DELTA)
    if not transcript.startswith(joined):
        assert DELTA not in kinds[kinds.index("input_audio_buffer.committed") :], (joined, transcript)
        return joined
    assert joined == transcript
    return joined


def test_manual_commits_with_the_current_session_shape(server, clips):
    """...and this server's `include` of timed words: `completed` carries verbose_json's words of the utterance,
    in seconds of the session's audio; an unknown `include` value is an error event naming it."""
    first, second = (to_pcm24(clip) for clip in clips)

    async def run():
        async with connect(server) as connection:
            await connection.session.update(session={**MANUAL, "include": ["item.input_audio_transcription.bogus"]})
            refused = await collect(connection, lambda e: of_type(e, "error"))
            await connection.session.update(session={**MANUAL, "include": [WORDS]})
            events = refused + await collect(connection, lambda e: of_type(e, "session.updated"))
            await stream(connection, first, speed=4)  # a little faster than real time: partial decodes still run
            await connection.input_audio_buffer.commit()
            events += await collect(connection, completed_count(1))
            await stream(connection, second)
            await connection.input_audio_buffer.commit()
            events += await collect(connection, completed_count(1))
            return events

    events = asyncio.run(run())
    assert [e["type"] for e in events[:3]] == ["session.created", "error", "session.updated"]
    assert events[1]["error"]["param"] == "session.include" and "bogus" in events[1]["error"]["message"]
    assert events[2]["session"]["include"] == [WORDS]
    updated = events[2]["session"]["audio"]["input"]
    assert updated["turn_detection"] is None and updated["format"] == {"type": "audio/pcm", "rate": 24000}
    committed, completed = of_type(events, "input_audio_buffer.committed"), of_type(events, TRANSCRIBED)
    assert [c["item_id"] for c in committed] == [c["item_id"] for c in completed] and len(completed) == 2
    assert committed[0].get("previous_item_id") is None
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    offset = 0.0  # where the utterance begins in the session's audio
    for pcm, done in zip((first, second), completed, strict=True):
        audio = resample_pcm16(pcm, 24000)
        assert done["transcript"] and done["transcript"] == http_transcript(server.base_url, audio, KEY)
        words = http_words(server.base_url, audio, KEY)
        assert words and [w["word"] for w in done["words"]] == [w["word"] for w in words]
        assert [(w["start"], w["end"]) for w in done["words"]] == [
            (pytest.approx(w["start"] + offset, abs=1e-3), pytest.approx(w["end"] + offset, abs=1e-3)) for w in words
        ]
        assert [w["confidence"] for w in done["words"]] == [w["confidence"] for w in words]
        offset += len(audio) / 16000
        check_deltas(events, done["item_id"], done["transcript"])
        assert done["usage"] == {"type": "duration", "seconds": pytest.approx(len(audio) / 16000, abs=1e-3)}
        assert events.index(of_type(events, "input_audio_buffer.committed")[completed.index(done)]) < events.index(
            done
        )
    assert of_type(events, "input_audio_buffer.speech_started") == []  # no turn detection: the client commits


def test_server_vad_turns_with_the_beta_session_shape(server, clips):
    recording, spans = join_with_pauses(clips, np.random.default_rng(7), (1.2, 1.4))
    recording = np.concatenate([np.zeros(8000, dtype=np.float32), recording])
    pcm = to_pcm24(recording)
    session = {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": MODEL},
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300},
    }

    async def run():
        beta = client(server).beta.realtime.connect(model=MODEL, extra_query={"intent": "transcription"})
        async with beta as connection:
            await connection.transcription_session.update(session=session)
            events = await collect(connection, lambda e: of_type(e, "transcription_session.updated"))
            await stream(connection, pcm, speed=3)
            return events + await collect(connection, completed_count(2))

    events = asyncio.run(run())
    updated = of_type(events, "transcription_session.updated")[0]["session"]
    assert updated["input_audio_format"] == "pcm16" and updated["turn_detection"]["silence_duration_ms"] == 500
    started = of_type(events, "input_audio_buffer.speech_started")
    stopped = of_type(events, "input_audio_buffer.speech_stopped")
    committed, completed = of_type(events, "input_audio_buffer.committed"), of_type(events, TRANSCRIBED)
    assert len(started) == len(stopped) == len(committed) == len(completed) == 2
    audio = resample_pcm16(pcm, 24000)
    for number, item in enumerate(started):
        item_id = item["item_id"]
        assert stopped[number]["item_id"] == committed[number]["item_id"] == completed[number]["item_id"] == item_id
        kinds = [e["type"] for e in events if e.get("item_id") == item_id and e["type"] != DELTA]
        assert kinds == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
            TRANSCRIBED,
        ]
        begin, end = item["audio_start_ms"], stopped[number]["audio_end_ms"]
        placed_start, placed_end = (0.5 + t for t in spans[number])
        assert begin / 1000 <= placed_start + 0.1 and placed_end - 0.1 <= end / 1000 <= placed_end + 0.8
        transcript = completed[number]["transcript"]
        assert transcript and transcript == http_transcript(server.base_url, audio[begin * 16 : end * 16], KEY)
        check_deltas(events, item_id, transcript)
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]


def test_bad_input_gets_error_events_and_the_socket_stays_usable(server, clips):
    pcm = to_pcm24(clips[0])

    async def run():
        async with connect(server) as connection:
            await connection.session.update(session=MANUAL)
            await collect(connection, lambda e: of_type(e, "session.updated"))
            errors = []
            await connection.input_audio_buffer.commit()  # nothing to commit
            await connection.input_audio_buffer.append(audio="not base64!")
            odd = base64.b64encode(pcm[:100].tobytes() + b"\0").decode()  # 201 bytes
            await connection.input_audio_buffer.append(audio=odd)
            await connection.send({"type": "response.create"})
            await connection.session.update(
                session={"type": "transcription", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
            )
            await connection.session.update(
                session={"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}
            )
            errors = await collect(connection, lambda e: len(e) >= 6)
            await stream(connection, pcm[:12000])
            await connection.input_audio_buffer.clear()
            cleared = await collect(connection, lambda e: of_type(e, "input_audio_buffer.cleared"))
            await stream(connection, pcm)
            await connection.input_audio_buffer.commit()
            return errors, cleared, await collect(connection, completed_count(1))

    errors, cleared, events = asyncio.run(run())
    assert [e["type"] for e in errors] == ["error"] * 6
    codes = [(e["error"]["code"], e["error"]["param"]) for e in errors]
    assert codes == [
        ("input_audio_buffer_commit_empty", None),
        ("invalid_value", "audio"),
        ("invalid_value", "audio"),
        ("invalid_event", "type"),
        ("model_not_found", "session.audio.input.transcription.model"),
        ("invalid_value", "session.audio.input.format.type"),
    ]
    assert "base64" in errors[1]["error"]["message"] and "odd" in errors[2]["error"]["message"]
    assert [e["type"] for e in cleared if e["type"] != DELTA] == ["input_audio_buffer.cleared"]
    (done,) = of_type(events, TRANSCRIBED)
    # The cleared audio is gone: the item holds the second stream alone.
    assert done["transcript"] == http_transcript(server.base_url, resample_pcm16(pcm, 24000), KEY)


def test_the_session_cap_and_a_bad_session_beside_a_good_one(server, clips):
    pcm = to_pcm24(clips[1])

    async def bad(connection):
        for _ in range(5):
            await connection.input_audio_buffer.append(audio="%%%")
            await connection.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"odd").decode()})
        return await collect(connection, lambda e: len(of_type(e, "error")) >= 10)

    async def good(connection):
        await connection.session.update(session=MANUAL)
        await stream(connection, pcm, speed=8)
        await connection.input_audio_buffer.commit()
        return await collect(connection, completed_count(1))

    async def run():
        async with connect(server) as first, connect(server) as second:
            await collect(first, lambda e: e)  # session.created: both are open
            await collect(second, lambda e: e)
            async with connect(server) as third:  # over the cap: an error event, then a clean close
                refused = await collect(third, lambda e: e)
                with pytest.raises(Exception) as closed:
                    await third.recv()
            bad_events, good_events = await asyncio.gather(bad(first), good(second))
        async with connect(server) as again:  # the places are free again
            reopened = await collect(again, lambda e: e)
        return refused, closed.value, bad_events, good_events, reopened

    refused, closed, bad_events, good_events, reopened = asyncio.run(run())
    assert refused[0]["type"] == "error" and refused[0]["error"]["code"] == "session_limit_reached"
    assert "1013" in str(closed) or "try again" in str(closed).lower()
    assert {e["error"]["param"] for e in of_type(bad_events, "error")} == {"audio"}
    (done,) = of_type(good_events, TRANSCRIBED)
    assert done["transcript"] == http_transcript(server.base_url, resample_pcm16(pcm, 24000), KEY)
    assert reopened[0]["type"] == "session.created"


def test_idle_sessions_are_told_closed_and_free_their_places(server):
    import websockets.exceptions

    async def idle(connection):
        events = await collect(connection, lambda e: of_type(e, "error"), timeout=IDLE_SECONDS + 30)
        with pytest.raises(websockets.exceptions.ConnectionClosedOK) as closed:
            await connection.recv()
        return events, closed.value.rcvd.code, time.monotonic()

    async def run():
        began = time.monotonic()
        async with connect(server) as first, connect(server) as second:  # every place is taken
            outcomes = await asyncio.gather(idle(first), idle(second))
        async with connect(server) as again:  # and free again
            reopened = await collect(again, lambda e: e)
        return began, outcomes, reopened

    began, outcomes, reopened = asyncio.run(run())
    for events, code, ended in outcomes:
        assert [e["type"] for e in events] == ["session.created", "error"] and code == 1000
        assert (
            events[1]["error"]["code"] == "idle_timeout" and "--realtime-idle-timeout" in events[1]["error"]["message"]
        )
        assert ended - began >= IDLE_SECONDS
    assert reopened[0]["type"] == "session.created"


def test_the_api_key_and_the_model_name(server):
    import websockets.exceptions
    from websockets.asyncio.client import connect as ws_connect

    async def attempt(key: str):
        async with connect(server, key) as connection:
            return await collect(connection, lambda e: e)

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(attempt("wrong"))
    assert refused.value.response.status_code == 401

    async def without_key():
        url = server.base_url.replace("http://", "ws://") + "/realtime?intent=transcription"
        async with ws_connect(url):
            pass

    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        asyncio.run(without_key())
    assert refused.value.response.status_code == 401 and b"Missing API key" in refused.value.response.body

    async def browser_style():  # a browser cannot set headers: the key travels as a subprotocol
        url = server.base_url.replace("http://", "ws://") + "/realtime?intent=transcription"
        protocols = ["realtime", f"openai-insecure-api-key.{KEY}"]
        async with ws_connect(url, subprotocols=protocols) as socket:
            return socket.subprotocol, json.loads(await socket.recv())

    protocol, created = asyncio.run(browser_style())
    assert protocol == "realtime" and created["type"] == "session.created"

    async def wrong_model():
        beta = client(server).beta.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"})
        async with beta as connection:
            return await collect(connection, lambda e: e)

    (event,) = asyncio.run(wrong_model())
    assert event["type"] == "error" and event["error"]["code"] == "model_not_found"


def test_the_live_command_prints_the_captions(server, clips, tmp_path, capsys):
    from transformers_fireredasr.serving.realtime.live_cli import main

    one = tmp_path / "one.wav"
    write_wav(one, clips[0])
    common = ["--base-url", server.base_url, "--api-key", KEY, "--speed", "0"]
    # One utterance, sent at 16 kHz (no resampling): the line is the HTTP endpoint's transcript of the file.
    assert main([str(one), *common, "--turn-detection", "none", "--rate", "16000"]) == 0
    assert capsys.readouterr().out == http_transcript(server.base_url, read_wav(one), KEY) + "\n"
    # Two sentences with a pause between them, cut by the server's turn detection: a line each; --events prints
    # every server event as JSON.
    recording, _ = join_with_pauses(clips, np.random.default_rng(3), (1.2, 1.4))
    two = tmp_path / "two.wav"
    write_wav(two, recording)
    assert main([str(two), *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(lines)
    assert main([str(two), *common, "--events"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0]["type"] == "session.created"
    assert [e["transcript"] for e in of_type(events, TRANSCRIBED) if e["transcript"]] == lines
    assert main([str(tmp_path / "missing.wav"), *common]) == 2
    assert "no such file" in capsys.readouterr().err


class FakeMicrophone:
    """A stand-in for the `sounddevice` module: its RawInputStream plays `pcm` (16 kHz int16) through the callback
    in blocks, ten times faster than real time, then silence, then does what Ctrl-C does under `asyncio.run` (it
    cancels the main task)."""

    def __init__(self, pcm: np.ndarray, silence_blocks: int = 5) -> None:
        self.pcm, self.silence_blocks, self.opened = pcm, silence_blocks, []

    def RawInputStream(self, samplerate, channels, dtype, blocksize, callback):  # noqa: N802 (sounddevice's name)
        self.opened.append((samplerate, channels, dtype, blocksize))
        microphone = self

        class Stream:
            def __enter__(self):
                import threading

                self.loop, self.task, self.stop = asyncio.get_running_loop(), asyncio.current_task(), False
                self.thread = threading.Thread(target=self.play, daemon=True)
                self.thread.start()
                return self

            def play(self):
                silence = np.zeros(blocksize * microphone.silence_blocks, dtype="<i2")
                audio = np.concatenate([microphone.pcm, silence])
                for begin in range(0, len(audio), blocksize):
                    if self.stop:
                        return
                    block = audio[begin : begin + blocksize]
                    callback(block.tobytes(), len(block), None, None)
                    time.sleep(blocksize / samplerate / 10)
                self.loop.call_soon_threadsafe(self.task.cancel)  # Ctrl-C

            def __exit__(self, *exc):
                self.stop = True
                self.thread.join()

        return Stream()


def test_the_live_command_captions_the_microphone(server, clips, monkeypatch, capsys):
    """`fireredasr-live mic` with a fake `sounddevice` playing a recording: the utterance it committed when stopped
    (Ctrl-C) is the HTTP endpoint's transcript of the audio the microphone gave until then."""
    import sys

    from transformers_fireredasr.serving.realtime.live_cli import main

    pcm = np.clip(np.round(clips[0] * 32768), -32768, 32767).astype("<i2")
    microphone = FakeMicrophone(pcm)
    monkeypatch.setitem(sys.modules, "sounddevice", microphone)
    common = ["--base-url", server.base_url, "--api-key", KEY, "--turn-detection", "none", "--rate", "16000"]
    assert main(["mic", *common, "--events"]) == 0
    output = capsys.readouterr()
    assert microphone.opened == [(16000, 1, "int16", 1600)] and "listening" in output.err
    events = [json.loads(line) for line in output.out.splitlines()]
    (done,) = of_type(events, TRANSCRIBED)
    heard = round(done["usage"]["seconds"] * 16000)  # what the microphone gave before the stop, and no less
    assert heard >= len(pcm)
    audio = np.concatenate([clips[0], np.zeros(heard, dtype=np.float32)])[:heard]
    assert done["transcript"] and done["transcript"] == http_transcript(server.base_url, audio, KEY)


# A quarter of a second of a 1 kHz and of a 12 kHz tone at 48 and 44.1 kHz through the page's resampler to 16 kHz,
# in pieces of 128 samples (an AudioWorklet's) and at once: how many samples come out, whether the two ways agree, the
# largest error of the 1 kHz tone against its ideal 16 kHz samples, and the RMS of what is left of the 12 kHz one.
RESAMPLE_TONES = """() => {
  const out = {};
  for (const rate of [48000, 44100]) {
    const tone = (hz, r, n) => Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin(2 * Math.PI * hz * i / r));
    const pieces = (samples) => {
      const resampler = new Resampler(rate, 16000), parts = [];
      for (let i = 0; i < samples.length; i += 128) parts.push(resampler.push(samples.subarray(i, i + 128)));
      return Float32Array.from(parts.flatMap((part) => Array.from(part)));
    };
    const low = pieces(tone(1000, rate, rate / 4)), high = pieces(tone(12000, rate, rate / 4));
    const whole = new Resampler(rate, 16000).push(tone(1000, rate, rate / 4));
    const ideal = tone(1000, 16000, low.length);
    let error = 0, power = 0;
    for (let i = 100; i < low.length; i++) error = Math.max(error, Math.abs(low[i] - ideal[i]));
    for (let i = 100; i < high.length; i++) power += high[i] * high[i] / (high.length - 100);
    out[rate] = { count: low.length, same: whole.length === low.length && whole.every((v, i) => v === low[i]),
                  error, rms: Math.sqrt(power) };
  }
  return out;
}"""


def test_live_captions_in_the_browser_from_a_fake_microphone(server, clips, tmp_path):
    """The page's live mode in headless Chromium, its microphone playing a recording
    (`--use-file-for-fake-audio-capture`): press Live, and the captions of what is said appear and become final.
    The microphone runs at the audio context's own rate (which every browser connects) through an AudioWorklet, and
    the page's resampler brings it to 16 kHz: a tone below 8 kHz comes out as it went in, whatever the pieces it
    arrives in, and one above is filtered out, not folded back."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs chromium (apt-get install chromium)")
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
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=arguments)
        try:
            page = browser.new_page()
            page.goto(server.url)
            page.locator("#key-row").wait_for(state="visible")
            page.fill("#api-key", KEY)
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("document.getElementById('model').textContent === 'model: fireredasr-demo'")
            resampled = page.evaluate(RESAMPLE_TONES)
            page.click("#live")
            page.wait_for_function("document.getElementById('status').textContent === 'live: listening'")
            context_rate = page.evaluate("live.context.sampleRate")
            page.wait_for_function("document.querySelectorAll('#captions p.final').length >= 1", timeout=60_000)
            finals = page.locator("#captions p.final")
            assert finals.count() >= 1 and all(finals.nth(i).inner_text() for i in range(finals.count()))
            page.click("#live")
            assert page.inner_text("#live") == "◉ Live" and page.inner_text("#status") == "live: stopped"
            assert "error" not in (page.get_attribute("#status", "class") or "")
        finally:
            browser.close()
    assert "WebSocket /v1/realtime" in server.output
    assert context_rate not in (16000, 24000)  # the device's own rate: the page resampled what it sent
    for rate, tones in resampled.items():
        assert tones["count"] == 4000 - 24 and tones["same"], (rate, tones)  # the kernel's reach is still to come
        assert tones["error"] < 1e-4 and tones["rms"] < 1e-4, (rate, tones)  # 12 kHz: gone, not folded to 4 kHz
