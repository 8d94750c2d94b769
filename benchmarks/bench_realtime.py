"""Live transcription (`WS /v1/realtime`) of `fireredasr-serve`: caption latencies of one session, and the lag of
several concurrent sessions over a long stream.

Workload: held-out sentences of the demo corpus, synthesized with espeak-ng in random voices, joined with pauses of
`--pause` seconds into one recording, sent as 24 kHz pcm16 in 100 ms appends by the official `openai` client's
realtime connection, paced by the clock at real time (`--speed` times faster for quick checks), with server_vad turn
detection (`--silence-ms`).

1. One session streams `--utterances` sentences. For each sentence (matched to the item whose speech_started /
   speech_stopped span overlaps it most):
   - first delta: when its first delta arrived, after the sentence's first sample was sent;
   - committed text: each character of the completed transcript that a delta brought is placed at its share of
     the sentence (character i of n at start + (i + 0.5) / n of its duration) and timed from when that audio was
     sent to when its delta arrived (characters brought by `completed` count with that event); p50 and p90 over
     all characters;
   - completed: when `completed` arrived, after the sentence's last sample was sent (this includes the
     `--silence-ms` the server waits to call the end of speech);
   - deltas = completed: the share of sentences whose deltas join to the completed transcript;
   - = HTTP: the share of items whose completed transcript equals `POST /v1/audio/transcriptions` of the same
     audio (the stream resampled as the server resamples it, cut at the item's audio_start_ms and audio_end_ms).
2. `--sessions` sessions stream `--long-minutes` of sentences each, at the same time; the lag of a sentence is when
   its `completed` arrived after its last sample was sent. The table gives the median lag over the first and the
   last `--window-minutes` of the stream: a lag that does not grow means the server keeps up.

`--model` serves a model folder (default: the bundled demo model); `--random-size L` a randomly initialised AED of
the published FireRedASR-AED-L size with the demo's processor (bench_serving.py's `build_random_model`).

    python benchmarks/bench_realtime.py                       # the demo: 20 sentences, then 4 sessions x 10 minutes
    python benchmarks/bench_realtime.py --random-size L --sessions 1 --long-minutes 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import source_revision  # noqa: E402
from transformers_fireredasr import demo_model_dir  # noqa: E402
from transformers_fireredasr.serving.launch import ServerProcess  # noqa: E402
from transformers_fireredasr.serving.realtime.resample import resample_pcm16  # noqa: E402

RATE, SEND_RATE, CHUNK_MS = 16000, 24000, 100
MODEL = "bench"
COLUMNS = [
    "model", "sentences", "first delta p50 s", "committed text p50 s", "committed text p90 s", "completed p50 s",
    "deltas = completed", "= HTTP", "sessions", "minutes", "lag first p50 s", "lag last p50 s", "lag max s",
]  # fmt: skip
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def synthesize_clips(folder: Path, count: int, seed: int) -> list[np.ndarray]:
    """`count` held-out demo-corpus sentences in random voices, 16 kHz float32."""
    from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize

    rng = np.random.default_rng(seed)
    sentences = corpus_sentences(8000, 300, seed=0)[1][:count]
    return [synthesize(s, folder / f"clip_{i}.wav", random_voice(rng), seed=i) for i, s in enumerate(sentences)]


def recording(clips: list[np.ndarray], seconds: float, pause: float, rng) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Clips in turn (cycled) with pauses of faint noise until `seconds`; the sentences' spans in 16 kHz samples."""
    pieces, spans, position, index = [np.zeros(RATE // 2, dtype=np.float32)], [], RATE // 2, 0
    while position < seconds * RATE or not spans:
        clip = clips[index % len(clips)]
        gap = rng.normal(0.0, 0.001, int(rng.uniform(pause, pause + 0.4) * RATE)).astype(np.float32)
        pieces += [clip, gap]
        spans.append((position, position + len(clip)))
        position += len(clip) + len(gap)
        index += 1
    return np.concatenate(pieces), spans


def to_pcm24(audio16: np.ndarray) -> np.ndarray:
    count = len(audio16) * 3 // 2
    spectrum = np.fft.rfft(audio16.astype(np.float64))
    padded = np.zeros(count // 2 + 1, dtype=complex)
    padded[: len(spectrum)] = spectrum
    return np.clip(np.round(np.fft.irfft(padded, n=count) * 1.5 * 32768), -32768, 32767).astype("<i2")


@dataclass
class Stream:
    """One session's run: when it started sending, and the events it received with their arrival times."""

    started: float = 0.0
    speed: float = 1.0
    events: list[tuple[float, dict]] = field(default_factory=list)

    def sent_at(self, sample16: int) -> float:
        return self.started + (sample16 / RATE / self.speed if self.speed > 0 else 0.0)


async def run_session(base_url: str, pcm: np.ndarray, speed: float, silence_ms: int) -> Stream:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="none", max_retries=0)
    result = Stream(speed=speed)
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": SEND_RATE},
                "transcription": {"model": MODEL},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": silence_ms},
            }
        },
    }
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        await connection.session.update(session=session)
        updates = 0
        async for event in connection:
            if event.type == "session.updated":
                break
        loop = asyncio.get_running_loop()

        async def send() -> None:
            step = SEND_RATE * CHUNK_MS // 1000
            result.started = loop.time()
            for begin in range(0, len(pcm), step):
                if speed > 0:  # keep to the clock, whatever the sending took
                    await asyncio.sleep(max(result.started + begin / SEND_RATE / speed - loop.time(), 0))
                chunk = pcm[begin : begin + step].tobytes()
                await connection.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await connection.input_audio_buffer.commit()
            await connection.session.update(session=session)  # answered after every commit was announced

        sender = asyncio.create_task(send())
        committed, completed = set(), set()
        async for event in connection:
            record = event.model_dump(exclude_unset=True)
            result.events.append((loop.time(), record))
            if event.type == "session.updated":
                updates += 1
            elif event.type == "input_audio_buffer.committed":
                committed.add(event.item_id)
            elif event.type in (COMPLETED, "conversation.item.input_audio_transcription.failed"):
                completed.add(event.item_id)
            if updates and committed <= completed:
                break
            if sender.done() and sender.exception() is not None:
                break
        await sender
    return result


