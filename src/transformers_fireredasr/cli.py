"""`fireredasr-transcribe`: transcribe audio files from the command line with any FireRedASR model folder or Hub id.

Audio in any format and sampling rate ffmpeg reads is decoded to 16 kHz mono. A file that cannot be read or
transcribed is reported on stderr and the others are still transcribed; any failure makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SAMPLING_RATE = 16000


def bundled_model_dir() -> Path | None:
    """The demo model shipped inside the package, when this build has one."""
    folder = Path(__file__).parent / "demo"
    return folder if (folder / "config.json").is_file() else None


def read_audio(path: str) -> np.ndarray:
    """Decodes `path` to float32 mono 16 kHz with ffmpeg; raises ValueError naming the file when that fails."""
    from transformers.pipelines.audio_utils import ffmpeg_read

    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{path}: no such file")
    data = file.read_bytes()
    if not data:
        raise ValueError(f"{path}: the file is empty")
    try:
        audio = ffmpeg_read(data, SAMPLING_RATE)
    except ValueError as error:
        raise ValueError(f"{path}: not readable as audio ({error})") from error
    if audio.size == 0:
        raise ValueError(f"{path}: not readable as audio (ffmpeg decoded no samples)")
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: the audio contains NaN or infinite samples")
    return audio


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fireredasr-transcribe", description=__doc__)
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac, mp3, ... at any sampling rate)")
    parser.add_argument("--model", help="model folder or Hub id (default: the bundled demo model)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-beams", type=int, default=None, help="default: the model's generation config")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--output-format", default="text", choices=["text", "jsonl"])
    options = parser.parse_args(argv)
    if options.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    model = options.model or bundled_model_dir()
    if model is None:
        print("error: this build ships no demo model; pass --model DIR_OR_HUB_ID", file=sys.stderr)
        return 2

    import torch
    from transformers import pipeline

    import transformers_fireredasr  # noqa: F401 - registers the FireRedASR classes

    asr = pipeline(
        "automatic-speech-recognition", model=str(model), device=options.device, dtype=getattr(torch, options.dtype)
    )
    generate_kwargs = {} if options.num_beams is None else {"num_beams": options.num_beams}

    failures, readable = [], []
    for path in options.audio:
        try:
            readable.append((path, read_audio(path)))
        except ValueError as error:
            failures.append(str(error))
    for start in range(0, len(readable), options.batch_size):
        batch = readable[start : start + options.batch_size]
        try:
            results = asr([audio for _, audio in batch], batch_size=len(batch), generate_kwargs=generate_kwargs)
        except Exception:  # one bad item must not lose the batch: retry the files one by one
            results = []
            for path, audio in batch:
                try:
                    results.append(asr(audio, generate_kwargs=generate_kwargs))
                except Exception as error:
                    failures.append(f"{path}: transcription failed ({error})")
                    results.append(None)
        for (path, _), result in zip(batch, results, strict=True):
            if result is None:
                continue
            if options.output_format == "jsonl":
                print(json.dumps({"path": path, "text": result["text"]}, ensure_ascii=False), flush=True)
            elif len(options.audio) == 1:
                print(result["text"], flush=True)
            else:
                print(f"{path}\t{result['text']}", flush=True)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
