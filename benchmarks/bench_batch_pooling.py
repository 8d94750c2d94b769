"""Archive runs: files per second of today's `fireredasr-transcribe FILE...` path and of the pooled path of
`--manifest ... --output-dir RUN`, side by side, same transcripts.

Workload: `--files` held-out sentences of the demo corpus (default 200), synthesized with espeak-ng in random voices
(about 1-5 s each: short files, where per-file batching wastes most), as 16 kHz wav files, transcribed with the
bundled demo model (or `--model`), on the CPU. Two workloads, each measured alternately `--rounds` times after a
warm-up round:

- in process, one loaded pipeline: the CLI's loop (files read in groups of `--batch-size`, default 8, each group one
  pipeline call: `cli.read_audio` + `cli.transcribe_batch`) against `batch.pooled.PooledTranscriber` (segments
  pooled across files into batches of `--batch-seconds` of padded audio, files decoded and segmented by
  `--num-workers` DataLoader workers). This is the batching itself.
- end to end, fresh processes as a user runs them: `fireredasr-transcribe FILE... --batch-size 8` against
  `fireredasr-transcribe --manifest M --output-dir RUN` into a fresh run folder (start-up, model loading, part
  files and run.json included; `--no-end-to-end` skips it).

The table gives per workload the median wall seconds and files per second of each, their ratio, the ratio of the
best runs (less sensitive to a busy machine), the largest share of the CPUs other processes used during a run
(above 5 %: a WARNING, repeat on a quieter machine), and whether every transcript equals the CLI's for that file
(exit status 1 otherwise).

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


def timed_command(command: list[str]) -> str:
    """The stdout of one command run to its end (an error with its stderr if it fails)."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


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
    parser.add_argument("--batch-seconds", type=float, default=120.0, help="the run's --batch-seconds")
    parser.add_argument("--num-workers", type=int, default=0, help="the run's --num-workers (0: its CPU default)")
    parser.add_argument("--model", help="model folder (default: the bundled demo)")
    parser.add_argument("--seed", type=int, default=2029)
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed first round (tests)")
    parser.add_argument("--no-end-to-end", action="store_true", help="only the in-process loops")
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


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children so far."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class InProcess:
    """The two transcription loops with one loaded pipeline: the CLI's (files read in groups of --batch-size, each
    group one pipeline call, `cli.transcribe_batch`) and the pooled one (`batch.pooled.PooledTranscriber`)."""

    def __init__(self, options, paths: list[Path]):
        import torch
        from transformers import pipeline

        from transformers_fireredasr import cli
        from transformers_fireredasr.batch.inputs import Item, wav_seconds
        from transformers_fireredasr.batch.sources import AudioReader, InputSpec

        self.cli, self.options, self.paths = cli, options, paths
        model = options.model or str(cli.bundled_model_dir())
        self.pipe = pipeline("automatic-speech-recognition", model=model, device="cpu", dtype=torch.float32)
        self.items = [Item(str(p), str(p), wav_seconds(p) or 0.0) for p in paths]
        self.reader = AudioReader(InputSpec("files", ""))

    def run_cli(self) -> dict[str, str]:
        texts, failures = {}, []
        size = self.options.batch_size
        for start in range(0, len(self.paths), size):
            batch = [(str(p), self.cli.read_audio(str(p))) for p in self.paths[start : start + size]]
            results = self.cli.transcribe_batch(self.pipe, batch, size, {"generate_kwargs": {}}, failures)
            texts.update((path, result["text"]) for (path, _), result in zip(batch, results, strict=True))
        return texts

    def run_pooled(self) -> dict[str, str]:
        from transformers_fireredasr.batch.pooled import PooledTranscriber

        pooled = PooledTranscriber(
            self.pipe, self.reader, {"generate_kwargs": {}}, self.options.batch_seconds, self.options.num_workers
        )
        return {item.id: result["text"] for item, result, _, _ in pooled.transcribe(self.items)}


def timed_call(call) -> tuple[float, float, dict]:
    """(wall seconds, share of the CPUs that other processes used meanwhile, result) of one call."""
    busy, ours, start = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    result = call()
    wall = time.perf_counter() - start
    other = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - ours)
    return wall, max(0.0, other / (wall * (os.cpu_count() or 1))), result


