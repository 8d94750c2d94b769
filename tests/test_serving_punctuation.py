"""`fireredasr-serve --punctuation MODEL`: every response format carries the punctuated text, verbose_json the timed
sentences, srt/vtt cues end at sentence ends, and a stream's `done` event the punctuated text; all equal the engine's
own punctuated result for the same audio and options."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.serving_helpers import parse_srt, parse_vtt
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.engine import Engine
from transformers_fireredasr.segmentation import vad_available
from transformers_fireredasr.serving.transcriber import request_options

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

MODEL = "fireredasr-demo"
pytestmark = [pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    from tests.serving_helpers import make_clips

    return make_clips(tmp_path_factory.mktemp("serving_punc"), count=4)


@pytest.fixture(scope="module")
def server(marking_punc_dir):
    with ServerProcess(["--punctuation", str(marking_punc_dir), "--no-access-log"]) as process:
        yield process


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def engine(marking_punc_dir):
    return Engine.from_pretrained(str(demo_model_dir()), {"device": "cpu", "punctuation": str(marking_punc_dir)})


def transcribe(client, path, **options):
    with open(path, "rb") as file:
        return client.audio.transcriptions.create(file=file, model=MODEL, **options)


def without_marks(text: str) -> str:
    return "".join(char for char in text if char not in "，。？！,.?! ")


def test_every_format_carries_the_engines_punctuated_text_and_sentences(client, engine, clips):
    expected = engine.transcribe(str(clips.long_path), request_options())
    assert expected["sentences"] and expected["sentence_timing"] == "segments"
    assert transcribe(client, clips.long_path).text == expected["text"]
    assert transcribe(client, clips.long_path, response_format="text").strip() == expected["text"]
    verbose = transcribe(client, clips.long_path, response_format="verbose_json").model_dump()
    assert verbose["text"] == expected["text"] and verbose["sentence_timing"] == "segments"
    assert [(s["text"], s["start"], s["end"]) for s in verbose["sentences"]] == [
        (s["text"], round(s["start"], 3), round(s["end"], 3)) for s in expected["sentences"]
    ]
    assert [s["id"] for s in verbose["sentences"]] == list(range(len(expected["sentences"])))
    # The segments keep the text as the model decoded it: the same letters as the punctuated text, no marks added.
    decoded = "".join(segment["text"] for segment in verbose["segments"])
    assert without_marks(decoded) == without_marks(expected["text"]) and decoded != expected["text"]


def test_word_timestamps_time_the_sentences_by_their_words(client, engine, clips):
    expected = engine.transcribe(str(clips.long_path), request_options(timestamps="word"))
    verbose = transcribe(
        client, clips.long_path, response_format="verbose_json", timestamp_granularities=["word"]
    ).model_dump()
    assert verbose["sentence_timing"] == "words" and verbose["text"] == expected["text"]
    assert [(s["start"], s["end"]) for s in verbose["sentences"]] == [
        (round(s["start"], 3), round(s["end"], 3)) for s in expected["sentences"]
    ]
    assert verbose["sentences"][0]["start"] == verbose["words"][0]["start"]


def test_srt_and_vtt_cues_end_at_sentence_ends(client, engine, clips):
    expected = engine.transcribe(str(clips.long_path), request_options())
    srt = parse_srt(transcribe(client, clips.long_path, response_format="srt"))
    vtt = parse_vtt(transcribe(client, clips.long_path, response_format="vtt"))
    assert [(start, end, text) for _, start, end, text in srt] == vtt
    ends = {round(cue_end, 3) for _, _, cue_end, _ in srt}
    assert all(round(sentence["end"], 3) in ends for sentence in expected["sentences"])
    assert "".join(text for *_, text in srt).replace(" ", "") == expected["text"].replace(" ", "")


def test_a_stream_sends_the_decoded_text_then_the_punctuated_text(server, engine, clips):
    expected = engine.transcribe(str(clips.long_path), request_options())
    with open(clips.long_path, "rb") as file:
        response = httpx.post(
            f"{server.base_url}/audio/transcriptions",
            data={"model": MODEL, "stream": "true"},
            files={"file": file},
            timeout=120,
        )
    events = [json.loads(line[len("data: ") :]) for line in response.text.splitlines() if line.startswith("data: ")]
    deltas = "".join(event["delta"] for event in events if event["type"] == "transcript.text.delta")
    assert events[-1] == {"type": "transcript.text.done", "text": expected["text"]}
    assert without_marks(deltas) == without_marks(expected["text"]) and deltas != expected["text"]


def test_a_punctuation_model_that_cannot_be_found_stops_the_server_with_a_clear_error(tmp_path, capsys):
    from transformers_fireredasr.serving.cli import main

    assert main(["--punctuation", str(tmp_path / "no-such-punctuation")]) == 2
    error = capsys.readouterr().err
    assert "no-such-punctuation" in error and "Traceback" not in error
