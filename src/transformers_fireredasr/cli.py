"""`fireredasr-transcribe`: transcribe audio files from the command line with any FireRedASR model folder or Hub id.

Audio in any format and sampling rate ffmpeg reads is decoded to 16 kHz mono; long recordings are cut into speech
segments (silero-vad) and transcribed in batches. A file that cannot be read or transcribed is reported on stderr
at the end and the others are still transcribed; any failure makes the exit code 1.

Archives (`--manifest`, `--files`, `--dataset` with `--output-dir RUN_DIR`) are transcribed as a resumable run,
sharded over the processes of any launcher (torchrun, accelerate launch, srun) or by `--shard I/N`; `--merge RUN_DIR`
writes its transcripts.jsonl and summary. See `transformers_fireredasr.batch`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import formats
from .audio_io import SAMPLING_RATE, decode_file
from .demo_model import demo_model_dir
from .engine import Engine, LoadOptions, OptionError, Outcome, TranscribeOptions
from .flags import add_load_arguments, add_transcribe_arguments, load_options
from .formats import (  # noqa: F401 - srt_timestamp too
    LANGUAGE_KEYS,
    language_tier,
    segment_records,
    srt_timestamp,
    to_srt,
    to_textgrid,
    to_vtt,
    word_records,
)


def read_audio(path: str) -> np.ndarray:
    """Decodes `path` to float32 mono 16 kHz with ffmpeg; raises ValueError naming the file when that fails."""
    return decode_file(path, SAMPLING_RATE)


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (`parse_args` parses and checks them; `build_parser().format_help()` is `--help`)."""
    parser = argparse.ArgumentParser(
        prog="fireredasr-transcribe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", nargs="*", help="audio files (wav, flac, mp3, ... at any sampling rate)")
    parser.add_argument(
        "--model",
        help="model folder or Hub id, converted or the original release (default: the bundled demo model)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="segments decoded together (default 8); float32 transcripts are the same at any batch size, "
        "float16, bfloat16 and --quantize ones may differ",
    )
    add_load_arguments(parser)
    add_transcribe_arguments(parser)
    parser.add_argument(
        "--output-format",
        default=None,
        choices=["text", "jsonl", "srt", "vtt", "textgrid"],
        help="text: the transcript; jsonl: one JSON object per file with path, text, confidence and timestamped "
        "chunks (and words with --timestamps word); srt / vtt: subtitles written to OUTPUT_DIR/<name>.srt / .vtt, "
        "one cue per speech segment, cut at long pauses and at --max-cue-seconds; textgrid: a Praat TextGrid "
        "written to OUTPUT_DIR/<name>.TextGrid, with tiers of sentences (when punctuated), speech segments and "
        "words (when the model times them)",
    )
    parser.add_argument("--max-cue-seconds", type=float, default=7.0, help="srt/vtt: longest subtitle cue (default 7)")
    parser.add_argument(
        "--cue-pause-seconds",
        type=float,
        default=0.6,
        help="srt/vtt: a pause between words at least this long starts a new cue (needs a CTC head; default 0.6)",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="where srt, vtt and TextGrid files go (default: the current folder); with --manifest/--files/--dataset: the run folder",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_run_arguments(parser)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    options = parser.parse_args(argv)
    check_run_arguments(parser, options)
    if options.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    for name in ("max_cue_seconds", "cue_pause_seconds"):
        if not getattr(options, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if options.timestamps in ("word", "char") and options.output_format == "text" and not options.run:
        parser.error("--timestamps word/char needs --output-format jsonl (or srt/vtt)")
    try:
        options.load, options.transcribe = engine_options(options)
    except OptionError as error:
        parser.error(str(error))
    return options


def engine_options(options: argparse.Namespace) -> tuple[LoadOptions, TranscribeOptions]:
    """The load and transcription options the flags give; raises OptionError for a bad value."""
    load = load_options(options)
    hotwords: tuple = ()
    if options.hotwords is not None:
        from .hotwords import DEFAULT_HOTWORD_SCORE, read_hotwords_file

        score = DEFAULT_HOTWORD_SCORE if options.hotword_score is None else options.hotword_score
        try:
            hotwords = tuple(read_hotwords_file(options.hotwords, score))
        except (OSError, ValueError) as error:
            raise OptionError(f"hotwords: {error}") from None
    TranscribeOptions(timestamps=options.timestamps)  # checks the flag's value, whatever the output format
    # What the output needs: plain text no times (so short audio is decoded whole); jsonl the segments, or the
    # words; srt/vtt segments, cut at the pauses between words when the model times them (`main`). An archive
    # run's records always carry the decoded pieces, and words with --timestamps word/char.
    timestamps = options.timestamps
    if (options.run and timestamps == "segment") or (not options.run and options.output_format == "text"):
        timestamps = None
    transcribe = TranscribeOptions(
        num_beams=options.num_beams,
        temperature=options.temperature,
        hotwords=hotwords,
        hotword_score=options.hotword_score,
        max_segment_seconds=options.max_segment_seconds,
        merge_segments_seconds=options.merge_segments_seconds,
        segmentation=options.segmentation,
        timestamps=timestamps,
    )
    return load, transcribe


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of archive runs (see `transformers_fireredasr.batch`)."""
    group = parser.add_argument_group("archive runs (resumable, sharded)")
    group.add_argument("--manifest", metavar="JSONL", help="NeMo-style manifest: audio_filepath, id, duration, ...")
    group.add_argument("--files", metavar="DIR_OR_GLOB", help="every audio file under a folder, or a glob ('**' ok)")
    group.add_argument(
        "--dataset", metavar="PATH", help="a save_to_disk folder, or audiofolder:DIR, with an Audio column"
    )
    group.add_argument("--split", help="--dataset: the split (needed when it has several)")
    group.add_argument("--audio-column", help="--dataset: the Audio column (default: the only one)")
    group.add_argument("--text-column", help="--dataset: reference texts for the CER (default: text, transcription)")
    group.add_argument("--id-column", help="--dataset: unique ids (default: the audio path, else the row number)")
    group.add_argument("--shard", metavar="I/N", help="transcribe share I of N (array jobs; launchers need none)")
    group.add_argument("--force", action="store_true", help="continue a run whose settings or items changed")
    group.add_argument(
        "--batch-seconds",
        type=float,
        default=120.0,
        help="audio seconds per encoder batch, padding included; AED decoding batches hold up to 4 (default 120)",
    )
    group.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="processes decoding and segmenting ahead of the model (default: 1 with CUDA, 0 on the CPU, where they "
        "would take the model's cores)",
    )
    group.add_argument("--merge", metavar="RUN_DIR", help="write RUN_DIR/transcripts.jsonl and summary.json")
    group.add_argument("--subtitles", nargs="+", choices=["srt", "vtt"], help="--merge: also one file per item")


RUN_INPUTS = ("manifest", "files", "dataset")
RUN_ONLY = ("split", "audio_column", "text_column", "id_column", "shard", "force")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_run_arguments(parser: argparse.ArgumentParser, options: argparse.Namespace) -> None:
    """Which mode the options ask for (files, a run, a merge), refusing mixtures with a message naming them."""
    inputs = [name for name in RUN_INPUTS if getattr(options, name) is not None]
    if len(inputs) > 1:
        parser.error(f"give one input: {' and '.join(map(flag, inputs))} both given")
    options.run = bool(inputs)
    if options.merge is not None and (inputs or options.audio):
        parser.error("--merge RUN_DIR takes no input: merge the run once its processes are done")
    if options.subtitles and options.merge is None:
        parser.error("--subtitles goes with --merge RUN_DIR")
    if options.run or options.merge is not None:
        if options.audio:
            parser.error("audio files and a run input: list the files in a --manifest, or use --files DIR_OR_GLOB")
        if options.output_format is not None:
            parser.error("--output-format is for audio files; a run writes jsonl (--merge --subtitles srt vtt)")
    if options.run:
        if options.output_dir is None:
            parser.error(f"{flag(inputs[0])} needs --output-dir RUN_DIR (where the run's files go)")
        if not options.batch_seconds > 0:
            parser.error("--batch-seconds must be a positive number of seconds")
        if options.num_workers is not None and options.num_workers < 0:
            parser.error("--num-workers must be >= 0")
        if options.dataset is None:
            for name in ("split", "audio_column", "text_column", "id_column"):
                if getattr(options, name) is not None:
                    parser.error(f"{flag(name)} goes with --dataset")
    elif options.merge is None:
        for name in RUN_ONLY:
            if getattr(options, name):
                parser.error(f"{flag(name)} goes with a run (--manifest, --files or --dataset with --output-dir)")
        if not options.audio:
            parser.error("give audio files, a run input (--manifest, --files, --dataset) or --merge RUN_DIR")
    options.output_format = options.output_format or "text"
    options.output_dir = options.output_dir or "."


def subtitle_cues(result: dict, options: argparse.Namespace) -> list[dict]:
    """srt/vtt cues: per speech segment, cut at pauses between words (when the words are timed) and at the
    longest cue length."""
    sentences = result.get("sentences")  # a punctuated transcript: cues end at sentence ends
    if "segments" in result:  # word times: the chunks are words
        return formats.subtitle_cues(
            result["segments"], result["chunks"], options.max_cue_seconds, options.cue_pause_seconds, sentences
        )
    return formats.subtitle_cues(result["chunks"], None, options.max_cue_seconds, sentences=sentences)


def textgrid_tiers(result: dict) -> dict[str, list[dict]]:
    """A result's TextGrid tiers: its sentences when punctuated, its speech segments, their languages with a language
    model, and its words when timed."""
    tiers = {"segments": result.get("segments", result["chunks"])}
    if "language" in result:  # with a language model: each segment's language
        tiers["language"] = language_tier(tiers["segments"])
    if "segments" in result:  # word times: the chunks are words
        tiers["words"] = result["chunks"]
    if result.get("sentences") is not None:  # a punctuated transcript: its sentences come first
        sentences = [{"text": s["text"], "timestamp": (s["start"], s["end"])} for s in result["sentences"]]
        tiers = {"sentences": sentences, **tiers}
    return tiers


def write_file(path: str, suffix: str, text: str, options: argparse.Namespace) -> None:
    """Writes `text` to OUTPUT_DIR/<audio file's stem><suffix> and prints where."""
    target = Path(options.output_dir) / (Path(path).stem + suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(target, flush=True)


def write_result(path: str, result: dict, options: argparse.Namespace, several: bool, duration: float = 0.0) -> None:
    """Prints (text, jsonl) or writes (srt, vtt, textgrid) one file's transcript; `duration` is the audio's length
    in seconds (a TextGrid covers the whole recording)."""
    if options.output_format == "jsonl":
        chunks = segment_records(result.get("segments", result["chunks"]))
        row = {"path": path, "text": result["text"], "confidence": result.get("confidence"), "chunks": chunks}
        if "segments" in result:
            row["words"] = word_records(result["chunks"])
        if "language" in result:  # with a language model: the language of most of the speech, and its confidence
            row.update({key: result[key] for key in LANGUAGE_KEYS})
        if result.get("sentences") is not None:  # punctuated: each sentence's text, start and end
            row["sentences"], row["sentence_timing"] = result["sentences"], result.get("sentence_timing")
        if result.get("events") is not None:  # FireRedVAD's audio-event variant: speech, singing and music, timed
            row["events"] = result["events"]
        print(json.dumps(row, ensure_ascii=False), flush=True)
    elif options.output_format in ("srt", "vtt"):
        writer = to_srt if options.output_format == "srt" else to_vtt
        write_file(path, "." + options.output_format, writer(subtitle_cues(result, options)), options)
    elif options.output_format == "textgrid":
        write_file(path, ".TextGrid", to_textgrid(textgrid_tiers(result), duration), options)
    elif several:
        print(f"{path}\t{result['text']}", flush=True)
    else:
        print(result["text"], flush=True)


def transcribe_files(engine: Engine, options: argparse.Namespace, progress: tqdm) -> Iterator[Outcome]:
    """Each file's outcome, in the order given: files are read as the engine asks for them (so hours of recordings
    are never all in memory), and the segments of `--batch-size` files are decoded together."""

    def inputs() -> Iterator[tuple[str, object]]:
        for path in options.audio:
            try:
                audio = read_audio(path)
            except ValueError as error:
                yield path, error
                continue
            progress.total = round(progress.total + len(audio) / SAMPLING_RATE, 2)
            progress.refresh()
            yield path, audio

    outcomes = engine.transcribe_many(
        ((number, audio) for number, (_, audio) in enumerate(inputs())),  # keyed by position: a path may repeat
        options.transcribe,
        batch_size=options.batch_size,
        pool_inputs=options.batch_size,
        progress=lambda seconds: progress.update(round(seconds, 2)),
    )
    waiting: dict[int, Outcome] = {}
    next_number = 0
    for outcome in outcomes:
        waiting[outcome.key] = outcome
        while next_number in waiting:
            yield waiting.pop(next_number)
            next_number += 1


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if options.merge is not None:
        from .batch.command import merge_main

        return merge_main(options)
    try:
        model = options.model or demo_model_dir()
    except FileNotFoundError as error:
        print(f"error: {error}; pass --model DIR_OR_HUB_ID", file=sys.stderr)
        return 2
    if options.run:
        from .batch.command import run_main

        return run_main(options, str(model))

    if options.no_progress:  # transformers' own bars too ("Loading weights")
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        engine = Engine.from_pretrained(str(model), options.load)
        transcribe = options.transcribe
        if (
            options.output_format in ("srt", "vtt", "textgrid")
            and transcribe.timestamps == "segment"
            and engine.times_words
        ):
            transcribe = dataclasses.replace(transcribe, timestamps="word")  # cues cut at the pauses between words
        engine.check(transcribe)
    except (OptionError, ValueError, OSError) as error:  # OSError: a model folder or Hub id that cannot be read
        print(f"error: {error}", file=sys.stderr)
        return 2
    options.transcribe = transcribe

    failures: list[str] = []
    # The bar counts seconds of audio; its total grows as files are read. Without a terminal it stays quiet.
    progress = tqdm(
        total=0, unit="s", desc="transcribing", file=sys.stderr, disable=True if options.no_progress else None
    )
    several = len(options.audio) > 1
    for outcome in transcribe_files(engine, options, progress):
        path = options.audio[outcome.key]
        if outcome.error is not None:
            failures.append(outcome.error if path in outcome.error else f"{path}: {outcome.error}")
        else:
            write_result(path, outcome.result, options, several, outcome.duration or 0.0)
    progress.close()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
