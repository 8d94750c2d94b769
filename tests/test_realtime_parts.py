"""The parts of live transcription on their own: the streaming resampler against one-shot resampling and scipy's
`resample_poly`, the stable prefix of LocalAgreement-2, the protocol's session settings, and a session in-process
(the demo model behind a real batcher) that force-commits a long utterance and keeps its buffer bounded, and turn
detection with a server's FireRedVAD."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from tests.audio import HELD_OUT_CLIPS, read_wav
from tests.realtime_helpers import b64, to_pcm24
from transformers_fireredasr.serving.realtime.protocol import ProtocolError, SessionConfig, updated_config
from transformers_fireredasr.serving.realtime.resample import StreamingResampler, resample_pcm16
from transformers_fireredasr.serving.realtime.stabilise import LocalAgreement, agreed_prefix


def test_streaming_resampling_equals_one_shot_and_filters_like_resample_poly():
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(0)
    seconds = np.arange(24000 * 2) / 24000
    pcm = (np.sin(2 * np.pi * 440 * seconds) * 8000 + rng.normal(0, 800, len(seconds))).astype("<i2")
    whole = resample_pcm16(pcm, 24000)
    assert len(whole) == 32000 and whole.dtype == np.float32
    for _ in range(3):  # appends of any size give the same samples
        resampler, pieces, begin = StreamingResampler(24000), [], 0
        while begin < len(pcm):
            size = int(rng.integers(1, 3000))
            pieces.append(resampler.push(pcm[begin : begin + size]))
            begin += size
        assert np.array_equal(np.concatenate([*pieces, resampler.flush()]), whole)
    reference = signal.resample_poly(pcm / 32768.0, 2, 3)
    assert np.abs(reference - whole).max() <= 1 / 32768  # the same filter, rounded to 16 bits
    assert np.array_equal(whole * 32768, np.round(whole * 32768))
    above = (np.sin(2 * np.pi * 10000 * seconds) * 16000).astype("<i2")  # above 8 kHz: filtered out, not folded
    assert np.sqrt(np.mean(resample_pcm16(above, 24000)[1000:-1000] ** 2)) * 32768 < 16000 / 100
    assert np.array_equal(resample_pcm16(pcm, 16000), pcm / np.float32(32768))  # 16 kHz passes through


def test_local_agreement_sends_what_two_hypotheses_share_and_never_takes_it_back():
    assert agreed_prefix("今天天气", "今天天空") == "今天天"
    assert agreed_prefix("hello wor", "hello world") == "hello "  # never half an English word
    assert agreed_prefix("我说hello", "我说hello world") == "我说hello"
    agreement = LocalAgreement()
    assert agreement.update("今天") == ""  # one hypothesis is not an agreement
    assert agreement.update("今天天气") == "今天"
    assert agreement.update("今天天气很好") == "天气"
    assert agreement.update("今日天气很好") == ""  # disagrees with what was sent: nothing more, nothing taken back
    assert agreement.update("今天天气很好啊") == ""
    assert agreement.update("今天天气很好啊") == "很好啊"
    assert agreement.finish("今天天气很好啊。") == "。"
    three = LocalAgreement(3)
    assert [three.update(h) for h in ("今", "今天天", "今天天气", "今天天气很")] == ["", "", "今", "天天"]
    with pytest.raises(ValueError):
        LocalAgreement(1)
    diverged = LocalAgreement()
    diverged.update("老妈旅")
    assert diverged.update("老妈旅用") == "老妈旅"
    assert diverged.finish("老妈妈旅用手工") == ""  # the completed transcript alone carries the right text


def test_session_settings_in_both_shapes():
    config = SessionConfig(model="demo")
    current = {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 16000},
                    "transcription": {"model": "demo", "language": "EN", "keywords": ["火红"]},
                    "turn_detection": {"type": "server_vad", "threshold": 0.6, "silence_duration_ms": 300},
                }
            },
        },
    }
    updated = updated_config(config, current, "demo")
    assert (updated.rate, updated.language, updated.keywords) == (16000, "en", ("火红",))
    assert updated.turn_detection.threshold == 0.6 and updated.turn_detection.prefix_padding_ms == 300
    beta = {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16", "turn_detection": None}}
    manual = updated_config(updated, beta, "demo")
    assert manual.turn_detection is None and manual.rate == 16000  # only the fields present change
    assert manual.beta_shape("s")["turn_detection"] is None
    refused = {
        ("session", "semantic_vad"): ({"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}}, "type"),
        ("session", "prompt"): ({"audio": {"input": {"transcription": {"prompt": "hi"}}}}, "prompt"),
        ("session", "rate"): ({"audio": {"input": {"format": {"rate": 44100}}}}, "rate"),
        ("session", "threshold"): ({"audio": {"input": {"turn_detection": {"threshold": 2}}}}, "threshold"),
        ("session", "realtime"): ({"type": "realtime"}, "session.type"),
        ("beta", "g711"): ({"input_audio_format": "g711_ulaw"}, "input_audio_format"),
    }
    words = "item.input_audio_transcription.words"
    for kind in ("session.update", "transcription_session.update"):
        asked = {"type": kind, "session": {"include": ["item.input_audio_transcription.logprobs", words]}}
        assert updated_config(config, asked, "demo").include == (words,)  # log-probabilities are not sent
        with pytest.raises(ProtocolError, match="'item.bogus'") as error:
            updated_config(config, {"type": kind, "session": {"include": [words, "item.bogus"]}}, "demo")
        assert error.value.param == "session.include"
    for (shape, _), (session, param) in refused.items():
        kind = "session.update" if shape == "session" else "transcription_session.update"
        with pytest.raises(ProtocolError) as error:
            updated_config(config, {"type": kind, "session": {"type": "transcription", **session}}, "demo")
        assert error.value.param.endswith(param), (session, error.value.param)


@pytest.fixture(scope="module")
def engine():
    from transformers_fireredasr import demo_model_dir
    from transformers_fireredasr.engine import Engine

    return Engine.from_pretrained(str(demo_model_dir()))


def test_a_long_utterance_is_committed_before_the_limit_and_the_buffer_stays_bounded(engine):
    from transformers_fireredasr.serving.batcher import DynamicBatcher
    from transformers_fireredasr.serving.realtime.session import LiveSession
    from transformers_fireredasr.serving.settings import ServerSettings

    speech = np.concatenate([read_wav(path) for path in HELD_OUT_CLIPS] * 3)  # 14 s without a pause
    pcm = to_pcm24(speech)
    batcher = DynamicBatcher(engine.decode_each, max_batch_size=4, max_wait_ms=5)
    batcher.start()
    sent: list[dict] = []
    longest_buffer = 0

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    async def run():
        nonlocal longest_buffer
        session = LiveSession(engine, batcher, ServerSettings(served_model_name="demo"), send)
        session.max_utterance = 4 * 16000  # a short limit, so that a short recording reaches it
        await session.start()
        await session.handle(json.dumps({"type": "transcription_session.update", "session": {"turn_detection": None}}))
        for begin in range(0, len(pcm), 2400):
            await session.handle(
                json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm[begin : begin + 2400])})
            )
            longest_buffer = max(longest_buffer, len(session._audio))
        await session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
        while len([e for e in sent if e["type"].endswith("completed")]) < 4:
            await asyncio.sleep(0.05)
        await session.close()

    try:
        asyncio.run(asyncio.wait_for(run(), 120))
    finally:
        batcher.stop()
    committed = [e for e in sent if e["type"] == "input_audio_buffer.committed"]
    completed = [e for e in sent if e["type"].endswith("completed")]
    assert len(committed) == len(completed) == 4  # 14 s in pieces of at most 4 s
    assert [e["item_id"] for e in committed] == [e["item_id"] for e in completed]
    assert all(0 < e["usage"]["seconds"] <= 4.0 for e in completed)
    assert sum(e["usage"]["seconds"] for e in completed) == pytest.approx(len(speech) / 16000, abs=0.01)
    assert longest_buffer <= 4 * 16000 + 2400
    assert all(e["transcript"] for e in completed)


def test_completed_is_punctuated_as_the_engine_punctuates_a_request(converted_punc_dir):
    """With a punctuation model, `completed` is the engine's punctuated text of the utterance decoded as a request
    (the deltas stay the text as decoded)."""
    from transformers_fireredasr import demo_model_dir
    from transformers_fireredasr.engine import Engine, LoadOptions
    from transformers_fireredasr.serving.batcher import DynamicBatcher
    from transformers_fireredasr.serving.realtime.session import LiveSession
    from transformers_fireredasr.serving.settings import ServerSettings
    from transformers_fireredasr.serving.transcriber import request_options

    punctuating = Engine.from_pretrained(str(demo_model_dir()), LoadOptions(punctuation=str(converted_punc_dir)))
    pcm = to_pcm24(read_wav(HELD_OUT_CLIPS[0]))
    batcher = DynamicBatcher(punctuating.decode_each)
    batcher.start()
    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    async def run():
        session = LiveSession(punctuating, batcher, ServerSettings(served_model_name="demo"), send)
        await session.start()
        await session.handle(json.dumps({"type": "transcription_session.update", "session": {"turn_detection": None}}))
        await session.handle(json.dumps({"type": "input_audio_buffer.append", "audio": b64(pcm)}))
        await session.handle(json.dumps({"type": "input_audio_buffer.commit"}))
        while not [e for e in sent if e["type"].endswith("completed")]:
            await asyncio.sleep(0.05)
        await session.close()

    try:
        asyncio.run(asyncio.wait_for(run(), 60))
    finally:
        batcher.stop()
    (done,) = [e for e in sent if e["type"].endswith("completed")]
    expected = punctuating.transcribe(resample_pcm16(pcm, 24000), request_options())
    assert done["transcript"] == expected["text"] and expected["sentences"]


def test_an_idle_session_waits_for_a_pending_transcript_then_is_told(engine, capsys):
    """`LiveSession.receive`: a message in time is passed on; silence past the idle timeout ends the session with an
    `error` event, but not while an utterance's transcript is still being made; the setting is checked."""
    from transformers_fireredasr.serving.cli import main as serve
    from transformers_fireredasr.serving.realtime.session import LiveSession
    from transformers_fireredasr.serving.settings import ServerSettings

    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    async def silent() -> dict:
        await asyncio.Event().wait()

    async def talking() -> dict:
        await asyncio.sleep(0.05)
        return {"type": "websocket.receive", "text": "{}"}

    async def run():
        session = LiveSession(
            engine, None, ServerSettings(served_model_name="demo", realtime_idle_timeout_s=0.2), send
        )
        assert await session.receive(talking) == {"type": "websocket.receive", "text": "{}"}
        session._completion = asyncio.create_task(asyncio.sleep(0.5))  # a transcript on its way
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await session.receive(silent) is None
        return loop.time() - began

    waited = asyncio.run(run())
    assert waited >= 0.5
    (event,) = sent
    assert event["type"] == "error" and event["error"]["code"] == "idle_timeout"
    assert serve(["--realtime-idle-timeout", "0"]) == 2
    assert "realtime_idle_timeout_s must be positive" in capsys.readouterr().err


