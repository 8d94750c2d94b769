"""Part files and run.json: appends that survive a cut last line, one writer per part, settings checked on resume."""

from __future__ import annotations

import io
import json

import pytest

from transformers_fireredasr.batch import Item, PartWriter, SettingsError, done_ids, latest_records, prepare_run
from transformers_fireredasr.batch.parts import part_path, read_records
from transformers_fireredasr.batch.progress import RunProgress
from transformers_fireredasr.batch.settings import fingerprint, read_items, read_settings


def record(key, status="ok", finished=1.0, **extra):
    return {"id": key, "status": status, "finished": finished, **extra}


def test_a_cut_last_line_is_skipped_and_the_next_writer_starts_clean(tmp_path):
    path = part_path(tmp_path, 0, 2)
    with PartWriter(path) as writer:
        writer.write(record("a", text="甲"))
    with path.open("ab") as f:  # what a writer killed mid-line leaves
        f.write(json.dumps(record("b")).encode()[:15])
    with PartWriter(path) as writer:
        writer.write(record("c"))
    assert [r["id"] for r in read_records(tmp_path)] == ["a", "c"]
    assert path.read_bytes().count(b"\n") == 3 and path.read_bytes().endswith(b"\n")


def test_one_writer_per_part_file(tmp_path):
    with PartWriter(part_path(tmp_path, 1, 2)):
        with pytest.raises(RuntimeError, match="being written by another process"):
            PartWriter(part_path(tmp_path, 1, 2))
    PartWriter(part_path(tmp_path, 1, 2)).close()  # the lock goes with its writer


def test_success_wins_and_failures_are_retried(tmp_path):
    with PartWriter(part_path(tmp_path, 0, 1)) as writer:
        writer.write(record("a", "failed", 1.0, error="corrupt"))
        writer.write(record("b", "failed", 1.0, error="first"))
    with PartWriter(part_path(tmp_path, 0, 3)) as writer:  # a later run with another world size
        writer.write(record("a", "ok", 2.0))
        writer.write(record("b", "failed", 3.0, error="second"))
    best = latest_records(tmp_path)
    assert best["a"]["status"] == "ok" and best["b"]["error"] == "second"
    assert done_ids(tmp_path) == {"a"}


SETTINGS = {"input": {"kind": "manifest"}, "model": "m", "revision": "r1", "decoding": {"num_beams": 3}}


def test_run_json_refuses_other_settings_unless_forced(tmp_path):
    items = [Item("a", "a.wav", 1.0), Item("b", "b.wav", 2.0, text="乙")]
    prepare_run(tmp_path, {**SETTINGS, "package_version": "1"}, items)
    prepare_run(tmp_path, {**SETTINGS, "package_version": "1"}, items)  # a resume with the same ones
    assert read_items(tmp_path) == items
    changed = {**SETTINGS, "decoding": {"num_beams": 1}, "package_version": "1"}
    with pytest.raises(SettingsError, match=r"decoding: \{'num_beams': 3\} -> \{'num_beams': 1\}"):
        prepare_run(tmp_path, changed, items)
    prepare_run(tmp_path, changed, items, force=True)
    saved = read_settings(tmp_path)
    assert saved["decoding"] == {"num_beams": 1} and saved["previous"][0]["decoding"] == {"num_beams": 3}
    with pytest.raises(SettingsError, match="another list of items"):
        prepare_run(tmp_path, changed, items[:1])
    # A file whose length changed (fixed, re-encoded) is the same item: the first list, lengths and all, is used.
    assert prepare_run(tmp_path, changed, [Item("a", "a.wav", 5.0), items[1]]) == items


def test_model_fingerprint_follows_the_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    before = fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("cards do not count")
    assert fingerprint(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 100)
    assert fingerprint(tmp_path) != before


def test_one_bar_counts_every_rank_s_finished_seconds(tmp_path):
    items = [Item("a", "a.wav", 1.5), Item("b", "b.wav", 2.0), Item("c", "c.wav", 4.0)]
    with PartWriter(part_path(tmp_path, 0, 2)) as writer:
        writer.write(record("a"))
    progress = RunProgress(tmp_path, items, show=True, interval=0.0, file=io.StringIO())
    assert progress.bar.n == 1.5 and progress.bar.total == 7.5
    with PartWriter(part_path(tmp_path, 1, 2)) as writer:  # another rank, and a line still being written
        writer.write(record("b", "failed"))
    with part_path(tmp_path, 0, 2).open("a") as f:
        f.write('{"id": "c", "sta')
    progress.poll()
    assert progress.bar.n == 3.5
    with part_path(tmp_path, 0, 2).open("a") as f:
        f.write('tus": "ok"}\n')
    progress.poll()
    assert progress.bar.n == 7.5
    assert RunProgress(tmp_path, items, show=False).bar.disable  # ranks other than 0 show none


def test_merged_subtitles_cut_at_the_pause_the_command_names(tmp_path, monkeypatch):
    """`--merge --subtitles` cuts cues where `--cue-pause-seconds` says, as `fireredasr-transcribe FILE` does."""
    from transformers_fireredasr import cli
    from transformers_fireredasr.batch import merge

    words = [{"text": "今天", "start": 0.0, "end": 0.5}, {"text": "好", "start": 1.3, "end": 1.6}]  # a 0.8 s pause
    row = {"id": "a", "status": "ok", "segments": [{"text": "今天好", "start": 0.0, "end": 1.6}], "words": words}
    assert merge.write_subtitles(tmp_path / "cut", [row], ["srt"], 7.0, pause_seconds=0.6) == 1
    assert merge.write_subtitles(tmp_path / "whole", [row], ["srt"], 7.0, pause_seconds=1.0) == 1
    assert (tmp_path / "cut" / "subtitles" / "a.srt").read_text().count("-->") == 2
    assert (tmp_path / "whole" / "subtitles" / "a.srt").read_text().count("-->") == 1

    asked = {}
    summary = {"failed": 0, "missing": 0}
    monkeypatch.setattr(
        "transformers_fireredasr.batch.command.merge_run", lambda *a, **kw: asked.update(kw) or summary
    )
    monkeypatch.setattr("transformers_fireredasr.batch.command.format_summary", lambda summary: "")
    cli.main(["--merge", str(tmp_path), "--subtitles", "srt", "--cue-pause-seconds", "1.5", "--max-cue-seconds", "4"])
    assert asked == {"max_cue_seconds": 4.0, "pause_seconds": 1.5}
