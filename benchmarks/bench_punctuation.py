"""What punctuation adds to the time of transcribing: the demo's held-out sentences (espeak-ng, fixed seeds), each
transcribed by the engine without and with a punctuation model (the bundled one by default), in alternating repeats
in one process; medians and their ratio, plus the punctuation pass timed on its own.

Both settings run `Engine.transcribe_many` (the CLI's and archive runs' path) over the same prepared clips, so the
difference is the punctuation pass over the finished transcripts and the sentences built from them.

    python benchmarks/bench_punctuation.py                   # the run recorded in benchmarks/RESULTS.md
    python benchmarks/bench_punctuation.py --tiny            # a quick check (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the checkout's tools/ (the synthetic corpus; not part of the installed package)
    sys.path.insert(0, str(ROOT))

import transformers_fireredasr  # noqa: E402
from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="the recogniser (default: the bundled demo)")
    parser.add_argument("--punctuation", default=None, help="the punctuation model (default: the bundled one)")
    parser.add_argument("--clips", type=int, default=300, help="held-out sentences (the demo's set has 300)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8, help="segments per generate call (the CLI's default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--tiny", action="store_true", help="4 clips, 1 repeat")
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args(argv)
    if options.tiny:
        options.clips, options.repeats = 4, 1
    return options


def held_out_clips(folder: Path, count: int) -> list[np.ndarray]:
    """The first `count` held-out sentences of the demo's corpus, spoken in fixed random voices."""
    sentences = corpus_sentences(8000, 300, seed=0)[1][:count]
    rng = np.random.default_rng(2026)
    voices = [random_voice(rng) for _ in sentences]
    with ThreadPoolExecutor(4) as pool:
        return list(
            pool.map(lambda i: synthesize(sentences[i], folder / f"{i}.wav", voices[i], seed=i), range(len(sentences)))
        )


def timed(engine, prepared, options, batch_size: int) -> tuple[float, list]:
    started = time.perf_counter()
    outcomes = list(engine.transcribe_many(enumerate(prepared), options, batch_size=batch_size))
    return time.perf_counter() - started, outcomes


def main(argv=None) -> int:
    from transformers_fireredasr.engine import Engine, TranscribeOptions

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    model = options.model or str(transformers_fireredasr.demo_model_dir())
    punctuation = options.punctuation or str(transformers_fireredasr.demo_punctuation_dir())
    plain = Engine.from_pretrained(model, {"device": "cpu"})
    punctuated = Engine.from_pretrained(model, {"device": "cpu", "punctuation": punctuation})
    settings = TranscribeOptions()
    with tempfile.TemporaryDirectory() as folder:
        audio = held_out_clips(Path(folder), options.clips)
    prepared = [plain.prepare(clip, settings) for clip in audio]  # both settings decode the same prepared clips
    seconds = sum(item.duration for item in prepared)
    timed(plain, prepared[:2], settings, options.batch_size)  # warm-up
    timed(punctuated, prepared[:2], settings, options.batch_size)
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(options.repeats):
        took, without = timed(plain, prepared, settings, options.batch_size)
        times["without"].append(took)
        took, with_marks = timed(punctuated, prepared, settings, options.batch_size)
        times["with"].append(took)
    failed = [o.key for o in [*without, *with_marks] if o.error]
    if failed:
        raise RuntimeError(f"inputs failed: {failed}")
    texts = [o.result["text"] for o in sorted(with_marks, key=lambda o: o.key)]
    plain_texts = [o.result["text"] for o in sorted(without, key=lambda o: o.key)]
    stripped = ["".join(c for c in text if c not in "，。？！,.?! ") for text in texts]
    if stripped != [text.replace(" ", "") for text in plain_texts]:
        raise RuntimeError("punctuation changed the words of a transcript")
    punctuator = punctuated.punctuator
    alone = []
    for _ in range(options.repeats):
        started = time.perf_counter()
        punctuator.punctuate(plain_texts)
        alone.append(time.perf_counter() - started)
    # The overhead is computed from the medians as reported, so the two agree.
    without_s, with_s = round(statistics.median(times["without"]), 4), round(statistics.median(times["with"]), 4)
    results = {
        "clips": len(prepared),
        "audio seconds": round(seconds, 1),
        "repeats": options.repeats,
        "threads": torch.get_num_threads(),
        "punctuation model parameters": sum(p.numel() for p in punctuator.model.parameters()),
        "transcribe s (median), without": without_s,
        "transcribe s (median), with": with_s,
        "overhead": round(with_s / without_s - 1, 4),
        "punctuation alone s (median)": round(statistics.median(alone), 3),
        "transcripts with a mark": sum(any(c in "，。？！" for c in text) for text in texts),
        "examples": texts[:5],
    }
    print(json.dumps(results, ensure_ascii=False, indent=2))
    if options.json:
        options.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
