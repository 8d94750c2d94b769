"""The two archive commands behind `fireredasr-transcribe`'s options: a run's process, and the merge."""

from __future__ import annotations

import argparse
import os
import sys

from .inputs import InputError
from .merge import format_summary, merge_run
from .run import RunConfig, transcribe_run
from .settings import SettingsError
from .sources import InputSpec


def input_spec(options: argparse.Namespace) -> InputSpec:
    """The run's input, with absolute paths (a resume from another folder names the same input)."""
    if options.manifest is not None:
        return InputSpec("manifest", os.path.abspath(options.manifest))
    if options.files is not None:
        return InputSpec("files", os.path.abspath(options.files))
    prefix, path = (
        ("audiofolder:", options.dataset[12:]) if options.dataset.startswith("audiofolder:") else ("", options.dataset)
    )
    return InputSpec(
        "dataset",
        prefix + os.path.abspath(path),
        options.split,
        options.audio_column,
        options.text_column,
        options.id_column,
    )


def run_config(options: argparse.Namespace, model: str) -> RunConfig:
    """The run's settings from the command's flags (already checked by the engine's options in `parse_args`)."""
    return RunConfig(
        model=model,
        device=options.device,
        dtype=options.dtype,
        quantize=options.quantize,
        num_beams=options.num_beams,
        temperature=options.temperature,
        hotwords=[(hotword.phrase, hotword.score) for hotword in options.transcribe.hotwords] or None,
        max_segment_seconds=options.max_segment_seconds,
        merge_segments_seconds=options.merge_segments_seconds,
        segmentation=options.segmentation,
        timestamps=options.timestamps,
        compile=options.compile,
        punctuation=options.load.punctuation,
        lid_model=options.lid_model,
        vad_model=options.vad_model,
        skip_music=options.skip_music,
        batch_seconds=options.batch_seconds,
        num_workers=options.num_workers,
        progress=not options.no_progress,
        force=options.force,
    )


def run_main(options: argparse.Namespace, model: str) -> int:
    """Transcribes this process's share; 0 when every file of it is done, 1 when some failed, 2 on bad input."""
    if options.no_progress:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        counts = transcribe_run(input_spec(options), options.output_dir, run_config(options, model), options.shard)
    except (InputError, SettingsError, ValueError, RuntimeError, OSError) as error:  # OSError: an unreadable model
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{counts['assigned']} files in this share: {counts['skipped']} already done, {counts['ok']} transcribed, "
        f"{counts['failed']} failed",
        file=sys.stderr,
    )
    return 1 if counts["failed"] else 0


def merge_main(options: argparse.Namespace) -> int:
    """Merges the run; 0 when every item is transcribed, 1 when some failed or are not done yet."""
    try:
        summary = merge_run(
            options.merge,
            options.subtitles or (),
            max_cue_seconds=options.max_cue_seconds,
            pause_seconds=options.cue_pause_seconds,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 1 if summary["failed"] or summary["missing"] else 0
