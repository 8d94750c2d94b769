"""Archive runs end to end with the bundled demo: one process equals the CLI, shards and torchrun ranks merge to the
same transcripts, a killed rank resumes under another world size, a bad file fails alone and is retried, and changed
settings are refused without --force."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.serving_helpers import make_clips, parse_srt
from transformers_fireredasr import cli

COMMAND = [sys.executable, "-m", "transformers_fireredasr.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
QUIET = ["--no-progress"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Eight clips and a recording with pauses (manifest with reference texts), their CLI transcripts, and a
    corrupt file listed among them."""
    folder = tmp_path_factory.mktemp("archive")
    clips = make_clips(folder)
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    paths = [*clips.paths, clips.long_path]
    rows = [{"audio_filepath": str(p), "text": t} for p, t in zip(clips.paths, clips.sentences, strict=True)]
    rows += [{"audio_filepath": str(clips.long_path)}, {"audio_filepath": str(corrupt), "id": "corrupt"}]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return {"folder": folder, "clips": clips, "paths": paths, "manifest": manifest, "corrupt": corrupt}


def cli_texts(paths, capsys, *options) -> dict[str, str]:
    """Today's `fireredasr-transcribe FILE...` output, per path."""
    capsys.readouterr()
    cli.main([*map(str, paths), *QUIET, *options])
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split("\t", 1) for line in lines) if len(paths) > 1 else {str(paths[0]): lines[0]}


def transcripts(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "transcripts.jsonl").read_text().splitlines()]


def comparable(rows: list[dict]) -> list[tuple]:
    return [(r["id"], r["status"], r.get("text"), json.dumps(r.get("segments"))) for r in rows]