def items(stream: Stream) -> dict[str, dict]:
    """Per item: its span (16 kHz samples), its deltas with arrival times, its completed transcript and time."""
    found: dict[str, dict] = {}
    for at, event in stream.events:
        item = found.setdefault(event.get("item_id", ""), {"deltas": [], "span": None, "completed": None})
        if event["type"] == "input_audio_buffer.speech_started":
            item["start"] = event["audio_start_ms"] * 16
        elif event["type"] == "input_audio_buffer.speech_stopped":
            item["span"] = (item.get("start", 0), event["audio_end_ms"] * 16)
        elif event["type"] == DELTA:
            item["deltas"].append((at, event["delta"]))
        elif event["type"] == COMPLETED:
            item["completed"] = (at, event["transcript"])
    found.pop("", None)
    return {key: item for key, item in found.items() if item["span"] and item["completed"]}


def match(spans: list[tuple[int, int]], found: dict[str, dict]) -> list[tuple[tuple[int, int], dict | None]]:
    """Each sentence with the item that overlaps it most (None when no item does)."""
    pairs = []
    for start, end in spans:
        best, overlap = None, 0
        for item in found.values():
            shared = min(end, item["span"][1]) - max(start, item["span"][0])
            if shared > overlap:
                best, overlap = item, shared
        pairs.append(((start, end), best))
    return pairs


def latencies(stream: Stream, spans: list[tuple[int, int]]) -> dict:
    first, chars, done, agree, astray = [], [], [], 0, []
    pairs = match(spans, items(stream))
    for (start, end), item in pairs:
        if item is None:
            continue
        done_at, transcript = item["completed"]
        done.append(done_at - stream.sent_at(end))
        joined = "".join(delta for _, delta in item["deltas"])
        agree += joined == transcript
        if joined != transcript:
            astray.append(f"deltas {joined!r}, completed {transcript!r}")
        if item["deltas"]:
            first.append(item["deltas"][0][0] - stream.sent_at(start))
        arrivals, position = [], 0
        for at, delta in item["deltas"]:
            arrivals += [at] * len(delta)
            position += len(delta)
        if not transcript.startswith(joined):
            arrivals = []  # the deltas went astray: the transcript's characters all came with `completed`
        arrivals += [done_at] * (len(transcript) - len(arrivals))
        for index, at in enumerate(arrivals):
            placed = start + (index + 0.5) / len(transcript) * (end - start)
            chars.append(at - stream.sent_at(int(placed)))
    matched = sum(item is not None for _, item in pairs)
    return {"first": first, "chars": chars, "done": done, "agree": agree, "matched": matched, "astray": astray}


def http_agreement(base_url: str, pcm: np.ndarray, stream: Stream) -> tuple[int, int]:
    """Items whose completed transcript equals the HTTP endpoint's for the same audio, of all items."""
    import io
    import wave

    audio = resample_pcm16(pcm, SEND_RATE)
    same = total = 0
    with httpx.Client(timeout=600) as http:
        for item in items(stream).values():
            start, end = item["span"]
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as file:
                file.setnchannels(1), file.setsampwidth(2), file.setframerate(RATE)
                file.writeframes((audio[start:end] * 32768).astype("<i2").tobytes())
            response = http.post(
                f"{base_url}/audio/transcriptions", data={"model": MODEL}, files={"file": ("u.wav", buffer.getvalue())}
            )
            response.raise_for_status()
            same += response.json()["text"] == item["completed"][1]
            total += 1
    return same, total


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100)) if values else float("nan")


