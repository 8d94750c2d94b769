"""The engine is the one path from audio to results: the pipeline, the CLI and archive runs give what one engine call
gives on the same audio and options (the server and the Ray recipe are checked in their own files), and every entry
point refuses a bad option with the engine's one message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import pipeline

from tests.audio import HELD_OUT_CLIPS, join_with_pauses, write_wav
from transformers_fireredasr import cli, demo_model_dir
from transformers_fireredasr.audio_io import load_waveform
from transformers_fireredasr.batch.parts import latest_records
from transformers_fireredasr.batch.run import RunConfig, transcribe_run
from transformers_fireredasr.batch.sources import InputSpec
from transformers_fireredasr.engine import Engine, LoadOptions, OptionError, TranscribeOptions
from transformers_fireredasr.formats import segment_records, word_records
from transformers_fireredasr.segmentation import vad_available

DEMO = str(demo_model_dir())


@pytest.fixture(scope="module")
def engine():
    return Engine.from_pretrained(DEMO, {"device": "cpu"})


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> list[str]:
    """The two held-out clips, and both in a row with pauses between them (several segments)."""
    folder = tmp_path_factory.mktemp("engine")
    clips = [load_waveform(str(path)) for path in HELD_OUT_CLIPS]
    joined, _ = join_with_pauses([clips[0], clips[1], clips[0]], np.random.default_rng(0))
    write_wav(folder / "joined.wav", joined)
    for path in HELD_OUT_CLIPS:
        (folder / path.name).write_bytes(path.read_bytes())
    return sorted(str(path) for path in folder.glob("*.wav"))


def test_the_pipeline_is_the_engine(engine, recordings):
    asr = pipeline("automatic-speech-recognition", model=DEMO, device="cpu")
    for timestamps, argument in ((None, None), ("segment", True), ("word", "word"), ("char", "char")):
        expected = [engine.transcribe(path, timestamps=timestamps) for path in recordings]
        assert asr(recordings, return_timestamps=argument, batch_size=3) == expected
        assert all(result["text"] for result in expected)
    segments = [len(engine.prepare(path, TranscribeOptions(timestamps="segment")).segments) for path in recordings]
    assert segments[recordings.index(max(recordings, key=lambda p: "joined" in p))] == (3 if vad_available() else 1)


def test_the_cli_is_the_engine(engine, recordings, capsys):
    assert cli.main([*recordings, "--model", DEMO, "--device", "cpu", "--no-progress", "--batch-size", "2",
                     "--output-format", "jsonl", "--timestamps", "word"]) == 0  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["path"] for row in rows] == recordings
    for row, path in zip(rows, recordings, strict=True):
        result = engine.transcribe(path, timestamps="word")
        assert row["text"] == result["text"] and row["confidence"] == result["confidence"]
        assert row["chunks"] == json.loads(json.dumps(segment_records(result["segments"])))
        assert row["words"] == json.loads(json.dumps(word_records(result["chunks"])))
    assert cli.main([*recordings, "--model", DEMO, "--device", "cpu", "--no-progress"]) == 0
    texts = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert texts == [engine.transcribe(path)["text"] for path in recordings]


def test_an_archive_run_is_the_engine(engine, recordings, tmp_path):
    folder = str(Path(recordings[0]).parent)
    config = RunConfig(model=DEMO, device="cpu", timestamps="word", progress=False)
    counts = transcribe_run(InputSpec("files", folder), tmp_path / "run", config)
    assert counts["ok"] == len(recordings) and counts["failed"] == 0
    records = {record["audio_filepath"]: record for record in latest_records(tmp_path / "run").values()}
    for path in recordings:
        result = engine.transcribe(path, timestamps="word")
        record = records[path]
        assert record["text"] == result["text"] and record["confidence"] == result["confidence"]
        assert record["segments"] == json.loads(json.dumps(segment_records(result["segments"])))
        assert record["words"] == json.loads(json.dumps(word_records(result["chunks"])))


def test_many_inputs_pool_their_segments_and_one_bad_input_fails_alone(engine, recordings, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    inputs = [(path, path) for path in [recordings[0], str(empty), *recordings[1:]]]
    outcomes = {o.key: o for o in engine.transcribe_many(inputs, TranscribeOptions(), batch_size=2, pool_inputs=2)}
    assert outcomes[str(empty)].result is None and str(empty) in outcomes[str(empty)].error
    for path in recordings:
        assert outcomes[path].error is None and outcomes[path].result == engine.transcribe(path)


def test_a_failed_batch_is_retried_segment_by_segment(engine, recordings, monkeypatch):
    options = TranscribeOptions(timestamps="segment")
    segments = [segment for path in recordings for segment in engine.prepare(path, options).segments]
    alone = [engine.decode([segment], options)[0] for segment in segments]
    real = engine.decode
    poisoned = segments[1]

    def decode(batch, options, progress=None):
        if any(segment is poisoned for segment in batch):
            raise RuntimeError("this segment breaks its batch")
        return real(batch, options, progress)

    monkeypatch.setattr(engine, "decode", decode)
    outcomes = engine.decode_each(segments, options)
    assert isinstance(outcomes[1], RuntimeError)
    assert [o.text for i, o in enumerate(outcomes) if i != 1] == [a.text for i, a in enumerate(alone) if i != 1]


def test_unknown_option_names_are_refused_with_the_closest():
    with pytest.raises(OptionError, match=r"unknown option 'num_beam' \(did you mean 'num_beams'\?\)"):
        TranscribeOptions.from_mapping({"num_beam": 2})
    with pytest.raises(OptionError, match=r"unknown load option 'dtyp' \(did you mean 'dtype'\?\)"):
        LoadOptions.from_mapping({"dtyp": "float32"})
    with pytest.raises(OptionError, match=r"unknown run option 'merge_segment_seconds' \(did you mean"):
        RunConfig.from_mapping({"model": DEMO, "merge_segment_seconds": 10})
    with pytest.raises(OptionError, match=r"unknown option 'timestamp' \(did you mean 'timestamps'\?\)"):
        Engine.transcribe(None, "a.wav", timestamp="word")  # a typo in a keyword argument is an error too


BAD_OPTIONS = [
    # (engine option values, CLI flags)
    ({"num_beams": 0}, ["--num-beams", "0"]),
    ({"hotword_score": 3.0}, ["--hotword-score", "3"]),
    ({"merge_segments_seconds": -1.0}, ["--merge-segments-seconds", "-1"]),
    ({"segmentation": "silero"}, ["--segmentation", "silero"]),
    ({"timestamps": "words"}, ["--timestamps", "words", "--output-format", "jsonl"]),
    ({"temperature": 0.5, "num_beams": 3}, ["--temperature", "0.5", "--num-beams", "3"]),
]
BAD_LOAD_OPTIONS = [
    ({"dtype": "float8"}, ["--dtype", "float8"]),
    ({"quantize": "int4"}, ["--quantize", "int4"]),
    ({"quantize": "int8-weight", "device": "cuda"}, ["--quantize", "int8-weight", "--device", "cuda"]),
    ({"skip_music": True}, ["--skip-music"]),
]


@pytest.mark.parametrize(("values", "flags"), BAD_OPTIONS + BAD_LOAD_OPTIONS)
def test_a_bad_option_gets_one_message_on_every_entry_point(values, flags, capsys):
    kind = LoadOptions if (values, flags) in BAD_LOAD_OPTIONS else TranscribeOptions
    with pytest.raises(OptionError) as raised:
        kind(**values)
    message = str(raised.value)
    # the CLI, for files and for an archive run
    run_flags = [flag for i, flag in enumerate(flags) if "--output-format" not in flags[max(i - 1, 0) : i + 1]]
    for argv in (["a.wav", *flags], [*run_flags, "--files", "clips/", "--output-dir", "run"]):
        with pytest.raises(SystemExit) as exited:
            cli.parse_args(argv)
        assert exited.value.code == 2 and message in capsys.readouterr().err
    # an archive run's (or the Ray recipe's) settings
    with pytest.raises(OptionError) as raised:
        RunConfig.from_mapping({"model": DEMO, **values})
    assert str(raised.value) == message
    # the pipeline, for the options it takes under the engine's names
    if kind is TranscribeOptions and set(values) <= {"hotword_score", "segmentation"}:
        asr = pipeline("automatic-speech-recognition", model=DEMO, device="cpu")
        with pytest.raises(OptionError) as raised:
            asr(str(HELD_OUT_CLIPS[0]), **values)
        assert str(raised.value) == message
