"""`--lid-model MODEL` on every entry point that writes results: `fireredasr-transcribe`'s jsonl (and the vtt cues'
language spans and the TextGrid's language tier it writes from the same result), archive runs' records, and
`fireredasr-serve`'s verbose_json, vtt and stream, each equal to the engine's own tagged result for the same audio and
options."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout

import numpy as np
import pytest

from tests.audio import join_with_pauses, write_wav
from transformers_fireredasr import cli, demo_model_dir
from transformers_fireredasr.engine import Engine, TranscribeOptions
from transformers_fireredasr.formats import language_tag
from transformers_fireredasr.segmentation import vad_available

DEMO = str(demo_model_dir())
FORMATS = ("verbose_json", "vtt", "text")  # text: the stream
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
    # vtt cues and the TextGrid, as the command writes them from the same result
    options = cli.parse_args([str(recordings[0]), "--output-format", "vtt"])
    cues = cli.subtitle_cues(expected, options)
    assert [cue["language"] for cue in cues] == [chunk["language"] for chunk in expected["chunks"]]
    spans = [f"<lang {language_tag(chunk['language'])}>" for chunk in expected["chunks"]]
    vtt = cli.to_vtt(cues)
    assert [line[: len(span)] for line, span in zip(vtt.splitlines()[3::3], spans, strict=True)] == spans
    tiers = cli.textgrid_tiers(expected)
    assert list(tiers) == ["segments", "language"]
    assert [(c["text"], c["timestamp"]) for c in tiers["language"]] == [
        (c["language"], c["timestamp"]) for c in expected["chunks"]
    ]
    assert "language" not in cli.textgrid_tiers({"text": "", "chunks": expected["chunks"]})


def test_an_archive_run_records_the_languages(engine, converted_lid_dir, recordings, tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(recordings[1])}) + "\n")
    run_dir = tmp_path / "run"
    lid = ["--lid-model", str(converted_lid_dir)]
    assert cli.main(["--manifest", str(manifest), "--output-dir", str(run_dir), *lid, *QUIET]) == 0
    assert cli.main(["--merge", str(run_dir), "--subtitles", "vtt"]) == 0
    rows = [json.loads(line) for line in (run_dir / "transcripts.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    (vtt,) = (run_dir / "subtitles").glob("*.vtt")
    assert f"<lang {language_tag(rows[0]['language'])}>" in vtt.read_text()
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
        data = recordings[1].read_bytes()

        def ask(response_format: str):
            answer = client.audio.transcriptions.create(
                file=("recording.wav", data), model="fireredasr-demo", response_format=response_format,
                stream=response_format == "text",
            )  # fmt: skip
            return list(answer) if response_format == "text" else answer

        with ThreadPoolExecutor(3) as pool:  # at once, so that the server decodes their segments in shared batches
            answers = dict(zip(FORMATS, pool.map(ask, FORMATS), strict=True))
    verbose, events = answers["verbose_json"].model_dump(), answers["text"]
    cues = [line for line in answers["vtt"].splitlines() if line.startswith("<lang ")]
    assert cues == [f"<lang {language_tag(c['language'])}>{c['text']}</lang>" for c in expected["chunks"]]
    assert [event.type for event in events][-1] == "transcript.text.done"
    done = events[-1].model_dump()
    assert (done["language"], done["language_confidence"]) == (expected["language"], expected["language_confidence"])
    assert all("language" not in event.model_dump() for event in events[:-1])  # deltas carry text, not segments
    assert verbose["language"] == expected["language"]
    assert verbose["language_confidence"] == expected["language_confidence"]
    assert languages_of(verbose["segments"]) == languages_of(expected["chunks"])
    assert verbose["text"] == expected["text"]
