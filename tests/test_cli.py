"""The `fireredasr-transcribe` command: formats, resampling, bad files that do not stop the good ones."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio import read_wav
from transformers_fireredasr import cli


@pytest.fixture(scope="module")
def files(speech, tmp_path_factory):
    """Two good wavs, the second also as 44.1 kHz stereo flac, a text file, an empty file, a missing path."""
    folder = tmp_path_factory.mktemp("cli")
    stereo = folder / "stereo_44k.flac"
    subprocess.run(["sox", str(speech[2].path), "-r", "44100", "-c", "2", str(stereo)], check=True)
    not_audio = folder / "notes.wav"
    not_audio.write_text("this is not audio")
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    return {
        "good": [str(speech[0].path), str(speech[2].path)],
        "stereo": str(stereo),
        "bad": [str(not_audio), str(empty), str(folder / "missing.wav")],
        "texts": [speech[0].text, speech[2].text],
    }


def test_transcribes_a_file(converted_aed_dir, files, capsys):
    assert cli.main([files["good"][0], "--model", str(converted_aed_dir)]) == 0
    assert capsys.readouterr().out.strip() == files["texts"][0]


def test_any_rate_and_channels(converted_aed_dir, files, capsys):
    paths = [*files["good"], files["stereo"]]
    assert cli.main([*paths, "--model", str(converted_aed_dir), "--batch-size", "2", "--no-progress"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows == [[p, t] for p, t in zip(paths, [*files["texts"], files["texts"][1]], strict=True)]


def test_jsonl_has_timestamped_chunks(converted_aed_dir, files, capsys):
    paths = [*files["good"], files["stereo"]]
    code = cli.main([*paths, "--model", str(converted_aed_dir), "--output-format", "jsonl", "--batch-size", "2"])
    assert code == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["path"] for row in rows] == paths
    for row in rows:
        assert row["chunks"] and row["text"] == "".join(chunk["text"] for chunk in row["chunks"])
        assert all(0 <= chunk["start"] < chunk["end"] <= 5.0 for chunk in row["chunks"])


def test_srt_file(converted_aed_dir, files, tmp_path, capsys):
    code = cli.main(
        [files["good"][0], "--model", str(converted_aed_dir), "--output-format", "srt", "--output-dir", str(tmp_path)]
    )
    assert code == 0
    srt = (tmp_path / (Path(files["good"][0]).stem + ".srt")).read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,") and " --> 00:00:0" in srt
    assert capsys.readouterr().out.strip() == str(tmp_path / (Path(files["good"][0]).stem + ".srt"))
    assert cli.srt_timestamp(3725.5) == "01:02:05,500"


def test_bad_files_are_reported_and_the_rest_transcribed(converted_aed_dir, files, capsys):
    paths = [files["bad"][0], files["good"][0], files["bad"][1], files["good"][1], files["bad"][2]]
    assert cli.main([*paths, "--model", str(converted_aed_dir), "--num-beams", "1"]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{p}\t{t}" for p, t in zip(files["good"], files["texts"], strict=True)]
    for bad in files["bad"]:
        assert bad in captured.err
    assert "empty" in captured.err and "no such file" in captured.err and "not readable as audio" in captured.err


def test_without_a_model(monkeypatch, files, capsys):
    from transformers_fireredasr import demo_model

    monkeypatch.setattr(demo_model, "__file__", str(files["good"][0]))  # a package folder without demo/
    assert cli.main(files["good"][:1]) == 2
    err = capsys.readouterr().err
    assert "ships no demo model" in err and "--model" in err


def test_no_progress_silences_every_bar(converted_aed_dir, files, capsys):
    assert cli.main([files["good"][0], "--model", str(converted_aed_dir), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "Loading weights" not in err and "transcribing" not in err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "transformers_fireredasr.cli", "--help"], capture_output=True)
    assert result.returncode == 0 and b"--output-format" in result.stdout


def test_progress_bar_counts_seconds_of_audio_on_a_terminal(converted_aed_dir, files, monkeypatch, capsys):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # tqdm draws only on a terminal
    assert cli.main(files["good"][:2] + ["--model", str(converted_aed_dir), "--num-beams", "1"]) == 0
    err = capsys.readouterr().err
    total = sum(len(read_wav(path)) for path in files["good"][:2]) / 16000
    bars = re.findall(r"transcribing: +100%\|[^|]*\| ([0-9.]+)/([0-9.]+)", err)
    assert bars, err[-2000:]
    done, whole = map(float, bars[-1])
    assert done == pytest.approx(total, abs=0.05) and whole == pytest.approx(total, abs=0.05)


@pytest.mark.parametrize("with_manifest", [False, True], ids=["files", "archive run"])
def test_a_model_that_cannot_be_found_is_a_clear_error(files, tmp_path, capsys, with_manifest):
    """A missing folder names itself and exits 2 (bad input), with no traceback, for files and archive runs alike."""
    missing = tmp_path / "no-such-model"
    if with_manifest:
        manifest = tmp_path / "items.jsonl"
        manifest.write_text(json.dumps({"audio_filepath": files["good"][0]}) + "\n")
        argv = ["--manifest", str(manifest), "--output-dir", str(tmp_path / "run")]
    else:
        argv = [files["good"][0]]
    assert cli.main([*argv, "--model", str(missing), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "no-such-model" in error and "Traceback" not in error


def test_punctuation_gives_sentences_that_end_the_subtitle_cues(
    converted_aed_dir, converted_punc_dir, files, tmp_path
):
    """`--punctuation MODEL`: jsonl rows carry timed sentences, their text is the transcript with marks, and every
    sentence end closes an srt cue. The tiny punctuation model marks at random, which is all this needs."""
    import io
    from contextlib import redirect_stdout

    def run(*extra: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli.main([files["good"][0], "--model", str(converted_aed_dir), "--no-progress", *extra])
        assert code == 0
        return out.getvalue()

    plain = json.loads(run("--output-format", "jsonl"))
    row = json.loads(run("--output-format", "jsonl", "--punctuation", str(converted_punc_dir)))
    assert row["sentences"] and row["sentence_timing"] == "segments"  # this model has no CTC head
    assert re.sub(r"[，。？！,.?!\s]", "", row["text"]) == re.sub(r"\s", "", plain["text"])
    assert "".join(sentence["text"] for sentence in row["sentences"]) == row["text"]
    run("--output-format", "srt", "--output-dir", str(tmp_path), "--punctuation", str(converted_punc_dir))
    cue_ends = re.findall(
        r"--> (\d\d:\d\d:\d\d,\d\d\d)", (tmp_path / Path(files["good"][0]).with_suffix(".srt").name).read_text()
    )
    for sentence in row["sentences"]:
        assert cli.srt_timestamp(sentence["end"]) in cue_ends


def test_both_commands_take_the_punctuation_model_as_a_load_flag():
    from transformers_fireredasr.serving.cli import parse_args as serve_args

    assert cli.parse_args(["a.wav", "--punctuation", "punc"]).load.punctuation == "punc"
    assert serve_args(["--punctuation", "punc"]).load.punctuation == "punc"
    assert cli.parse_args(["a.wav"]).load.punctuation is None
    # The flag alone names the punctuation model bundled in the package.
    from transformers_fireredasr import demo_punctuation_dir

    bundled = str(demo_punctuation_dir())
    assert cli.parse_args(["a.wav", "--punctuation"]).load.punctuation == bundled
    assert serve_args(["--punctuation"]).load.punctuation == bundled
