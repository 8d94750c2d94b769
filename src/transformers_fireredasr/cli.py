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
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import formats
from .audio_io import SAMPLING_RATE, decode_file
from .demo_model import demo_model_dir
from .formats import segment_records, srt_timestamp, to_srt, to_vtt, word_records  # noqa: F401 - srt_timestamp too
from .quantization import QUANTIZE_MODES, check_quantized, quantization_config
from .word_timing import can_time_words


def read_audio(path: str) -> np.ndarray:
    """Decodes `path` to float32 mono 16 kHz with ffmpeg; raises ValueError naming the file when that fails."""
    return decode_file(path, SAMPLING_RATE)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fireredasr-transcribe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", nargs="*", help="audio files (wav, flac, mp3, ... at any sampling rate)")
    parser.add_argument(
        "--model",
        help="model folder or Hub id, converted or the original release (default: the bundled demo model)",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-beams", type=int, default=None, help="default: the model's generation config")
    parser.add_argument(
        "--hotwords",
        metavar="FILE",
        help="bias decoding towards these phrases (names, terms): one a line, with an optional ':score' suffix",
    )
    parser.add_argument(
        "--hotword-score",
        type=float,
        default=None,
        help="bonus per matched token for phrases without their own score (default: 2.0)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--quantize",
        default=None,
        choices=list(QUANTIZE_MODES),
        help="CPU int8 through torchao (the quantization extra): int8-weight = the decoder's weights in int8, "
        "int8-dynamic = int8 weights and activations everywhere, int8-mixed (AED only) = int8-dynamic's encoder "
        "with int8-weight's decoder; accuracy and speed against fp32 are in benchmarks/RESULTS.md",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the decoding steps (static cache; on the CPU eager attention, frozen weights and max-autotune): "
        "fp32 transcripts unchanged; with --quantize int8-weight --dtype bfloat16 the fastest mode (README); each new "
        "batch shape compiles (about 1.5 min at AED-L; after 8 shapes the rest decode eagerly), so it pays for "
        "audio of few lengths",
    )
    parser.add_argument(
        "--output-format",
        default=None,
        choices=["text", "jsonl", "srt", "vtt"],
        help="text: the transcript; jsonl: one JSON object per file with path, text, confidence and timestamped "
        "chunks (and words with --timestamps word); srt / vtt: subtitles written to OUTPUT_DIR/<name>.srt / .vtt, "
        "one cue per speech segment, cut at long pauses and at --max-cue-seconds",
    )
    parser.add_argument(
        "--timestamps",
        default="segment",
        choices=["segment", "word", "char"],
        help="jsonl: 'word' / 'char' add each word's (token's) start, end and confidence, timed by the model's CTC "
        "head (FireRedASR2-AED, the bundled demo); 'segment' (default): speech segments only",
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
        help="where srt/vtt files go (default: the current folder); with --manifest/--files/--dataset: the run folder",
    )
    parser.add_argument(
        "--max-segment-seconds",
        type=float,
        default=None,
        help="longest piece decoded at once (default: 60 AED, 30 LLM)",
    )
    parser.add_argument(
        "--merge-segments-seconds",
        type=float,
        default=None,
        metavar="S",
        help="join neighbouring speech segments (pauses included) into pieces of up to S seconds, capped at "
        "--max-segment-seconds: fewer, longer pieces and one srt/jsonl chunk per piece (default: one per pause)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    add_run_arguments(parser)
    options = parser.parse_args(argv)
    check_run_arguments(parser, options)
    if options.quantize and options.device != "cpu":
        parser.error(f"--quantize {options.quantize} is a CPU mode (torchao int8); on a GPU use --dtype bfloat16")
    if options.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    if options.merge_segments_seconds is not None and not options.merge_segments_seconds > 0:
        parser.error("--merge-segments-seconds must be a positive number of seconds")
    for name in ("max_cue_seconds", "cue_pause_seconds"):
        if not getattr(options, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if options.hotword_score is not None and options.hotwords is None:
        parser.error("--hotword-score needs --hotwords FILE")
    if options.hotwords is not None:
        from .hotwords import DEFAULT_HOTWORD_SCORE, read_hotwords_file

        score = DEFAULT_HOTWORD_SCORE if options.hotword_score is None else options.hotword_score
        try:
            options.hotwords = [(h.phrase, h.score) for h in read_hotwords_file(options.hotwords, score)]
        except (OSError, ValueError) as error:
            parser.error(f"--hotwords: {error}")
    return options


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


def pipeline_model_kwargs(quantize: str | None, compile_device: str | None = None) -> dict:
    """`pipeline(..., model_kwargs=...)` for `--quantize` (a torchao config) and `--compile` (what the compiled
    decoding steps want of the model on `compile_device`), for audio files and archive runs alike."""
    kwargs = {} if quantize is None else {"quantization_config": quantization_config(quantize)}
    if compile_device is not None:
        from .compiled_decoding import compiled_decoding_load_kwargs

        kwargs.update(compiled_decoding_load_kwargs(compile_device))
    return kwargs


def pipeline_call_kwargs(
    num_beams: int | None,
    hotwords: list | None,
    max_segment_seconds: float | None,
    merge_segments_seconds: float | None,
    compile_device: str | None = None,
) -> dict:
    """The pipeline call options that the decoding flags give, for audio files and archive runs alike
    (`compile_device`: `--compile`'s compiled decoding steps for that device)."""
    generate_kwargs: dict = {} if num_beams is None else {"num_beams": num_beams}
    if hotwords:
        generate_kwargs["hotwords"] = hotwords
    if compile_device is not None:
        from .compiled_decoding import compiled_decoding_kwargs

        generate_kwargs.update(compiled_decoding_kwargs(compile_device))
    kwargs: dict = {"generate_kwargs": generate_kwargs}
    if max_segment_seconds is not None:
        kwargs["chunk_length_s"] = max_segment_seconds
    if merge_segments_seconds is not None:
        kwargs["merge_segments_s"] = merge_segments_seconds
    return kwargs


def transcribe_batch(asr, batch: list, batch_size: int, call_kwargs: dict, failures: list[str]) -> list:
    """Pipeline results for `(path, audio)` pairs; if the batch fails, retries file by file so that one bad file
    loses only itself (its error goes to `failures`, its result is None)."""
    if not batch:
        return []
    try:
        return list(asr([audio for _, audio in batch], batch_size=batch_size, **call_kwargs))
    except Exception:
        results = []
        for path, audio in batch:
            try:
                results.append(asr(audio, batch_size=batch_size, **call_kwargs))
            except Exception as error:
                failures.append(f"{path}: transcription failed ({error})")
                results.append(None)
        return results


def subtitle_cues(result: dict, options: argparse.Namespace) -> list[dict]:
    """srt/vtt cues: per speech segment, cut at pauses between words (when the words are timed) and at the
    longest cue length."""
    if "segments" in result:  # word times: the chunks are words
        return formats.subtitle_cues(
            result["segments"], result["chunks"], options.max_cue_seconds, options.cue_pause_seconds
        )
    return formats.subtitle_cues(result["chunks"], None, options.max_cue_seconds)


def write_result(path: str, result: dict, options: argparse.Namespace, several: bool) -> None:
    """Prints (text, jsonl) or writes (srt, vtt) one file's transcript."""
    if options.output_format == "jsonl":
        chunks = segment_records(result.get("segments", result["chunks"]))
        row = {"path": path, "text": result["text"], "confidence": result.get("confidence"), "chunks": chunks}
        if "segments" in result:
            row["words"] = word_records(result["chunks"])
        print(json.dumps(row, ensure_ascii=False), flush=True)
    elif options.output_format in ("srt", "vtt"):
        target = Path(options.output_dir) / (Path(path).stem + "." + options.output_format)
        target.parent.mkdir(parents=True, exist_ok=True)
        writer = to_srt if options.output_format == "srt" else to_vtt
        target.write_text(writer(subtitle_cues(result, options)), encoding="utf-8")
        print(target, flush=True)
    elif several:
        print(f"{path}\t{result['text']}", flush=True)
    else:
        print(result["text"], flush=True)


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

    import torch
    from transformers import pipeline

    import transformers_fireredasr  # noqa: F401 - registers the FireRedASR classes

    from .conversion.resolve import resolve_model

    if options.no_progress:  # transformers' own bars too ("Loading weights")
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    asr = pipeline(
        "automatic-speech-recognition",
        model=resolve_model(model),  # an original release folder or Hub id: its cached conversion
        device=options.device,
        dtype=getattr(torch, options.dtype),
        model_kwargs=pipeline_model_kwargs(
            options.quantize, compile_device=options.device if options.compile else None
        ),
    )
    try:
        check_quantized(asr.model, options.quantize)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    call_kwargs = pipeline_call_kwargs(
        options.num_beams,
        options.hotwords,
        options.max_segment_seconds,
        options.merge_segments_seconds,
        compile_device=options.device if options.compile else None,
    )
    if options.output_format != "text":
        call_kwargs["return_timestamps"] = True
    has_ctc_head = can_time_words(asr.model)
    if options.timestamps != "segment" and options.output_format == "text":
        print("error: --timestamps word/char needs --output-format jsonl (or srt/vtt)", file=sys.stderr)
        return 2
    if options.timestamps != "segment":
        if not has_ctc_head:
            print(
                f"error: --timestamps {options.timestamps} times words by CTC forced alignment, and this model has "
                "no CTC head (FireRedASR2-AED and the bundled demo have one): use --timestamps segment",
                file=sys.stderr,
            )
            return 2
        call_kwargs["return_timestamps"] = options.timestamps
    elif options.output_format in ("srt", "vtt") and has_ctc_head:
        call_kwargs["return_timestamps"] = "word"  # cues cut at the pauses between words

    failures: list[str] = []
    # The bar counts seconds of audio; its total grows as each group of files is read (audio is read per group, so
    # hours of recordings are never all in memory). Without a terminal it stays quiet.
    progress = tqdm(
        total=0, unit="s", desc="transcribing", file=sys.stderr, disable=True if options.no_progress else None
    )
    if hasattr(asr, "progress_callback"):
        asr.progress_callback = lambda seconds: progress.update(round(seconds, 2))
    several = len(options.audio) > 1
    for start in range(0, len(options.audio), options.batch_size):
        batch = []
        for path in options.audio[start : start + options.batch_size]:
            try:
                batch.append((path, read_audio(path)))
            except ValueError as error:
                failures.append(str(error))
        progress.total = round(progress.total + sum(len(audio) for _, audio in batch) / SAMPLING_RATE, 2)
        progress.refresh()
        results = transcribe_batch(asr, batch, options.batch_size, call_kwargs, failures)
        for (path, _), result in zip(batch, results, strict=True):
            if result is not None:
                write_result(path, result, options, several)
    progress.close()
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
