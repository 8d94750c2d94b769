"""Dynamic batching in `fireredasr-serve`: requests per second with batching on and off, side by side, same texts.

Workload: `--clips` held-out sentences of the demo corpus, synthesized with espeak-ng in random voices (about 2-5 s
each, one speech segment each), sent as 16 kHz wav uploads by `--clients` concurrent clients (threads, one HTTP
connection each) to `POST /v1/audio/transcriptions` (response_format json), `--requests` requests per measurement.
Two servers run the same model: one with `--max-batch-size N --max-wait-ms W` (batching on) and one with
`--max-batch-size 1` (batching off). After a warm-up, the two are measured alternately `--rounds` times; the table
gives the median requests per second of each, the ratio, the mean batch size the batched server formed, and
whether every text equals what the unbatched server gave for that clip when sent alone (exit status 1 otherwise).

`--model` serves a model folder (default: the bundled demo model, 2.5M parameters). `--random-size small` serves a
randomly initialised AED of the `small` preset of bench_speed.py (d_model 512, 6+6 layers, 72M parameters) with the
demo's processor and a decoding cap of `--max-new-tokens`: a model whose decoding costs what a real model's does;
`--random-size L` does the same at the published FireRedASR-AED-L size (1.1B parameters, 4.6 GB per server).

    python benchmarks/bench_serving.py --clients 8 --requests 64 --rounds 3
    python benchmarks/bench_serving.py --random-size small --clients 8 --requests 32 --rounds 3
    python benchmarks/bench_serving.py --random-size L --clients 8 --requests 32 --rounds 3
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import source_revision  # noqa: E402
from transformers_fireredasr import demo_model_dir  # noqa: E402
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402

COLUMNS = ["model", "clients", "requests", "batching off req/s", "batching on req/s", "ratio", "mean batch", "texts"]


def make_clips(folder: Path, count: int, seed: int) -> list[bytes]:
    """`count` held-out demo-corpus sentences in random voices, as wav bytes."""
    from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize

    rng = np.random.default_rng(seed)
    sentences = corpus_sentences(8000, 300, seed=0)[1][-count:]
    paths = [folder / f"clip_{index}.wav" for index in range(count)]
    for index, (sentence, path) in enumerate(zip(sentences, paths, strict=True)):
        synthesize(sentence, path, random_voice(rng), seed=index)
    return [path.read_bytes() for path in paths]


def build_random_model(folder: Path, size: str, max_new_tokens: int, seed: int = 0) -> Path:
    """A random AED at a bench_speed.py preset, with the demo's processor; decoding capped at `max_new_tokens`."""
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    import transformers_fireredasr  # noqa: F401
    from benchmarks.bench_speed import SIZES

    demo = demo_model_dir()
    preset = SIZES[size]
    config = AutoModelForSpeechSeq2Seq.from_pretrained(demo).config
    config.d_model = preset["d_model"]
    config.decoder_layers, config.decoder_attention_heads = preset["n_layers_dec"], preset["n_head"]
    config.decoder_ffn_dim = 4 * preset["d_model"]
    encoder = config.encoder_config
    encoder.hidden_size, encoder.num_hidden_layers = preset["d_model"], preset["n_layers_enc"]
    encoder.num_attention_heads, encoder.intermediate_size = preset["n_head"], 4 * preset["d_model"]
    torch.manual_seed(seed)
    model = AutoModelForSpeechSeq2Seq.from_config(config)
    with torch.no_grad():  # a decoder that emits varied, input-dependent tokens (see bench_speed.py)
        model.get_output_embeddings().weight.normal_(0.0, preset["d_model"] ** -0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(torch.randn_like(module.weight) * 0.1)
    model.generation_config.max_new_tokens = max_new_tokens
    model.save_pretrained(folder)
    AutoProcessor.from_pretrained(demo).save_pretrained(folder)
    return folder


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the given processes and their finished children (ffmpeg) so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += sum(int(value) for value in fields[11:15])  # utime, stime and those of waited-for children
    return total / ticks


def busy_cpu_seconds() -> float:
    """CPU seconds all processes used so far (every CPU, /proc/stat minus idle and iowait)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class Load:
    """Clients: `clients` threads sending `requests` requests in all, clip `i % len(clips)` for request i."""

    def __init__(self, url: str, model: str, clips: list[bytes], clients: int, requests: int) -> None:
        self.url, self.model, self.clips, self.clients, self.requests = url, model, clips, clients, requests

    def _client(self, indices: list[int], texts: dict[int, str]) -> None:
        with httpx.Client(timeout=600) as http:
            for index in indices:
                clip = index % len(self.clips)
                response = http.post(
                    f"{self.url}/v1/audio/transcriptions",
                    data={"model": self.model},
                    files={"file": (f"clip{clip}.wav", self.clips[clip], "audio/wav")},
                )
                response.raise_for_status()
                texts[index] = response.json()["text"]

    def run(self) -> tuple[float, dict[int, str]]:
        """Wall seconds for all requests, and each request's text."""
        texts: dict[int, str] = {}
        shares = [list(range(start, self.requests, self.clients)) for start in range(self.clients)]
        threads = [threading.Thread(target=self._client, args=(share, texts)) for share in shares]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - begin
        if len(texts) != self.requests:
            raise RuntimeError(f"{self.requests - len(texts)} requests failed")
        return wall, texts


def alone(url: str, model: str, clips: list[bytes]) -> list[str]:
    """Each clip's text when it is the only request."""
    with httpx.Client(timeout=600) as http:
        texts = []
        for index, clip in enumerate(clips):
            response = http.post(
                f"{url}/v1/audio/transcriptions", data={"model": model}, files={"file": (f"c{index}.wav", clip)}
            )
            response.raise_for_status()
            texts.append(response.json()["text"])
    return texts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled demo model)")
    parser.add_argument(
        "--random-size",
        choices=["tiny", "small", "XS", "S", "M", "L"],
        help="serve a random AED of this bench_speed.py preset (L: the published size)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=20, help="decoding cap of the random model")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="both servers' --dtype")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=64, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each setting, alternating")
    parser.add_argument("--clips", type=int, default=16, help="distinct clips")
    parser.add_argument("--max-batch-size", type=int, default=8, help="of the batched server")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="of the batched server")
    parser.add_argument("--seed", type=int, default=2028)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = make_clips(folder, options.clips, options.seed)
        seconds = [(len(clip) - 44) / 32000 for clip in clips]
        if options.random_size:
            model = str(build_random_model(folder / "model", options.random_size, options.max_new_tokens))
            label = f"random {options.random_size} (max {options.max_new_tokens} tokens)"
        else:
            model = options.model or str(demo_model_dir())
            label = "demo" if options.model is None else Path(model).name
        common = ["--model", model, "--served-model-name", "bench", "--no-access-log", "--dtype", options.dtype]
        common += ["--max-queue", str(max(64, 2 * options.clients))]
        batched_args = ["--max-batch-size", str(options.max_batch_size), "--max-wait-ms", str(options.max_wait_ms)]
        with (
            ServerProcess([*common, "--max-batch-size", "1"]) as off,
            ServerProcess([*common, *batched_args]) as on,
        ):
            print(
                f"clips: {len(clips)}, {min(seconds):.2f}-{max(seconds):.2f} s (mean {statistics.mean(seconds):.2f} s)"
            )
            reference = alone(off.url, "bench", clips)
            failures = []
            if alone(on.url, "bench", clips) != reference:
                failures.append("the batched server gives other texts for clips sent alone")
            loads = {
                name: Load(server.url, "bench", clips, options.clients, options.requests)
                for name, server in (("off", off), ("on", on))
            }
            for load in loads.values():  # warm-up
                load.run()
            rates: dict[str, list[float]] = {"off": [], "on": []}
            before_batches = on.health()
            pids = [off.process.pid, on.process.pid, os.getpid()]
            for round_index in range(options.rounds):
                for name in ("off", "on") if round_index % 2 == 0 else ("on", "off"):
                    busy, ours = busy_cpu_seconds(), cpu_seconds(pids)
                    wall, texts = loads[name].run()
                    others = (busy_cpu_seconds() - busy) - (cpu_seconds(pids) - ours)
                    rate = options.requests / wall
                    rates[name].append(rate)
                    print(
                        f"round {round_index + 1} batching {name}: {wall:.2f} s, {rate:.2f} req/s; other processes' CPU {max(others, 0) / wall:.0%} of one core"
                    )
                    wrong = [i for i, text in texts.items() if text != reference[i % len(clips)]]
                    if wrong:
                        failures.append(f"batching {name}: requests {wrong} got other texts than their clip alone")
            after = on.health()
            batches = after["batches"] - before_batches["batches"]
            mean_batch = (options.rounds * options.requests) / batches if batches else float("nan")
        off_rate, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
        row = [
            label, str(options.clients), str(options.requests), f"{off_rate:.2f}", f"{on_rate:.2f}",
            f"{on_rate / off_rate:.2f}x", f"{mean_batch:.2f}", "identical" if not failures else "DIFFER",
        ]  # fmt: skip
    print()
    print(
        f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}; package {source_revision()}"
    )
    print(
        f"both servers --dtype {options.dtype}; batched server: --max-batch-size {options.max_batch_size} "
        f"--max-wait-ms {options.max_wait_ms:g}"
    )
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n| " + " | ".join(row) + " |")
    if failures:
        print("\nTEXTS DIFFER:\n" + "\n".join(failures))
        return 1
    print("\nall texts identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
