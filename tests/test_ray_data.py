"""The Ray Data recipe on a local Ray instance (4 logical CPUs, 2 logical GPUs): one actor per GPU, the CLI's texts
(punctuated, with their sentences, and with a language model the engine's languages), and a resume after the driver was killed that neither repeats nor loses a row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import transformers_fireredasr
from tests.serving_helpers import make_clips
from transformers_fireredasr import cli
from transformers_fireredasr.engine import Engine, TranscribeOptions
from transformers_fireredasr.formats import segment_records

pytest.importorskip("ray")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ray_transcribe.py"
# Logical resources: per-GPU placement is checked on a CPU machine; 2 CPUs deadlocked with checkpointing.
LOCAL = ["--local-cpus", "4", "--local-gpus", "2", "--actors", "2", "--batch-size", "2"]


def descendants(pid: int) -> list[int]:
    """The process ids below `pid` (Linux /proc), children first."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's own, by id)."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=60)


def rows_in(folder: Path) -> list[dict]:
    rows = []
    for path in sorted(folder.glob("*.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rows.append(json.loads(line))
    return rows


def test_recipe_resumes_a_killed_run_and_gives_the_cli_texts(tmp_path, capsys, converted_punc_dir, converted_lid_dir):
    (tmp_path / "clips").mkdir()
    clips = make_clips(tmp_path / "clips")
    missing = tmp_path / "missing.wav"
    rows = [{"audio_filepath": str(p), "id": f"{copy}_{p.name}"} for copy in range(3) for p in clips.paths]
    rows.append({"audio_filepath": str(missing), "id": "missing"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    punctuation = ["--punctuation", str(converted_punc_dir)]
    capsys.readouterr()
    cli.main([*map(str, clips.paths), "--no-progress", *punctuation])
    expected = {Path(p).name: text for p, text in (line.split("\t") for line in capsys.readouterr().out.splitlines())}

    out = tmp_path / "out"
    lid = ["--lid-model", str(converted_lid_dir)]
    command = [sys.executable, str(EXAMPLE), str(manifest), str(out), *LOCAL, *punctuation, *lid]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 180
        while not list((out / "transcripts").glob("*.json")) and time.time() < deadline and driver.poll() is None:
            time.sleep(0.05)
    finally:
        kill_tree(driver)
    before = rows_in(out / "transcripts")
    assert 0 < len(before) < len(rows), "the kill should land mid-run"

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 1, resumed.stderr[-3000:]  # the missing file
    after = rows_in(out / "transcripts")
    counts = Counter(row["id"] for row in after)
    assert sorted(counts) == sorted(row["id"] for row in rows) and set(counts.values()) == {1}
    by_id = {row["id"]: row for row in after}
    assert by_id["missing"]["status"] == "failed" and "no such file" in by_id["missing"]["error"]
    assert {key: row["text"] for key, row in by_id.items() if key != "missing"} == {
        row["id"]: expected[row["id"].split("_", 1)[1]] for row in rows if row["id"] != "missing"
    }
    # The recipe's records are one engine call's: the text, the decoded pieces' times and languages.
    load = {"device": "cpu", "punctuation": str(converted_punc_dir), "lid_model": str(converted_lid_dir)}
    engine = Engine.from_pretrained(str(transformers_fireredasr.demo_model_dir()), load)
    inputs = [(path.name, str(path)) for path in clips.paths]
    outcomes = {outcome.key: outcome for outcome in engine.transcribe_many(inputs, TranscribeOptions())}
    for key, row in by_id.items():
        if key != "missing":
            outcome = outcomes[key.split("_", 1)[1]]
            assert row["text"] == outcome.result["text"] and row["confidence"] == outcome.result["confidence"]
            assert row["segments"] == json.loads(json.dumps(segment_records(outcome.pieces)))
            assert row["sentences"] == json.loads(json.dumps(outcome.result["sentences"]))
            assert row["sentence_timing"] == "segments"
            assert row["language"] and row["segments"][0]["language"] and row["sentences"][0]["language"]
            language = outcome.result["language"], outcome.result["language_confidence"]
            assert (row["language"], row["language_confidence"]) == language
    # One logical GPU per actor; actors of one run hold different GPUs.
    placement = {(row["actor_pid"], tuple(row["gpu_ids"])) for row in after}
    assert all(len(gpus) == 1 and gpus[0] in ("0", "1") for _, gpus in placement)
    second = {(row["actor_pid"], row["gpu_ids"][0]) for row in after if row["id"] not in {r["id"] for r in before}}
    assert len({gpu for _, gpu in second}) == len({actor for actor, _ in second})