def lags(stream: Stream, spans: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """(sentence end in seconds of audio, lag in seconds) per matched sentence."""
    return [
        (end / RATE, item["completed"][0] - stream.sent_at(end))
        for (start, end), item in match(spans, items(stream))
        if item is not None
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: the bundled demo model)")
    parser.add_argument("--random-size", choices=["tiny", "small", "XS", "S", "M", "L"], help="a random AED preset")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="decoding cap of the random model")
    parser.add_argument("--utterances", type=int, default=20, help="sentences of the one-session run")
    parser.add_argument("--sessions", type=int, default=4, help="concurrent sessions of the long run (0: none)")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="audio each concurrent session streams")
    parser.add_argument("--window-minutes", type=float, default=2.0, help="first and last stretch compared")
    parser.add_argument("--clips", type=int, default=24, help="distinct sentences synthesized")
    parser.add_argument("--pause", type=float, default=1.0, help="shortest pause between sentences (s)")
    parser.add_argument("--silence-ms", type=int, default=500, help="server_vad's silence_duration_ms")
    parser.add_argument("--speed", type=float, default=1.0, help="times faster than real time (1: real time)")
    parser.add_argument("--seed", type=int, default=2029)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    began = time.monotonic()
    rng = np.random.default_rng(options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = synthesize_clips(folder, options.clips, options.seed)
        if options.random_size:
            from benchmarks.bench_serving import build_random_model

            model = str(build_random_model(folder / "model", options.random_size, options.max_new_tokens))
            label = f"random {options.random_size} (max {options.max_new_tokens} tokens)"
        else:
            model = options.model or str(demo_model_dir())
            label = "demo" if options.model is None else Path(model).name
        short, short_spans = recording(clips[: options.utterances], 0, options.pause, rng)
        short_spans = short_spans[: options.utterances]
        while len(short_spans) < options.utterances:  # more sentences than clips: cycle them
            short, short_spans = recording(clips, len(short) / RATE + 1, options.pause, rng)
        short_pcm = to_pcm24(short)
        args = ["--model", model, "--served-model-name", MODEL, "--no-access-log"]
        args += ["--max-realtime-sessions", str(max(options.sessions, 1))]
        with ServerProcess(args) as server:
            warm = to_pcm24(np.concatenate([np.zeros(RATE // 2, np.float32), clips[0]]))
            asyncio.run(run_session(server.base_url, warm, 0, options.silence_ms))  # warm-up
            stream = asyncio.run(run_session(server.base_url, short_pcm, options.speed, options.silence_ms))
            found = latencies(stream, short_spans)
            same, total = http_agreement(server.base_url, short_pcm, stream)
            print(
                f"one session: {found['matched']}/{len(short_spans)} sentences matched to items, "
                f"{len(items(stream))} items; {len(short) / RATE:.1f} s of audio"
            )
            for line in found["astray"]:
                print(f"  {line}")
            long_row = ["0", "0", "-", "-", "-"]
            if options.sessions:
                long, long_spans = recording(clips, options.long_minutes * 60, options.pause, rng)
                pcm = to_pcm24(long)

                async def many() -> list[Stream]:
                    return await asyncio.gather(
                        *(
                            run_session(server.base_url, pcm, options.speed, options.silence_ms)
                            for _ in range(options.sessions)
                        )
                    )

                streams = asyncio.run(many())
                window = options.window_minutes * 60
                timed = [lag for s in streams for lag in lags(s, long_spans)]
                first = [lag for at, lag in timed if at <= window]
                last = [lag for at, lag in timed if at >= len(long) / RATE - window]
                health = server.health()
                print(
                    f"{options.sessions} sessions: {len(timed)} sentences completed of {options.sessions * len(long_spans)}; "
                    f"mean batch {health['mean_batch_size']} over {health['batches']} generate calls"
                )
                long_row = [
                    str(options.sessions), f"{len(long) / RATE / 60:.1f}", f"{percentile(first, 0.5):.2f}",
                    f"{percentile(last, 0.5):.2f}", f"{max((lag for _, lag in timed), default=float('nan')):.2f}",
                ]  # fmt: skip
    row = [
        label, str(len(short_spans)), f"{percentile(found['first'], 0.5):.2f}", f"{percentile(found['chars'], 0.5):.2f}",
        f"{percentile(found['chars'], 0.9):.2f}", f"{percentile(found['done'], 0.5):.2f}",
        f"{found['agree']}/{found['matched']}", f"{same}/{total}", *long_row,
    ]  # fmt: skip
    print()
    print(
        f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; python {platform.python_version()}; package {source_revision()}"
    )
    print(
        f"speed {options.speed:g}x real time; --silence-ms {options.silence_ms}; ran {time.monotonic() - began:.0f} s"
    )
    print("| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS) + "\n| " + " | ".join(row) + " |")
    return 0 if total and same == total else 1


if __name__ == "__main__":
    sys.exit(main())