def alternate(calls: dict, rounds: int, warm_up: bool, label: str) -> tuple[dict, dict, list[float]]:
    """Runs the calls alternately; returns per-call wall times, last results, and other processes' CPU shares."""
    walls: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, dict] = {}
    others: list[float] = []
    for round_index in range(0 if warm_up else 1, rounds + 1):  # round 0 warms caches and both code paths
        for name, call in calls.items():
            wall, other, results[name] = timed_call(call)
            if round_index:
                walls[name].append(wall)
                others.append(other)
            print(f"{label} round {round_index} {name}: {wall:.2f} s", file=sys.stderr, flush=True)
    return walls, results, others


def table_row(workload: str, paths: list[Path], audio: float, walls: dict, others: list[float], same: bool) -> dict:
    cli_s, pooled_s = statistics.median(walls["cli"]), statistics.median(walls["pooled"])
    return {
        "workload": workload,
        "files": len(paths),
        "audio s": round(audio, 1),
        "CLI s": round(cli_s, 2),
        "CLI files/s": round(len(paths) / cli_s, 2),
        "pooled s": round(pooled_s, 2),
        "pooled files/s": round(len(paths) / pooled_s, 2),
        "ratio": round(cli_s / pooled_s, 2),
        "ratio of best": round(min(walls["cli"]) / min(walls["pooled"]), 2),
        "other CPU": f"{max(others):.0%}",
        "texts": "identical" if same else "DIFFER",
    }


def measure(options, folder: Path) -> int:
    from transformers_fireredasr.batch.inputs import wav_seconds

    paths = make_files(folder, options.files, options.seed)
    audio = sum(wav_seconds(path) for path in paths)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p)}) + "\n" for p in paths))
    rows, walls_by, failures = [], {}, []

    loops = InProcess(options, paths)
    calls = {"cli": loops.run_cli, "pooled": loops.run_pooled}
    walls, results, others = alternate(calls, options.rounds, not options.no_warm_up, "in process")
    same = results["cli"] == results["pooled"] and len(results["cli"]) == len(paths)
    rows.append(table_row("in process (loaded model)", paths, audio, walls, others, same))
    walls_by["in process"] = walls
    failures += [] if same else [(results["cli"], results["pooled"])]

    if not options.no_end_to_end:

        def cli_run() -> dict[str, str]:
            return dict(line.split("\t", 1) for line in timed_command(cli_command(options, paths)).splitlines())

        def pooled_run() -> dict[str, str]:
            run_dir = folder / "run"
            timed_command(run_command(options, manifest, run_dir))
            texts = run_texts(run_dir)
            shutil.rmtree(run_dir)
            return texts

        calls = {"cli": cli_run, "pooled": pooled_run}
        walls, results, others = alternate(calls, options.rounds, not options.no_warm_up, "end to end")
        same = results["cli"] == results["pooled"] and len(results["cli"]) == len(paths)
        rows.append(table_row("end to end (fresh process)", paths, audio, walls, others, same))
        walls_by["end to end"] = walls
        failures += [] if same else [(results["cli"], results["pooled"])]

    print(environment(options, os.cpu_count() or 1))
    for label, walls in walls_by.items():
        print(
            f"{label}, per-run wall seconds: " + ", ".join(f"{k} {[round(w, 2) for w in v]}" for k, v in walls.items())
        )
    if any(float(row["other CPU"].rstrip("%")) > 5 for row in rows):
        print("WARNING: other processes used more than 5 % of the CPUs during a run; repeat on a quieter machine")
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[column]) for column in columns) + " |")
    if options.json:
        Path(options.json).write_text(json.dumps({"rows": rows, "walls": walls_by}, indent=2) + "\n")
    for cli_texts, pooled_texts in failures:
        for path, text in cli_texts.items():
            if pooled_texts.get(path) != text:
                print(f"DIFFER {path}: CLI {text!r}, pooled {pooled_texts.get(path)!r}")
    return 1 if failures else 0


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
