"""`fireredasr-serve` with the bundled demo model, driven by the official `openai` client and plain HTTP: every
response format against the pipeline, streaming, concurrency against sequential requests, and every 400/404."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.audio import read_wav, write_wav
from tests.serving_helpers import RATE, make_clips, parse_srt, parse_vtt
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.segmentation import vad_available

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

DEMO = demo_model_dir()
MODEL = "fireredasr-demo"
pytestmark = [
    pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)"),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("serving"))


@pytest.fixture(scope="module")
def server():
    # A generous wait so that the concurrent requests below share generate calls even on a busy machine.
    with ServerProcess(["--max-batch-size", "8", "--max-wait-ms", "50"]) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def asr():
    from transformers import pipeline

    return pipeline("automatic-speech-recognition", model=str(DEMO))


@pytest.fixture(scope="module")
def expected_long(asr, clips):
    """What the pipeline gives for the four-sentence recording with segment timestamps (the server's oracle)."""
    return asr(str(clips.long_path), return_timestamps=True)


def transcribe(client, path: Path, **options):
    with open(path, "rb") as file:
        return client.audio.transcriptions.create(file=file, model=MODEL, **options)


def post(server, files: dict | None = None, headers: dict | None = None, **fields) -> httpx.Response:
    """A raw multipart POST (for what the openai client would not send)."""
    return httpx.post(f"{server.base_url}/audio/transcriptions", data=fields, files=files, headers=headers, timeout=60)


def test_json_and_text_equal_the_pipeline(client, clips, expected_long):
    assert len(expected_long["chunks"]) == 4 and expected_long["text"]
    assert transcribe(client, clips.long_path).text == expected_long["text"]
    assert transcribe(client, clips.long_path, response_format="text") == expected_long["text"] + "\n"


def test_verbose_json_segments_are_the_pipelines_and_ordered(client, clips, expected_long):
    verbose = transcribe(client, clips.long_path, response_format="verbose_json", timestamp_granularities=["segment"])
    assert verbose.text == expected_long["text"] and verbose.language == "chinese"
    assert verbose.duration == pytest.approx(clips.long_seconds, abs=1e-3)
    got = [(segment.text, (segment.start, segment.end)) for segment in verbose.segments]
    assert got == [(chunk["text"], chunk["timestamp"]) for chunk in expected_long["chunks"]]
    assert [segment.id for segment in verbose.segments] == [0, 1, 2, 3]
    for segment, following in zip(verbose.segments, verbose.segments[1:], strict=False):
        assert segment.end <= following.start
    for segment, (placed_start, placed_end) in zip(verbose.segments, clips.long_spans, strict=True):
        assert 0 <= segment.start < segment.end <= verbose.duration
        assert abs(segment.start - placed_start) <= 0.5 and abs(segment.end - placed_end) <= 0.5
        assert segment.tokens and segment.seek == round(segment.start * 100)
    assert verbose.words is None  # words only when asked for


def test_word_timestamps_are_the_pipelines_and_keep_the_pauses(client, clips, asr):
    verbose = transcribe(
        client, clips.long_path, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    words, segments = verbose.words, verbose.segments
    assert len(segments) == 4 and words
    assert "".join(word.word for word in words) == verbose.text.replace(" ", "")
    # Each segment's words are what the pipeline gives for that segment's audio alone, shifted to its start.
    audio, rate = read_wav(clips.long_path), RATE
    for segment in segments:
        inside = [word for word in words if segment.start <= word.start and word.end <= segment.end]
        piece = audio[round(segment.start * rate) : round(segment.end * rate)]
        expected = asr({"raw": piece, "sampling_rate": rate}, return_timestamps="word")["chunks"]
        assert [word.word for word in inside] == [chunk["text"] for chunk in expected]
        for word, chunk in zip(inside, expected, strict=True):
            assert word.start == pytest.approx(segment.start + chunk["timestamp"][0], abs=0.045)
            assert word.end == pytest.approx(segment.start + chunk["timestamp"][1], abs=0.045)
            assert word.model_extra["confidence"] == pytest.approx(chunk["confidence"], abs=0.02)
    assert sum(len([w for w in words if s.start <= w.start and w.end <= s.end]) for s in segments) == len(words)
    for word, following in zip(words, words[1:], strict=False):
        assert word.start <= word.end <= following.start
    # The 1-1.6 s pauses between the sentences stay gaps between their last and first words.
    for before, after in zip(segments, segments[1:], strict=False):
        last = max(w.end for w in words if w.start < after.start)
        first = min(w.start for w in words if w.start >= after.start)
        assert first - last >= 0.8, (before.text, after.text, last, first)


def test_text_segments_and_words_are_one_engine_calls(client, clips):
    """The server's answer is the engine's result for the same audio and options (every request is cut at pauses,
    `request_options`): the same text, the same pieces, the same timed words."""
    from transformers_fireredasr.engine import Engine
    from transformers_fireredasr.serving.transcriber import request_options

    engine = Engine.from_pretrained(str(DEMO), {"device": "cpu"})
    expected = engine.transcribe(str(clips.long_path), request_options(timestamps="word"))
    verbose = transcribe(
        client, clips.long_path, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    assert verbose.text == expected["text"]
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [
        (*piece["timestamp"], piece["text"]) for piece in expected["segments"]
    ]
    assert [(w.word, w.start, w.end, w.model_extra["confidence"]) for w in verbose.words] == [
        (word["text"], *word["timestamp"], word["confidence"]) for word in expected["chunks"]
    ]


def test_hotwords_fix_a_listed_phrase(client, asr):
    """The demo says 时人目飞快网产 for this clip of 时人目飞快望产; told 快望产 it gets it right, as the pipeline does."""
    clip = Path(__file__).resolve().parents[1] / "examples/audio/held_out_1.wav"
    plain = transcribe(client, clip).text
    assert plain == asr(str(clip), return_timestamps=True)["text"] and "快网产" in plain
    told = transcribe(client, clip, extra_body={"hotwords": ["快望产"]}).text
    assert told == asr(str(clip), return_timestamps=True, hotwords=["快望产"])["text"] and "快望产" in told
    # A field with several lines, a phrase with its own score, and repeated fields all parse the same way.
    response = httpx.post(
        f"{client.base_url}audio/transcriptions",
        data={"model": MODEL, "hotwords": ["天下\n快望产:2.5", "京海"]},
        files={"file": clip.read_bytes()},
        timeout=60,
    )
    assert response.status_code == 200 and response.json()["text"] == told


def test_srt_and_vtt_parse_and_match_the_segments(client, clips, expected_long):
    segments = [(chunk["timestamp"][0], chunk["timestamp"][1], chunk["text"]) for chunk in expected_long["chunks"]]
    srt = parse_srt(transcribe(client, clips.long_path, response_format="srt"))
    assert [number for number, *_ in srt] == [1, 2, 3, 4]
    assert [cue[3] for cue in srt] == [s[2] for s in segments]
    for (_, start, end, _), (want_start, want_end, _) in zip(srt, segments, strict=True):
        assert start == pytest.approx(want_start, abs=1e-3) and end == pytest.approx(want_end, abs=1e-3)
    vtt = parse_vtt(transcribe(client, clips.long_path, response_format="vtt"))
    assert [cue[2] for cue in vtt] == [s[2] for s in segments]
    for (start, end, _), (want_start, want_end, _) in zip(vtt, segments, strict=True):
        assert start == pytest.approx(want_start, abs=1e-3) and end == pytest.approx(want_end, abs=1e-3)


def test_stream_deltas_join_to_the_text(client, clips, expected_long):
    with open(clips.long_path, "rb") as file:
        events = list(client.audio.transcriptions.create(file=file, model=MODEL, stream=True))
    assert [event.type for event in events] == ["transcript.text.delta"] * 4 + ["transcript.text.done"]
    assert [event.delta for event in events[:-1]] == [chunk["text"] for chunk in expected_long["chunks"]]
    assert "".join(event.delta for event in events[:-1]) == events[-1].text == expected_long["text"]


def test_short_clip_stream_and_silence(client, server, clips, tmp_path):
    with open(clips.paths[0], "rb") as file:
        events = list(client.audio.transcriptions.create(file=file, model=MODEL, stream=True, response_format="text"))
    assert "".join(event.delta for event in events[:-1]) == events[-1].text == transcribe(client, clips.paths[0]).text
    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(RATE, dtype=np.float32))
    assert transcribe(client, silence).text == ""
    verbose = transcribe(client, silence, response_format="verbose_json")
    assert verbose.segments == [] and verbose.duration == 1.0
    assert transcribe(client, silence, response_format="srt") == ""


def test_models_and_health(client, server):
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "transformers-fireredasr"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("whisper-1")
    health = server.health()
    assert health["status"] == "ok" and health["model"] == MODEL and health["model_type"] == "fireredasr_aed"
    assert health["word_timestamps"] is True  # the demo has a CTC head


def test_32_concurrent_requests_equal_32_sequential(client, server, clips):
    paths = [clips.paths[i % len(clips.paths)] for i in range(32)]
    random.Random(0).shuffle(paths)
    sequential = [transcribe(client, path).text for path in paths]
    # Every clip gives its own text, so an answer crossed between requests would show.
    assert len({text for text in sequential}) == len(clips.paths) and all(sequential)
    before = server.health()
    with ThreadPoolExecutor(32) as pool:
        concurrent = list(pool.map(lambda path: transcribe(client, path).text, paths))
    after = server.health()
    assert concurrent == sequential
    batches = after["batches"] - before["batches"]
    assert batches < 32, "the concurrent requests never shared a generate call"
    assert after["admitted_requests"] == 0 and after["queued_segments"] == 0


def test_bad_audio_fails_alone(client, server, clips, tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(clips.paths[1].read_bytes()[:-20000])
    too_short = tmp_path / "short.wav"
    write_wav(too_short, np.full(160, 0.1, dtype=np.float32))  # 10 ms
    bad = {
        not_audio: "not readable as audio",
        empty: "the file is empty",
        truncated: "truncated wav",
        too_short: "shorter than one 25 ms frame",
    }
    good = clips.paths[:4]
    expected = {path: transcribe(client, path).text for path in good}
    jobs = [*good, *bad, *good]
    random.Random(1).shuffle(jobs)

    def outcome(path):
        try:
            return transcribe(client, path).text
        except openai.BadRequestError as error:
            return error

    with ThreadPoolExecutor(len(jobs)) as pool:
        outcomes = list(pool.map(outcome, jobs))
    for path, result in zip(jobs, outcomes, strict=True):
        if path in bad:
            assert isinstance(result, openai.BadRequestError), (path, result)
            message = result.body["message"]
            assert path.name in message and bad[path] in message and result.body["param"] == "file"
        else:
            assert result == expected[path]
    assert server.alive()


def engine_message(**values) -> str:
    """The engine's message for these option values."""
    from transformers_fireredasr.engine import OptionError, TranscribeOptions

    with pytest.raises(OptionError) as raised:
        TranscribeOptions(**values)
    return str(raised.value)


@pytest.mark.parametrize(
    ("fields", "param", "message"),
    [
        ({"keywords": "北京"}, "keywords", "pass the phrases as `hotwords`"),
        ({"hotwords": "北京:high"}, "hotwords", "hotwords:1: the score after ':' must be a number"),
        ({"hotwords": "Ωμέγα"}, "hotwords", "cannot be written with the model's vocabulary"),
        ({"hotword_score": "3"}, "hotword_score", "hotword_score was given without hotwords"),
        ({"hotwords": "北京", "hotword_score": "-1"}, "hotword_score", engine_message(hotwords=["北京"], hotword_score=-1.0)),
        # the engine's options, refused with the message every entry point gives (tests/test_engine.py)
        ({"num_beams": "0"}, "num_beams", engine_message(num_beams=0)),
        ({"merge_segments_seconds": "-1"}, "merge_segments_seconds", engine_message(merge_segments_seconds=-1.0)),
        ({"segmentation": "silero"}, "segmentation", engine_message(segmentation="silero")),
        ({"temperature": "0.5", "num_beams": "3"}, "num_beams", engine_message(temperature=0.5, num_beams=3)),
        ({"respons_format": "srt"}, "respons_format", "unknown field (accepted: file, model, response_format"),
        ({"prompt": "hello"}, "prompt", "no text prompt"),
        ({"response_format": "xml"}, "response_format", "'json', 'text', 'srt', 'vtt' or 'verbose_json'"),
        ({"language": "fr"}, "language", "'fr' is not supported"),
        ({"temperature": "1.5"}, "temperature", "less than or equal to 1"),
        ({"stream": "maybe"}, "stream", "boolean"),
        ({"response_format": "verbose_json", "timestamp_granularities[]": "word", "temperature": "0.5"}, "timestamp_granularities[]", "word timestamps need temperature 0"),
        ({"timestamp_granularities[]": "segment"}, "timestamp_granularities[]", "needs response_format=verbose_json"),
        ({"timestamp_granularities[]": "char"}, "timestamp_granularities[]", "'segment' or 'word'"),
        ({"stream": "true", "response_format": "srt"}, "stream", "cannot be streamed"),
    ],
)  # fmt: skip
def test_bad_options_are_400_naming_the_field(server, clips, fields, param, message):
    response = post(server, files={"file": clips.paths[0].read_bytes()}, model=MODEL, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and message in error["message"]
    if param in ("num_beams", "merge_segments_seconds", "segmentation", "hotword_score"):
        assert error["message"] == message  # exactly the engine's, as the CLI and archive runs print it


def test_missing_fields_and_wrong_model(server, client, clips):
    response = post(server, model=MODEL)
    assert response.status_code == 400 and response.json()["error"]["message"] == "file: this field is required"
    response = post(server, files={"file": clips.paths[0].read_bytes()})
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    with pytest.raises(openai.NotFoundError) as raised:
        with open(clips.paths[0], "rb") as file:
            client.audio.transcriptions.create(file=file, model="whisper-1")
    assert raised.value.body["code"] == "model_not_found" and MODEL in raised.value.body["message"]
    response = httpx.get(f"{server.url}/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.json()


def test_languages_and_temperature(client, clips):
    text = transcribe(client, clips.paths[2]).text
    assert transcribe(client, clips.paths[2], language="zh").text == text
    assert transcribe(client, clips.paths[2], language="en", response_format="verbose_json").language == "english"
    assert transcribe(client, clips.paths[2], temperature=0.0).text == text
    # Each segment's confidence: the model's own for its beam search, the mean probability of the sampled tokens.
    verbose = transcribe(client, clips.paths[2], temperature=0.5, response_format="verbose_json")
    confidence = verbose.segments[0].model_extra["confidence"]
    assert 0 < confidence <= 1 and verbose.segments[0].temperature == 0.5
    default = transcribe(client, clips.paths[2], response_format="verbose_json")
    assert 0 < default.segments[0].model_extra["confidence"] <= 1


def test_the_page_is_served(server):
    response = httpx.get(server.url)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<title>FireRedASR transcription</title>" in response.text and "/v1/audio/transcriptions" in response.text


def test_binds_to_loopback_by_default():
    from transformers_fireredasr.serving.cli import parse_args

    assert parse_args([]).host == "127.0.0.1"


def test_a_model_that_cannot_be_found_stops_the_server_with_a_clear_error(tmp_path, capsys):
    from transformers_fireredasr.serving.cli import main

    assert main(["--model", str(tmp_path / "no-such-model")]) == 2
    error = capsys.readouterr().err
    assert "no-such-model" in error and "Traceback" not in error
