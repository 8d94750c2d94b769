"""`fireredasr-serve` with a FireRedASR-LLM model (the converted test fixture: the trained encoder, a tiny random
Qwen2 with the real Qwen2 tokenizer): the same texts as the pipeline, streamed or not, batched or not."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from transformers import pipeline

from transformers_fireredasr.segmentation import vad_available

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

MODEL = "fireredasr-llm-test"
pytestmark = pytest.mark.skipif(not vad_available(), reason="the server segments with silero-vad (the vad extra)")


def test_an_llm_model_is_served_like_the_pipeline(converted_llm_dir, speech):
    clips = [utterance.path for utterance in speech[:8:2]]
    asr = pipeline("automatic-speech-recognition", model=str(converted_llm_dir))
    # The pipeline keeps a lone segment's text as decoded (Qwen's tokens may start with a space); the server strips
    # every segment's text, as the pipeline does when it joins several.
    expected = [asr(str(path), return_timestamps=True)["text"].strip() for path in clips]
    assert all(expected) and len(set(expected)) == len(expected)
    args = ["--model", str(converted_llm_dir), "--served-model-name", MODEL, "--max-wait-ms", "50"]
    with ServerProcess(args) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)

        def transcribe(path, **options):
            with open(path, "rb") as file:
                return client.audio.transcriptions.create(file=file, model=MODEL, **options)

        assert server.health()["model_type"] == "fireredasr_llm"
        assert [transcribe(path).text for path in clips] == expected
        with ThreadPoolExecutor(len(clips)) as pool:
            assert list(pool.map(lambda path: transcribe(path).text, clips)) == expected
        events = list(transcribe(clips[0], stream=True))
        assert events[-1].type == "transcript.text.done" and events[-1].text == expected[0]
        assert "".join(event.delta for event in events[:-1]) == expected[0]
        verbose = transcribe(clips[1], response_format="verbose_json")
        assert verbose.text == expected[1] and verbose.segments and verbose.segments[0].start >= 0
        # No CTC head, so no word timings: a 400 naming the field, and /health says so for the page.
        assert server.health()["word_timestamps"] is False
        with pytest.raises(openai.BadRequestError) as refused:
            transcribe(clips[1], response_format="verbose_json", timestamp_granularities=["word"])
        assert refused.value.body["param"] == "timestamp_granularities[]"
        assert "has no CTC head" in refused.value.body["message"]
        # Hotwords are matched on the decoded text, as the pipeline matches them (mechanism: a random Qwen2).
        phrase = expected[2][:2]
        hinted = asr(str(clips[2]), return_timestamps=True, hotwords=[phrase])["text"].strip()
        assert transcribe(clips[2], extra_body={"hotwords": [phrase]}).text == hinted


def test_the_server_cuts_where_the_config_says(converted_llm_dir, speech, tmp_path):
    """FireRedASR2-LLM's config says 40 s (`max_segment_seconds`), and the server cuts there, as the engine does for
    every entry point (it once took 30 s from a table of model types). 32 s of audio in fixed-size chunks: one piece
    at 40 s, two at 30 s; the server's text and piece are one engine call's."""
    import json
    import shutil

    import numpy as np

    from tests.audio import write_wav
    from transformers_fireredasr.engine import Engine
    from transformers_fireredasr.serving.transcriber import request_options

    folder = tmp_path / "llm-40s"
    shutil.copytree(converted_llm_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_segment_seconds": 40.0}))
    recording = np.concatenate([u.audio for u in speech] * 4)[: 32 * 16000]
    path = tmp_path / "32s.wav"
    write_wav(path, recording)

    engine = Engine.from_pretrained(str(folder), {"device": "cpu"})
    options = request_options(segmentation="fixed")
    assert engine.max_segment_seconds == 40.0 and len(engine.prepare(str(path), options).segments) == 1
    assert len(engine.prepare(str(path), request_options(segmentation="fixed", max_segment_seconds=30)).segments) == 2
    expected = engine.transcribe(str(path), options)
    with ServerProcess(["--model", str(folder), "--served-model-name", MODEL]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)
        with open(path, "rb") as file:
            verbose = client.audio.transcriptions.create(
                file=file, model=MODEL, response_format="verbose_json", extra_body={"segmentation": "fixed"}
            )
    assert verbose.text == expected["text"].strip()  # a lone piece keeps Qwen's leading space in the pipeline's text
    assert [(s.start, s.end) for s in verbose.segments] == [tuple(c["timestamp"]) for c in expected["chunks"]]
