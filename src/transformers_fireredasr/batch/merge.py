"""Merging a run: every part file's records into `transcripts.jsonl` in the items' (manifest) order, optional
srt/vtt files per item, and `summary.json`: files ok, failed and not yet done, hours of audio, wall time, real-time
factor, and the CER where the manifest gave reference texts.

Wall time is the union of the intervals in which some process was working (from each session's start to its last
record); the real-time factor is the processes' summed working time over the seconds of audio (what one process
spends per second of audio), so that it does not improve merely by adding ranks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import formats
from ..formats import to_srt, to_vtt
from .parts import latest_records, read_records
from .settings import read_items

TRANSCRIPTS_FILE, SUMMARY_FILE, SUBTITLES_DIR = "transcripts.jsonl", "summary.json", "subtitles"
RECORD_ONLY = ("rank", "world_size", "session", "session_start", "finished")


def session_times(run_dir: str | Path) -> tuple[float, float]:
    """(wall seconds, summed process seconds) over every session that wrote a record."""
    spans: dict[str, list[float]] = {}
    for record in read_records(run_dir):
        if "session" in record:
            start, end = spans.setdefault(record["session"], [record["session_start"], record["finished"]])
            spans[record["session"]][1] = max(end, record["finished"])
    intervals = sorted(tuple(span) for span in spans.values())
    busy = sum(end - start for start, end in intervals)
    wall, current = 0.0, None
    for start, end in intervals:
        if current is None or start > current[1]:
            if current is not None:
                wall += current[1] - current[0]
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    if current is not None:
        wall += current[1] - current[0]
    return wall, busy


def _chunks(pieces: Sequence[dict]) -> list[dict]:
    return [{**p, "timestamp": (p["start"], p["end"])} for p in pieces]


def subtitle_cues(record: dict, max_cue_seconds: float = 7.0, pause_seconds: float = 0.6) -> list[dict]:
    """A record's subtitle cues, cut as the CLI cuts them: at pauses between timed words, else evenly."""
    words = _chunks(record["words"]) if record.get("words") else None
    sentences = record.get("sentences")  # a punctuated transcript: cues end at sentence ends
    return formats.subtitle_cues(_chunks(record["segments"]), words, max_cue_seconds, pause_seconds, sentences)


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", Path(text).stem if "/" in text or "." in text else text).strip("_") or "item"


def write_subtitles(
    run_dir: Path, rows: Sequence[dict], formats: Sequence[str], max_cue_seconds: float, pause_seconds: float = 0.6
) -> int:
    """One file per ok item and format under run_dir/subtitles/ (names from ids, made unique); returns the count."""
    folder, used, written = run_dir / SUBTITLES_DIR, set(), 0
    for row in rows:
        if row["status"] != "ok":
            continue
        name = _safe_name(row["id"])
        while name in used:
            name += "_"
        used.add(name)
        cues = subtitle_cues(row, max_cue_seconds, pause_seconds)
        for fmt in formats:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.{fmt}").write_text((to_srt if fmt == "srt" else to_vtt)(cues), encoding="utf-8")
            written += 1
    return written


def merge_run(
    run_dir: str | Path, subtitles: Sequence[str] = (), max_cue_seconds: float = 7.0, pause_seconds: float = 0.6
) -> dict[str, Any]:
    """Writes transcripts.jsonl (and subtitles, cut as `subtitle_cues` cuts them) and summary.json; returns the
    summary."""
    run_dir = Path(run_dir)
    items, records = read_items(run_dir), latest_records(run_dir)
    rows = []
    for item in items:
        record = records.get(item.id)
        if record is None:
            row = {"id": item.id, "audio_filepath": item.audio_filepath, "text": None, "status": "missing"}
        else:
            row = {key: value for key, value in record.items() if key not in RECORD_ONLY}
        if item.text is not None:
            row["reference"] = item.text
        rows.append(row)
    with (run_dir / TRANSCRIPTS_FILE).open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    summary = summarize(run_dir, rows)
    if subtitles:
        summary["subtitle_files"] = write_subtitles(run_dir, rows, subtitles, max_cue_seconds, pause_seconds)
    (run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def summarize(run_dir: Path, rows: Sequence[dict]) -> dict[str, Any]:
    ok = [row for row in rows if row["status"] == "ok"]
    audio = sum(row["duration"] for row in ok)
    wall, busy = session_times(run_dir)
    summary: dict[str, Any] = {
        "files": len(rows),
        "ok": len(ok),
        "failed": sum(row["status"] == "failed" for row in rows),
        "missing": sum(row["status"] == "missing" for row in rows),
        "audio_hours": round(audio / 3600, 4),
        "wall_seconds": round(wall, 2),
        "process_seconds": round(busy, 2),
        "real_time_factor": round(busy / audio, 4) if audio else None,
    }
    scored = [row for row in ok if row.get("reference") is not None]
    if scored and any(row["reference"].strip() for row in scored):
        from ..training import character_error_rate

        try:
            cer = character_error_rate([r["text"] for r in scored], [r["reference"] for r in scored])
        except ImportError:
            summary["cer"] = "needs jiwer (pip install jiwer)"
        else:
            summary["cer"], summary["cer_files"] = round(cer, 4), len(scored)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines for the terminal."""
    lines = [
        f"files: {summary['files']} ({summary['ok']} ok, {summary['failed']} failed, {summary['missing']} not done)",
        f"audio: {summary['audio_hours']:.3f} h; wall time {summary['wall_seconds']:.1f} s; "
        f"real-time factor {summary['real_time_factor']} (process seconds per audio second)",
    ]
    if "cer_files" in summary:
        lines.append(f"CER: {summary['cer']:.2%} over {summary['cer_files']} files with a reference")
    return "\n".join(lines)


__all__ = ["format_summary", "merge_run", "session_times", "subtitle_cues", "summarize"]
