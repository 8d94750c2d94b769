"""Archive runs: files per second of today's `fireredasr-transcribe FILE...` and of a pooled run
(`--manifest ... --output-dir RUN`), side by side, same transcripts.

Workload: `--files` held-out sentences of the demo corpus (default 200), synthesized with espeak-ng in random voices
(about 1-5 s each: short files, where per-file batching wastes most), as 16 kHz wav files, transcribed with the
bundled demo model (or `--model`). Each measurement is one command run end to end in a fresh process, as a user runs
it: the file-list CLI (`--batch-size`, default 8, files read one by one in the main process) and a pooled run of the
same files from a manifest (segments pooled across files into batches of `--batch-seconds`, files decoded and
segmented by `--num-workers` DataLoader workers), into a fresh run folder. The two are run alternately `--rounds`
times after a warm-up of each; the table gives the median wall seconds and files per second of each, their ratio,
the share of the CPUs other processes used (above 5 % a WARNING: repeat on a quieter machine), and whether every
transcript of the run equals the CLI's for that file (exit status 1 otherwise).

    python benchmarks/bench_batch_pooling.py --files 200 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import source_revision  # noqa: E402

COLUMNS = ["files", "audio s", "CLI s", "CLI files/s", "pooled s", "pooled files/s", "ratio", "other CPU", "texts"]


def make_files(folder: Path, count: int, seed: int) -> list[Path]:
    """`count` held-out demo-corpus sentences in random voices, as wav files."""
    from transformers_fireredasr.synthetic_corpus import corpus_sentences, random_voice, synthesize

    rng = np.random.default_rng(seed)
    sentences = corpus_sentences(8000, 300, seed=0)[1]
    paths = []
    for index in range(count):
        path = folder / f"clip_{index:04d}.wav"
        synthesize(sentences[index % len(sentences)], path, random_voice(rng), seed=index)
        paths.append(path)
    return paths


def busy_cpu_seconds() -> float:
    """CPU seconds all processes used so far (every CPU, /proc/stat minus idle and iowait)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children and theirs (ffmpeg, DataLoader workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str]) -> tuple[float, float, str]:
    """(wall seconds, share of the CPUs that other processes used meanwhile, stdout) of one command."""
    busy, ours, start = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({result.returncode}):\n{result.stderr[-2000:]}")
    other = (busy_cpu_seconds() - busy) - (children_cpu_seconds() - ours)
    return wall, max(0.0, other / (wall * (os.cpu_count() or 1))), result.stdout


def cli_command(options, paths: list[Path]) -> list[str]:
    model = ["--model", options.model] if options.model else []
    return [sys.executable, "-m", "transformers_fireredasr.cli", *map(str, paths), "--batch-size",
            str(options.batch_size), "--no-progress", *model]  # fmt: skip


def run_command(options, manifest: Path, run_dir: Path) -> list[str]:
    model = ["--model", options.model] if options.model else []
    return [sys.executable, "-m", "transformers_fireredasr.cli", "--manifest", str(manifest), "--output-dir",
            str(run_dir), "--batch-seconds", str(options.batch_seconds), "--num-workers", str(options.num_workers),
            "--no-progress", *model]  # fmt: skip


def run_texts(run_dir: Path) -> dict[str, str]:
    """The texts of a run's part files, by id (the path)."""
    texts = {}
    for part in (run_dir / "parts").glob("*.jsonl"):
        for line in part.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            texts[record["id"]] = record["text"]
    return texts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="the CLI's --batch-size (its default: 8)")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="the run's --batch-seconds")
    parser.add_argument("--num-workers", type=int, default=1, help="the run's --num-workers")
    parser.add_argument("--model", help="model folder (default: the bundled demo)")
    parser.add_argument("--seed", type=int, default=2029)
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed first round (tests)")
    parser.add_argument("--json", help="also write the results here")
    options = parser.parse_args(argv)
    if options.files < 1 or options.rounds < 1:
        parser.error("--files and --rounds must be >= 1")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench_batch_pooling_"))
    try:
        return measure(options, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(options, folder: Path) -> int:
    from transformers_fireredasr.batch.inputs import wav_seconds

    paths = make_files(folder, options.files, options.seed)
    audio = sum(wav_seconds(path) for path in paths)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p)}) + "\n" for p in paths))
    cores = os.cpu_count() or 1
    walls: dict[str, list[float]] = {"cli": [], "pooled": []}
    others: list[float] = []
    cli_texts, pooled_texts = {}, {}
    first = 1 if options.no_warm_up else 0
    for round_index in range(first, options.rounds + 1):  # round 0 warms the page cache and both code paths
        for name in ("cli", "pooled"):
            run_dir = folder / f"run_{round_index}"
            command = cli_command(options, paths) if name == "cli" else run_command(options, manifest, run_dir)
            wall, other, out = timed(command)
            if name == "cli":
                cli_texts = dict(line.split("\t", 1) for line in out.splitlines())
            else:
                pooled_texts = run_texts(run_dir)
                shutil.rmtree(run_dir)
            if round_index:
                walls[name].append(wall)
                others.append(other)
            print(f"round {round_index} {name}: {wall:.2f} s", file=sys.stderr, flush=True)
    same = cli_texts == pooled_texts and len(cli_texts) == len(paths)
    cli_s, pooled_s = statistics.median(walls["cli"]), statistics.median(walls["pooled"])
    row = {
        "files": len(paths),
        "audio s": round(audio, 1),
        "CLI s": round(cli_s, 2),
        "CLI files/s": round(len(paths) / cli_s, 2),
        "pooled s": round(pooled_s, 2),
        "pooled files/s": round(len(paths) / pooled_s, 2),
        "ratio": round(cli_s / pooled_s, 2),
        "other CPU": f"{max(others):.0%}",
        "texts": "identical" if same else "DIFFER",
    }
    if max(others) > 0.05:
        print(f"WARNING: other processes used up to {max(others):.0%} of the CPUs; repeat on a quieter machine")
    print(environment(options, cores))
    print(
        f"per-run wall seconds: CLI {[round(w, 2) for w in walls['cli']]}, pooled {[round(w, 2) for w in walls['pooled']]}"
    )
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS))
    print("| " + " | ".join(str(row[column]) for column in COLUMNS) + " |")
    if options.json:
        Path(options.json).write_text(json.dumps({"row": row, "walls": walls}, indent=2) + "\n")
    if not same:
        for path, text in cli_texts.items():
            if pooled_texts.get(path) != text:
                print(f"DIFFER {path}: CLI {text!r}, pooled {pooled_texts.get(path)!r}")
        return 1
    return 0


def environment(options, cores: int) -> str:
    import torch
    import transformers

    return (
        f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {cores} CPUs "
        f"({platform.processor() or platform.machine()}); torch {torch.__version__}, transformers "
        f"{transformers.__version__}, python {platform.python_version()}; {source_revision()}\n"
        f"CLI: --batch-size {options.batch_size}; pooled: --batch-seconds {options.batch_seconds:g} "
        f"--num-workers {options.num_workers}; model {options.model or 'bundled demo'}"
    )


if __name__ == "__main__":
    sys.exit(main())
