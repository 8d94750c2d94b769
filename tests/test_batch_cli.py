"""`fireredasr-transcribe` run options: mixtures and typos are errors that name the problem."""

from __future__ import annotations

import pytest

from transformers_fireredasr import cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--manifest", "m.jsonl"], "--manifest needs --output-dir RUN_DIR"),
        (["--manifest", "m.jsonl", "--files", "x", "--output-dir", "r"], "give one input: --manifest and --files"),
        (["a.wav", "--manifest", "m.jsonl", "--output-dir", "r"], "audio files and a run input"),
        (["--merge", "r", "--manifest", "m.jsonl"], "--merge RUN_DIR takes no input"),
        (["--manifest", "m", "--output-dir", "r", "--output-format", "srt"], "--output-format is for audio files"),
        (["a.wav", "--shard", "0/2"], "--shard goes with a run"),
        (["a.wav", "--subtitles", "srt"], "--subtitles goes with --merge"),
        (["--manifest", "m", "--output-dir", "r", "--split", "test"], "--split goes with --dataset"),
        (["--manifest", "m", "--output-dir", "r", "--batch-seconds", "0"], "--batch-seconds must be a positive"),
        (["--merge", "r", "--subtitles", "ass"], "invalid choice: 'ass'"),
        (["--manifest", "m", "--output-dir", "r", "--shardd", "0/2"], "unrecognized arguments: --shardd"),
        ([], "give audio files, a run input"),
    ],
)
def test_bad_run_options_are_named(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_run_inputs_exit_2_with_the_reason(tmp_path, capsys):
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "a.wav"}\n{"id": 1}\n')
    code = cli.main(["--manifest", str(tmp_path / "m.jsonl"), "--output-dir", str(tmp_path / "r"), "--no-progress"])
    assert code == 2 and "m.jsonl:2: needs 'audio_filepath'" in capsys.readouterr().err
    assert cli.main(["--merge", str(tmp_path / "nowhere")]) == 2
    assert "no items.jsonl; is this a run folder" in capsys.readouterr().err
    code = cli.main(["--manifest", str(tmp_path / "m.jsonl"), "--output-dir", "r", "--shard", "2/2", "--no-progress"])
    assert code == 2 and "--shard 2/2: the rank I must be in 0..N-1" in capsys.readouterr().err