def part_records(run_dir: Path) -> list[dict]:
    records = []
    for path in sorted((run_dir / "parts").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return records


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    """One uninterrupted in-process run of the manifest, merged."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    assert cli.main(["--manifest", str(corpus["manifest"]), "--output-dir", str(run_dir), *QUIET]) == 1  # corrupt
    assert cli.main(["--merge", str(run_dir)]) == 1
    return run_dir


def test_one_process_run_equals_the_cli_and_a_bad_file_fails_alone(corpus, reference, capsys, tmp_path):
    expected = cli_texts(corpus["paths"], capsys)
    rows = {row["id"]: row for row in transcripts(reference)}
    assert [row["id"] for row in transcripts(reference)] == [*map(str, corpus["paths"]), "corrupt"]  # manifest order
    assert {key: rows[key]["text"] for key in expected} == expected
    assert rows["corrupt"]["status"] == "failed" and "corrupt.wav" in rows["corrupt"]["error"]
    assert rows[str(corpus["clips"].long_path)]["segments"][0]["start"] == 0.0
    summary = json.loads((reference / "summary.json").read_text())
    assert (summary["files"], summary["ok"], summary["failed"], summary["missing"]) == (10, 9, 1, 0)
    assert 0 <= summary["cer"] < 0.5 and summary["cer_files"] == 8
    assert summary["audio_hours"] * 3600 == pytest.approx(sum(r["duration"] for r in rows.values()), abs=0.1)

    # The bad file is retried on the next run (and succeeds once fixed); nothing else is redone.
    run_dir = tmp_path / "retry"
    shutil.copytree(reference, run_dir)
    assert cli.main(["--merge", str(run_dir), "--subtitles", "srt", "vtt"]) == 1
    srt = parse_srt((run_dir / "subtitles" / f"{corpus['clips'].long_path.stem}.srt").read_text())
    assert srt and all(0 <= start < end <= corpus["clips"].long_seconds + 0.01 for _, start, end, _ in srt)
    assert len(list((run_dir / "subtitles").glob("*.vtt"))) == 9
    backup = corpus["corrupt"].read_bytes()
    try:
        shutil.copy(corpus["clips"].paths[0], corpus["corrupt"])
        manifest = str(corpus["manifest"])
        capsys.readouterr()
        assert cli.main(["--manifest", manifest, "--output-dir", str(run_dir), *QUIET]) == 0
        assert "10 files in this share: 9 already done, 1 transcribed, 0 failed" in capsys.readouterr().err
    finally:
        corpus["corrupt"].write_bytes(backup)
    assert cli.main(["--merge", str(run_dir)]) == 0
    assert {r["id"]: r["text"] for r in transcripts(run_dir)}["corrupt"] == expected[str(corpus["paths"][0])]


def test_a_settings_change_is_refused_without_force(corpus, reference, capsys, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    capsys.readouterr()
    code = cli.main(["--manifest", str(corpus["manifest"]), "--output-dir", str(run_dir), "--num-beams", "1", *QUIET])
    assert code == 2
    assert "was started with other settings (decoding:" in capsys.readouterr().err
    run = json.loads((run_dir / "run.json").read_text())
    assert run["decoding"]["num_beams"] is None and run["revision"].startswith("sha256:")
    assert run["package_version"] and run["model"].endswith("demo")


def test_pooled_segments_equal_the_cli_when_audio_is_segmented(corpus, capsys, tmp_path):
    """With a 4 s limit the recording is cut at its pauses: the pooled path must join the same segment texts."""
    paths = [corpus["clips"].long_path, *corpus["clips"].paths[:2]]
    expected = cli_texts(paths, capsys, "--max-segment-seconds", "4")
    run_dir = tmp_path / "run"
    options = ["--max-segment-seconds", "4", "--batch-seconds", "8", "--num-workers", "2", *QUIET]
    assert cli.main(["--files", str(corpus["folder"] / "*_*.wav"), "--output-dir", str(run_dir), *options]) in (0, 1)
    cli.main(["--merge", str(run_dir)])
    rows = {row["id"]: row for row in transcripts(run_dir)}
    assert {key: rows[key]["text"] for key in expected} == expected
    assert len(rows[str(corpus["clips"].long_path)]["segments"]) >= 2


def run(command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result


def test_two_shards_and_two_torchrun_ranks_merge_to_the_one_process_run(corpus, reference, tmp_path):
    inputs = ["--manifest", str(corpus["manifest"]), *QUIET]
    shards = tmp_path / "shards"
    codes = [cli.main([*inputs, "--output-dir", str(shards), "--shard", f"{rank}/2"]) for rank in range(2)]
    assert sorted(codes) == [0, 1]  # the corrupt file is in one share
    ranks = [{r["id"] for r in part_records(shards) if r["rank"] == rank} for rank in range(2)]
    assert ranks[0] and ranks[1] and not ranks[0] & ranks[1]
    assert ranks[0] | ranks[1] == {r["id"] for r in transcripts(reference)}
    torchrun = tmp_path / "torchrun"
    result = subprocess.run([*TORCHRUN, "transformers_fireredasr.cli", *inputs, "--output-dir", str(torchrun)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert sorted(p.name for p in (torchrun / "parts").iterdir()) == ["rank-0-of-2.jsonl", "rank-1-of-2.jsonl"]
    assert result.stderr.count("files in this share") == 2, result.stderr[-3000:]
    for run_dir in (shards, torchrun):
        run([*COMMAND, "--merge", str(run_dir)])
        assert comparable(transcripts(run_dir)) == comparable(transcripts(reference))


def test_a_killed_rank_resumes_under_another_world_size(corpus, tmp_path):
    # Five copies of each clip (ids differ), so that the ranks are mid-run when one is killed.
    rows = []
    for copy in range(5):
        for path in corpus["paths"]:
            target = tmp_path / "audio" / f"{copy}_{path.name}"
            target.parent.mkdir(exist_ok=True)
            shutil.copy(path, target)
            rows.append({"audio_filepath": str(target)})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    inputs = ["--manifest", str(manifest), "--batch-seconds", "3", *QUIET]
    uninterrupted = tmp_path / "uninterrupted"
    assert cli.main([*inputs, "--output-dir", str(uninterrupted)]) == 0
    cli.main(["--merge", str(uninterrupted)])

    run_dir = tmp_path / "run"
    launcher = subprocess.Popen([*TORCHRUN, "transformers_fireredasr.cli", *inputs, "--output-dir", str(run_dir)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline, victim = time.time() + 120, None
    while victim is None and time.time() < deadline and launcher.poll() is None:
        records = part_records(run_dir) if (run_dir / "parts").is_dir() else []
        if records:
            victim = records[0]
            os.kill(int(victim["session"].split(":")[1]), signal.SIGKILL)
        time.sleep(0.02)
    launcher.communicate(timeout=120)
    assert victim is not None and launcher.returncode != 0  # torchrun saw its rank die
    done = part_records(run_dir)
    assert 0 < len(done) < len(rows), "the kill should land mid-run"
    with (run_dir / "parts" / f"rank-{victim['rank']}-of-2.jsonl").open("a") as f:
        f.write('{"id": "cut off mid-wr')  # the line a writer killed mid-write leaves

    for rank in range(3):  # another world size: three shares, over what the killed run left
        assert cli.main([*inputs, "--output-dir", str(run_dir), "--shard", f"{rank}/3"]) == 0
    run([*COMMAND, "--merge", str(run_dir)])
    ok = [r["id"] for r in part_records(run_dir) if r["status"] == "ok"]
    assert len(ok) == len(set(ok)) == len(rows)  # nothing done twice, nothing missing
    assert len(part_records(run_dir)) == len(rows)  # the cut line is not a record
    assert comparable(transcripts(run_dir)) == comparable(transcripts(uninterrupted))


def test_a_dataset_input_gives_the_same_transcripts(corpus, reference, tmp_path):
    folder = tmp_path / "audiofolder"
    folder.mkdir()
    clips = corpus["clips"]
    for path in clips.paths[:3]:
        shutil.copy(path, folder / path.name)
    lines = [f"{p.name},{t}" for p, t in zip(clips.paths[:3], clips.sentences, strict=False)]
    (folder / "metadata.csv").write_text("file_name,transcription\n" + "\n".join(lines) + "\n")
    run_dir = tmp_path / "run"
    assert cli.main(["--dataset", f"audiofolder:{folder}", "--output-dir", str(run_dir), *QUIET]) == 0
    assert cli.main(["--merge", str(run_dir)]) == 0
    expected = {Path(r["id"]).name: r["text"] for r in transcripts(reference)}
    rows = transcripts(run_dir)
    assert {Path(r["id"]).name: r["text"] for r in rows} == {p.name: expected[p.name] for p in clips.paths[:3]}
    assert {r["reference"] for r in rows} == set(clips.sentences[:3])
    assert "cer" in json.loads((run_dir / "summary.json").read_text())


def test_word_timestamps_keep_the_text_and_time_the_subtitles(corpus, reference, tmp_path):
    run_dir = tmp_path / "run"
    paths = corpus["clips"].paths[:2]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p)}) + "\n" for p in paths))
    assert cli.main(["--manifest", str(manifest), "--output-dir", str(run_dir), "--timestamps", "word", *QUIET]) == 0
    assert cli.main(["--merge", str(run_dir), "--subtitles", "srt"]) == 0
    texts = {row["id"]: row["text"] for row in transcripts(reference)}
    for row in transcripts(run_dir):
        assert row["text"] == texts[row["id"]]  # word times never change the text
        assert "".join(word["text"] for word in row["words"]) == row["text"].replace(" ", "")
        assert all(0 <= w["start"] < w["end"] <= row["duration"] + 0.01 for w in row["words"])
        cues = parse_srt((run_dir / "subtitles" / f"{Path(row['id']).stem}.srt").read_text())
        assert cues[0][1] == pytest.approx(row["words"][0]["start"], abs=0.002)


def test_a_punctuated_run_equals_the_cli_and_its_subtitles_end_at_sentence_ends(
    corpus, converted_punc_dir, capsys, tmp_path
):
    run_dir = tmp_path / "run"
    paths = [corpus["clips"].paths[0], corpus["clips"].long_path]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p)}) + "\n" for p in paths))
    punctuation = ["--punctuation", str(converted_punc_dir)]
    assert cli.main(["--manifest", str(manifest), "--output-dir", str(run_dir), *punctuation, *QUIET]) == 0
    assert cli.main(["--merge", str(run_dir), "--subtitles", "srt"]) == 0
    expected = cli_texts(paths, capsys, *punctuation)
    for row in transcripts(run_dir):
        assert row["text"] == expected[row["id"]] and row["sentence_timing"] == "segments"
        assert "".join(sentence["text"] for sentence in row["sentences"]) == row["text"]
        assert all(0 <= s["start"] < s["end"] <= row["duration"] + 0.01 for s in row["sentences"])
        cues = parse_srt((run_dir / "subtitles" / f"{Path(row['id']).stem}.srt").read_text())
        ends = {round(end, 3) for _, _, end, _ in cues}
        assert all(round(sentence["end"], 3) in ends for sentence in row["sentences"])
    # The punctuation model is one of the run's settings: a resume without it is refused.
    capsys.readouterr()
    assert cli.main(["--manifest", str(manifest), "--output-dir", str(run_dir), *QUIET]) == 2
    assert "punctuation" in capsys.readouterr().err
