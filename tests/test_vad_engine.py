"""FireRedVAD as the engine's segmenter (`vad_model`): the engine, the pipeline, the CLI, the server and archive runs
segment with the named FireRedVAD model, batched results equal one-by-one results, and the audio-event variant adds
`events` and can skip segments without speech."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from transformers import pipeline

from tests.audio import write_wav
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.engine import Engine, LoadOptions, OptionError, TranscribeOptions
from transformers_fireredasr.vad import FireRedVadDetector

DEMO = str(demo_model_dir())
SEGMENTS = TranscribeOptions(timestamps="segment")


# FireRedVAD's models are small: on a shared CPU, threads' synchronisation costs more than it saves.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def recording(tmp_path_factory, vad_recordings):
    path = tmp_path_factory.mktemp("vad_engine") / "speech.wav"
    write_wav(path, vad_recordings["speech"])
    return path


@pytest.fixture(scope="module")
def engine(converted_vad_dir):
    return Engine.from_pretrained(DEMO, {"device": "cpu", "vad_model": str(converted_vad_dir)})


@pytest.fixture(scope="module")
def event_engine(converted_vad_dir):
    return Engine.from_pretrained(DEMO, {"device": "cpu", "vad_model": str(converted_vad_dir / "AED")})


def spans(result: dict) -> list[tuple[float, float]]:
    return [tuple(chunk["timestamp"]) for chunk in result["chunks"]]


def test_the_engine_segments_with_the_named_firered_vad(engine, converted_vad_dir, vad_recordings):
    audio = vad_recordings["speech"]
    expected = FireRedVadDetector.from_pretrained(converted_vad_dir).detect(audio).segments
    result = engine.transcribe(audio, SEGMENTS)
    assert len(expected) >= 4
    assert spans(result) == [(round(start, 2), round(end, 2)) for start, end in expected]
    assert "events" not in result  # the one-output variant finds speech only
    silero = Engine.from_pretrained(DEMO, {"device": "cpu"}).transcribe(audio, SEGMENTS)
    assert spans(silero) != spans(result)


def test_batched_results_equal_one_by_one(engine, event_engine, vad_recordings):
    audios = [vad_recordings["speech"], vad_recordings["noise"], vad_recordings["speech"][: 16000 * 6]]
    for each in (engine, event_engine):
        alone = [each.transcribe(audio, SEGMENTS) for audio in audios]
        outcomes = each.transcribe_many(enumerate(audios), SEGMENTS, batch_size=4)
        together = [outcome.result for outcome in sorted(outcomes, key=lambda outcome: outcome.key)]
        assert together == alone


def test_the_event_model_adds_events_and_skip_music_drops_segments_without_speech(
    event_engine, converted_vad_dir, vad_recordings
):
    audio = vad_recordings["speech"]
    detected = FireRedVadDetector.from_pretrained(converted_vad_dir / "AED").detect(audio)
    result = event_engine.transcribe(audio, SEGMENTS)
    assert sorted((e["event"], e["start"], e["end"]) for e in result["events"]) == sorted(
        (name, start, end) for name, found in detected.events.items() for start, end in found
    )
    assert {e["event"] for e in result["events"]} >= {"speech", "singing"}
    each = event_engine
    skipping = Engine(each.model, each.feature_extractor, each.tokenizer, vad=each.vad, skip_music=True)
    skipping = skipping.transcribe(audio, SEGMENTS)
    speech = detected.events["speech"]
    assert all(any(s < end and start < e for s, e in speech) for start, end in spans(skipping))
    assert len(spans(skipping)) <= len(spans(result))


def test_options_are_checked(converted_vad_dir):
    with pytest.raises(OptionError, match="skip_music"):
        LoadOptions(skip_music=True)
    with pytest.raises(OptionError, match="vad_model"):
        LoadOptions(vad_model="")
    with pytest.raises(OptionError, match="audio-event"):
        Engine.from_pretrained(DEMO, {"device": "cpu", "vad_model": str(converted_vad_dir), "skip_music": True})
    assert LoadOptions(vad_model="silero").vad_model is None


def test_the_pipeline_takes_vad_model(engine, converted_vad_dir, vad_recordings):
    asr = pipeline("automatic-speech-recognition", model=DEMO, device="cpu")
    speech = vad_recordings["speech"][: 16000 * 8]
    audio = {"raw": speech, "sampling_rate": 16000}
    result = asr(dict(audio), return_timestamps=True, vad_model=str(converted_vad_dir))
    assert len(spans(result)) >= 2 and spans(result) == spans(engine.transcribe(speech, SEGMENTS))
    events = asr(dict(audio), return_timestamps=True, vad_model=str(converted_vad_dir / "AED"), batch_size=3)
    assert events["events"] and spans(events) != spans(result)


def test_the_command_line_segments_with_it(recording, converted_vad_dir, engine, capsys):
    from transformers_fireredasr.cli import main

    def jsonl_row(vad_model) -> dict:
        main(
            [str(recording), "--model", DEMO, "--device", "cpu", "--output-format", "jsonl", "--vad-model", vad_model]
        )
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    row = jsonl_row(str(converted_vad_dir))
    expected = engine.transcribe(str(recording), SEGMENTS)
    assert [(c["start"], c["end"]) for c in row["chunks"]] == [tuple(span) for span in spans(expected)]
    assert "events" not in row
    row = jsonl_row(str(converted_vad_dir / "AED"))
    assert row["events"] and {e["event"] for e in row["events"]} <= {"speech", "singing", "music"}


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # the official types know only 24 kHz input
def test_the_server_segments_with_it(recording, converted_vad_dir, event_engine, vad_recordings):
    """Requests are segmented with the server's FireRedVAD, and live sessions' server_vad turns are detected with its
    Stream-VAD variant (found beside the AED variant the server loaded)."""
    openai = pytest.importorskip("openai")
    from tests.realtime_helpers import collect, completed_count, of_type, stream
    from tests.vad_reference import to_pcm
    from transformers_fireredasr.serving.launch import ServerProcess
    from transformers_fireredasr.serving.realtime.vad import StreamingVad

    pcm = to_pcm(vad_recordings["speech"][: 16000 * 13 // 2])  # its first two utterances and their pauses

    async def live(server):
        websocket_url = server.base_url.replace("http://", "ws://")
        client = openai.AsyncOpenAI(base_url=server.base_url, websocket_base_url=websocket_url, api_key="-")
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
            rate = {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
            await connection.session.update(session=rate)
            await stream(connection, pcm, rate=16000)
            return await collect(connection, completed_count(2), timeout=120)

    with ServerProcess(["--vad-model", str(converted_vad_dir / "AED"), "--no-access-log"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=120)
        with open(recording, "rb") as file:
            verbose = client.audio.transcriptions.create(
                file=file, model="fireredasr-demo", response_format="verbose_json"
            ).model_dump()
        events = asyncio.run(live(server))
    expected = event_engine.transcribe(str(recording), SEGMENTS)
    assert [(s["start"], s["end"]) for s in verbose["segments"]] == [tuple(span) for span in spans(expected)]
    assert verbose["events"] == expected["events"] and verbose["events"]
    # the turns FireRedVAD's streaming model finds in the same samples, with the protocol's default settings
    turns = StreamingVad(detector=event_engine.vad.streaming_variant()).feed(pcm.astype(np.float32) / 32768)
    starts = [turn.sample // 16 for turn in turns if turn.kind == "start"]
    stops = [min(turn.sample + 3200, len(pcm)) // 16 for turn in turns if turn.kind == "stop"]  # + 200 ms kept
    assert len(starts) == len(stops) == 2
    assert [e["audio_start_ms"] for e in of_type(events, "input_audio_buffer.speech_started")] == starts
    assert [e["audio_end_ms"] for e in of_type(events, "input_audio_buffer.speech_stopped")] == stops


def test_silence_and_noise_give_no_segments(engine, vad_recordings):
    assert engine.transcribe(np.zeros(16000 * 3, dtype=np.float32), SEGMENTS)["chunks"] == []
    assert engine.transcribe(vad_recordings["noise"], SEGMENTS)["chunks"] == []


def test_an_archive_run_segments_with_it_and_records_the_events(recording, converted_vad_dir, event_engine, tmp_path):
    from transformers_fireredasr import cli

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(recording)}) + "\n")
    run_dir = tmp_path / "run"
    # pieces of at most 5 s: a run decodes a file within the limit whole
    argv = ["--manifest", str(manifest), "--output-dir", str(run_dir), "--max-segment-seconds", "5", "--no-progress"]
    assert cli.main([*argv, "--vad-model", str(converted_vad_dir / "AED")]) == 0
    (part,) = (run_dir / "parts").glob("*.jsonl")
    (record,) = [json.loads(line) for line in part.read_text().splitlines()]
    expected = event_engine.transcribe(str(recording), TranscribeOptions(timestamps="segment", max_segment_seconds=5))
    assert [(s["start"], s["end"]) for s in record["segments"]] == [tuple(span) for span in spans(expected)]
    assert len(record["segments"]) >= 4 and record["events"] == expected["events"]
    # the segmenter is one of the run's settings: a resume with silero-vad is refused
    assert cli.main(argv) == 2
