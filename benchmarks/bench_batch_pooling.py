"""Archive runs: files per second of today's `fireredasr-transcribe FILE...` path and of the pooled path of
`--manifest ... --output-dir RUN`, side by side, same transcripts.

Workload: `--files` held-out sentences of the demo corpus (default 200), synthesized with espeak-ng in random voices
(about 1-5 s each: short files, where per-file batching wastes most), as 16 kHz wav files, transcribed with the
bundled demo model (or `--model`), on the CPU. Two workloads, each measured alternately `--rounds` times after a
warm-up round:

- in process, one loaded engine: the CLI's loop (files read in groups of `--batch-size`, default 8, each group's
  segments decoded together: `Engine.transcribe_many` as `fireredasr-transcribe` calls it) against
  `batch.pooled.PooledTranscriber` (segments
  pooled across files into batches of `--batch-seconds` of padded audio, files decoded and segmented by
  `--num-workers` DataLoader workers). This is the batching itself.
- in process, `--ranks` local ranks (default 2; 0 skips): the same pooled loop in that many processes of
  `--rank-threads` torch threads each (default: the CPUs shared out), each with its share of the files as a run
  under `torchrun` computes it (`batch.shards.share`), models loaded and warmed up before the clock starts; the
  wall time is from starting every rank to the last one finishing. On a CPU, a small model's decoding steps use a
  second thread poorly, so one rank per core does more than one process with every core.
- end to end, fresh processes as a user runs them: `fireredasr-transcribe FILE... --batch-size 8` against
  `fireredasr-transcribe --manifest M --output-dir RUN` into a fresh run folder (start-up, model loading, part
  files and run.json included) and against `torchrun --standalone --nproc_per_node RANKS` of the same command
  (`OMP_NUM_THREADS` set to `--rank-threads`); `--no-end-to-end` skips these.

The table gives per workload the median wall seconds and files per second of the CLI and of the pooled path, their
ratio, the ratio of the best runs (less sensitive to a busy machine), the largest share of the CPUs other processes used during a run
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
    from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize

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


def timed_command(command: list[str], env: dict[str, str] | None = None) -> str:
    """The stdout of one command run to its end (an error with its stderr if it fails)."""
    result = subprocess.run(command, capture_output=True, text=True, env=env)
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


def torchrun_command(options, manifest: Path, run_dir: Path) -> list[str]:
    """`run_command` under `torchrun`, one process per `--ranks`."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(options.ranks)]
    return [*launcher, *run_command(options, manifest, run_dir)[1:]]