def test_words_need_a_model_that_times_them(engine, monkeypatch):
    """A session that includes words on a model without a CTC head gets an `error` event naming `include`."""
    from transformers_fireredasr.engine import Engine
    from transformers_fireredasr.serving.realtime.session import LiveSession
    from transformers_fireredasr.serving.settings import ServerSettings

    sent: list[dict] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    async def run():
        session = LiveSession(engine, None, ServerSettings(served_model_name="demo"), send)
        update = {"type": "session.update", "session": {"include": ["item.input_audio_transcription.words"]}}
        await session.handle(json.dumps(update))
        monkeypatch.setattr(Engine, "times_words", property(lambda self: False))
        await session.handle(json.dumps(update))
        return session.config.include

    include = asyncio.run(run())
    assert [e["type"] for e in sent] == ["session.updated", "error"]
    assert sent[0]["session"]["include"] == ["item.input_audio_transcription.words"] == list(include)
    assert sent[1]["error"]["param"] == "session.include" and "CTC" in sent[1]["error"]["message"]


def _protocol_turns(probabilities, threshold: float, prefix: int, silence: int, hop: int = 160) -> list[tuple]:
    """The protocol's turns, written out plainly: speech from the first frame at `threshold` (`prefix` samples earlier),
    until the probability has stayed under it for `silence` samples (reported where that silence began)."""
    turns, speaking, quiet = [], False, None
    for index, probability in enumerate(probabilities):
        if probability >= threshold:
            quiet = None
            if not speaking:
                speaking = True
                turns.append(("start", max(index * hop - prefix, 0)))
        elif speaking:
            quiet = index * hop if quiet is None else quiet
            if (index + 1) * hop - quiet >= silence:
                turns.append(("stop", quiet))
                speaking, quiet = False, None
    return turns


