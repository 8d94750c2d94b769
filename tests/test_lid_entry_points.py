"""`--lid-model MODEL` on every entry point that writes results: `fireredasr-transcribe`'s jsonl, archive runs'
records, and `fireredasr-serve`'s verbose_json, each equal to the engine's own
tagged result for the same audio and options."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest

from tests.audio import join_with_pauses, write_wav
from transformers_fireredasr import cli, demo_model_dir
from transformers_fireredasr.engine import Engine, TranscribeOptions
from transformers_fireredasr.segmentation import vad_available

DEMO = str(demo_model_dir())
QUIET = ["--no-progress"]
pytestmark = [pytest.mark.skipif(not vad_available(), reason="long audio is segmented with silero-vad")]


@pytest.fixture(scope="module")
def recordings(speech, tmp_path_factory):
    """Two recordings of sentences with pauses between them, as wav files."""
    folder = tmp_path_factory.mktemp("lid_entry")
    spoken = [u.audio for u in speech if u.text]
    paths = []
    for number, chosen in enumerate((spoken[::4], spoken[1::5])):
        audio, _ = join_with_pauses(chosen, np.random.default_rng(number))
        paths.append(folder / f"recording_{number}.wav")
        write_wav(paths[-1], audio)
    return paths


@pytest.fixture(scope="module")
def engine(converted_lid_dir):
    return Engine.from_pretrained(DEMO, {"device": "cpu", "lid_model": str(converted_lid_dir)})


def languages_of(chunks: list[dict]) -> list[tuple]:
    return [(c["language"], c["language_confidence"]) for c in chunks]


def test_jsonl_rows_carry_the_languages(engine, converted_lid_dir, recordings):
    out = io.StringIO()
    with redirect_stdout(out):
        argv = [str(recordings[0]), "--output-format", "jsonl", "--lid-model", str(converted_lid_dir), *QUIET]
        assert cli.main([*argv, "--device", "cpu"]) == 0
    row = json.loads(out.getvalue())
    expected = engine.transcribe(str(recordings[0]), TranscribeOptions(timestamps="segment"))
    assert (row["language"], row["language_confidence"]) == (expected["language"], expected["language_confidence"])
    assert languages_of(row["chunks"]) == languages_of(expected["chunks"]) and len(row["chunks"]) >= 3


def test_an_archive_run_records_the_languages(engine, converted_lid_dir, recordings, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(recordings[1])}) + "\n")
    run_dir = tmp_path / "run"
    lid = ["--lid-model", str(converted_lid_dir)]
    assert cli.main(["--manifest", str(manifest), "--output-dir", str(run_dir), *lid, *QUIET]) == 0
    assert cli.main(["--merge", str(run_dir)]) == 0
    rows = [json.loads(line) for line in (run_dir / "transcripts.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    for row in rows:
        expected = engine.transcribe(row["audio_filepath"], TranscribeOptions())
        assert (row["language"], row["language_confidence"]) == (expected["language"], expected["language_confidence"])
        # Records keep the decoded pieces: short files are decoded whole, as one piece of the whole's language.
        assert languages_of(row["segments"]) == [(expected["language"], expected["language_confidence"])]


def test_the_server_answers_verbose_json_with_the_languages(engine, converted_lid_dir, recordings):
    openai = pytest.importorskip("openai")
    pytest.importorskip("fastapi")
    from transformers_fireredasr.serving.launch import ServerProcess
    from transformers_fireredasr.serving.transcriber import request_options

    expected = engine.transcribe(str(recordings[1]), request_options())
    with ServerProcess(["--lid-model", str(converted_lid_dir), "--no-access-log"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=120)
        with open(recordings[1], "rb") as file:
            verbose = client.audio.transcriptions.create(
                file=file, model="fireredasr-demo", response_format="verbose_json"
            ).model_dump()
    assert verbose["language"] == expected["language"]
    assert verbose["language_confidence"] == expected["language_confidence"]
    assert languages_of(verbose["segments"]) == languages_of(expected["chunks"])
    assert verbose["text"] == expected["text"]