def rank_env(options) -> dict[str, str]:
    """The environment of a local rank: `--rank-threads` threads (torchrun's own default would be 1)."""
    return {**os.environ, "OMP_NUM_THREADS": str(options.rank_threads)}


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
    parser.add_argument("--ranks", type=int, default=2, help="local ranks of the ranks workloads (0: skip them)")
    parser.add_argument("--rank-threads", type=int, default=0, help="torch threads per rank (0: the CPUs shared out)")
    parser.add_argument("--model", help="model folder (default: the bundled demo)")
    parser.add_argument("--seed", type=int, default=2029)
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed first round (tests)")
    parser.add_argument("--no-end-to-end", action="store_true", help="only the in-process loops")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rank-worker", help=argparse.SUPPRESS)  # I/N: run as local rank I of N (LocalRanks)
    parser.add_argument("--worker-manifest", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.files < 1 or options.rounds < 1:
        parser.error("--files and --rounds must be >= 1")
    if options.ranks < 0 or options.rank_threads < 0:
        parser.error("--ranks and --rank-threads must be >= 0")
    options.rank_threads = options.rank_threads or max(1, (os.cpu_count() or 1) // max(options.ranks, 1))
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if options.rank_worker:
        return rank_worker(options)
    folder = Path(tempfile.mkdtemp(prefix="bench_batch_pooling_"))
    try:
        return measure(options, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Local ranks still running (LocalRanks): their CPU time is ours, not other processes'.
LIVE_CHILDREN: list[int] = []


def own_cpu_seconds() -> float:
    """CPU seconds of this process, its finished children and its live local ranks so far."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for pid in LIVE_CHILDREN:
        with open(f"/proc/{pid}/stat") as stat:  # utime and stime: fields 14 and 15, after the ")" of the name
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class InProcess:
    """The two transcription loops with one loaded engine: the CLI's (files read in groups of --batch-size, each
    group's segments decoded together) and the pooled one (`batch.pooled.PooledTranscriber`)."""

    def __init__(self, options, paths: list[Path]):
        import transformers_fireredasr
        from transformers_fireredasr import cli
        from transformers_fireredasr.batch.inputs import Item, wav_seconds
        from transformers_fireredasr.batch.sources import AudioReader, InputSpec
        from transformers_fireredasr.engine import Engine

        self.cli, self.options, self.paths = cli, options, paths
        model = options.model or str(transformers_fireredasr.demo_model_dir())
        self.engine = Engine.from_pretrained(model, {"device": "cpu", "dtype": "float32"})
        self.items = [Item(str(p), str(p), wav_seconds(p) or 0.0) for p in paths]
        self.reader = AudioReader(InputSpec("files", ""))

    def run_cli(self) -> dict[str, str]:
        from transformers_fireredasr.engine import TranscribeOptions

        size = self.options.batch_size
        inputs = ((str(p), self.cli.read_audio(str(p))) for p in self.paths)
        outcomes = self.engine.transcribe_many(inputs, TranscribeOptions(), batch_size=size, pool_inputs=size)
        return {outcome.key: outcome.result["text"] for outcome in outcomes}

    def run_pooled(self) -> dict[str, str]:
        from transformers_fireredasr.batch.pooled import PooledTranscriber
        from transformers_fireredasr.engine import TranscribeOptions

        pooled = PooledTranscriber(
            self.engine, self.reader, TranscribeOptions(), self.options.batch_seconds, self.options.num_workers
        )
        return {item.id: result["text"] for item, result, _, _ in pooled.transcribe(self.items)}


def rank_worker(options) -> int:
    """Local rank `--rank-worker I/N` of `LocalRanks`: loads the pipeline, takes its share of the manifest's files,
    warms up, says it is ready, then transcribes its share for every `run` line on stdin and answers with the texts
    (each answer one stdout line starting with `REPLY`)."""
    import torch

    from transformers_fireredasr.batch.shards import parse_shard, share

    torch.set_num_threads(options.rank_threads)
    lines = Path(options.worker_manifest).read_text(encoding="utf-8").splitlines()
    loops = InProcess(options, [Path(json.loads(line)["audio_filepath"]) for line in lines])
    loops.items = share(loops.items, parse_shard(options.rank_worker))
    loops.run_pooled()
    print(REPLY, json.dumps({"ready": True}), flush=True)
    for command in sys.stdin:
        if command.strip() != "run":
            break
        print(REPLY, json.dumps(loops.run_pooled(), ensure_ascii=False), flush=True)
    return 0


REPLY = "REPLY"


class LocalRanks:
    """`--ranks` processes of this script, each a loaded pipeline with its share of the files (`rank_worker`);
    `run()` starts all of them at once and returns when the last one has finished, with every rank's texts."""

    def __init__(self, options, manifest: Path):
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True, "env": rank_env(options)}
        self.processes = [
            subprocess.Popen(self._command(options, manifest, rank), **pipes) for rank in range(options.ranks)
        ]
        LIVE_CHILDREN.extend(process.pid for process in self.processes)
        try:
            for process in self.processes:
                self._reply(process)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _command(options, manifest: Path, rank: int) -> list[str]:
        model = ["--model", options.model] if options.model else []
        return [sys.executable, str(Path(__file__).resolve()), "--rank-worker", f"{rank}/{options.ranks}",
                "--worker-manifest", str(manifest), "--rank-threads", str(options.rank_threads), "--batch-seconds",
                str(options.batch_seconds), "--num-workers", str(options.num_workers), *model]  # fmt: skip

    def _reply(self, process: subprocess.Popen) -> dict:
        for line in process.stdout:
            if line.startswith(REPLY + " "):
                return json.loads(line[len(REPLY) + 1 :])
        raise RuntimeError(f"local rank {self.processes.index(process)} exited ({process.wait()}) without a reply")

    def run(self) -> dict[str, str]:
        for process in self.processes:
            process.stdin.write("run\n")
            process.stdin.flush()
        texts: dict[str, str] = {}
        for process in self.processes:
            texts.update(self._reply(process))
        return texts

    def close(self) -> None:
        for process in self.processes:
            if process.pid in LIVE_CHILDREN:
                LIVE_CHILDREN.remove(process.pid)
            if process.poll() is None:
                process.stdin.close()
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()


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


def table_row(workload: str, paths: list[Path], audio: float, cli: list[float], pooled: list[float], others: list[float],
              same: bool) -> dict:  # fmt: skip
    """One table row: the CLI's walls against one pooled variant's, measured alternately in the same rounds."""
    cli_s, pooled_s = statistics.median(cli), statistics.median(pooled)
    return {
        "workload": workload,
        "files": len(paths),
        "audio s": round(audio, 1),
        "CLI s": round(cli_s, 2),
        "CLI files/s": round(len(paths) / cli_s, 2),
        "pooled s": round(pooled_s, 2),
        "pooled files/s": round(len(paths) / pooled_s, 2),
        "ratio": round(cli_s / pooled_s, 2),
        "ratio of best": round(min(cli) / min(pooled), 2),
        "other CPU": f"{max(others):.0%}",
        "texts": "identical" if same else "DIFFER",
    }


def compare(rows: list, failures: list, paths: list[Path], audio: float, measured: tuple, variants: dict) -> None:
    """Adds a table row per pooled variant (`variants`: call name -> workload) of one alternated measurement, and a
    failure where its texts differ from the CLI's."""
    walls, results, others = measured
    for name, workload in variants.items():
        same = results[name] == results["cli"] and len(results["cli"]) == len(paths)
        rows.append(table_row(workload, paths, audio, walls["cli"], walls[name], others, same))
        failures += [] if same else [(workload, results["cli"], results[name])]


def measure(options, folder: Path) -> int:
    from transformers_fireredasr.batch.inputs import wav_seconds

    paths = make_files(folder, options.files, options.seed)
    audio = sum(wav_seconds(path) for path in paths)
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(p)}) + "\n" for p in paths))
    rows, walls_by, failures = [], {}, []
    ranks_label = f"{options.ranks} ranks x {options.rank_threads} thread{'s' * (options.rank_threads != 1)}"

    loops = InProcess(options, paths)
    calls = {"cli": loops.run_cli, "pooled": loops.run_pooled}
    variants = {"pooled": "in process (loaded model)"}
    ranks = LocalRanks(options, manifest) if options.ranks else None
    if ranks is not None:
        calls["ranks"], variants["ranks"] = ranks.run, f"in process, {ranks_label} (loaded models)"
    try:
        measured = alternate(calls, options.rounds, not options.no_warm_up, "in process")
    finally:
        if ranks is not None:
            ranks.close()
    compare(rows, failures, paths, audio, measured, variants)
    walls_by["in process"] = measured[0]

    if not options.no_end_to_end:

        def cli_run() -> dict[str, str]:
            return dict(line.split("\t", 1) for line in timed_command(cli_command(options, paths)).splitlines())

        def pooled_run(command: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
            timed_command(command, env)
            texts = run_texts(folder / "run")
            shutil.rmtree(folder / "run")
            return texts

        calls = {"cli": cli_run, "pooled": lambda: pooled_run(run_command(options, manifest, folder / "run"))}
        variants = {"pooled": "end to end (fresh process)"}
        if options.ranks:
            command = torchrun_command(options, manifest, folder / "run")
            calls["ranks"] = lambda: pooled_run(command, rank_env(options))
            variants["ranks"] = f"end to end, torchrun {ranks_label}"
        measured = alternate(calls, options.rounds, not options.no_warm_up, "end to end")
        compare(rows, failures, paths, audio, measured, variants)
        walls_by["end to end"] = measured[0]

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
    for workload, cli_texts, pooled_texts in failures:
        for path, text in cli_texts.items():
            if pooled_texts.get(path) != text:
                print(f"DIFFER {path} ({workload}): CLI {text!r}, pooled {pooled_texts.get(path)!r}")
    return 1 if failures else 0


def environment(options, cores: int) -> str:
    import torch
    import transformers

    return (
        f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {cores} CPUs "
        f"({platform.processor() or platform.machine()}); torch {torch.__version__}, transformers "
        f"{transformers.__version__}, python {platform.python_version()}; {source_revision()}\n"
        f"CLI: --batch-size {options.batch_size}; pooled: --batch-seconds {options.batch_seconds:g} "
        f"--num-workers {options.num_workers}; ranks: {options.ranks} x {options.rank_threads} threads; "
        f"model {options.model or 'bundled demo'}"
    )


if __name__ == "__main__":
    sys.exit(main())