@pytest.mark.usefixtures("one_torch_thread")
def test_server_vad_detects_turns_with_the_servers_firered_vad(converted_vad_dir, vad_recordings):
    """A server that segments with FireRedVAD detects live turns with its Stream-VAD variant (found beside the loaded
    variant, loaded once): the turns of a stream fed in pieces of any size are the protocol's rule applied to the whole
    recording's probabilities, averaged over upstream's 5 frames. Without a streaming variant, silero-vad detects them."""
    from types import SimpleNamespace

    from transformers_fireredasr.serving.realtime.vad import StreamingVad, live_detector, turn_detection_available
    from transformers_fireredasr.vad import FireRedVadDetector

    engine = SimpleNamespace(vad=FireRedVadDetector.from_pretrained(converted_vad_dir / "AED"))
    live = live_detector(engine)
    assert live.model.config.is_streaming and live.folder.endswith("Stream-VAD") and live_detector(engine) is live
    audio = vad_recordings["speech"]
    probabilities = live.frame_probabilities([audio])[0].numpy()
    smoothed = [probabilities[max(0, index - 4) : index + 1].mean() for index in range(len(probabilities))]
    expected = _protocol_turns(smoothed, 0.6, 200 * 16, 400 * 16)
    assert [kind for kind, _ in expected] == ["start", "stop"] * 4  # four utterances with pauses between
    for size in (2400, 4321):
        vad = StreamingVad(0.6, 200, 400, detector=live)
        turns = [
            (event.kind, event.sample)
            for at in range(0, len(audio), size)
            for event in vad.feed(audio[at : at + size])
        ]
        assert turns == expected, size

    alone = SimpleNamespace(vad=FireRedVadDetector(engine.vad.model, engine.vad.feature_extractor))  # no folder
    assert live_detector(alone) is None and live_detector(SimpleNamespace(vad=None)) is None
    assert turn_detection_available(alone)  # silero-vad is installed
