"""What each reduced-precision mode costs in accuracy on the bundled demo model: bf16 and the torchao int8 modes
against fp32, on held-out speech.

Workload: `--utterances` held-out sentences of the demo corpus (never trained on), spoken by espeak-ng in random
voices (fixed seeds), decoded with the model's own settings (FireRedASR's beam search, beam 3) in batches of
`--batch`. Each mode loads the model the documented way (`dtype=torch.bfloat16`, or `quantization_config=
quantization_config(mode)`; a `+compiled` mode also with `compiled_decoding_load_kwargs()`, eager attention, and
decodes with `compiled_decoding_kwargs()`); reported per mode: the share of transcripts identical to fp32, the CER
against fp32's transcripts, the CER against the reference sentences, and the decode seconds (one run each after a
warm-up batch; the speed of the published size is `bench_speed.py`'s job).

    python benchmarks/bench_precision.py                 # the run recorded in benchmarks/RESULTS.md
    python benchmarks/bench_precision.py --utterances 4  # a quick check (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# "+" joins switches as a user combines them: `--quantize int8-weight --dtype bfloat16 --compile`.
MODES = [
    "float32",
    "bfloat16",
    "int8-weight",
    "int8-dynamic",
    "int8-mixed",
    "int8-weight+bfloat16",
    "float32+compiled",
    "int8-weight+bfloat16+compiled",
]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: the bundled demo model")
    parser.add_argument("--utterances", type=int, default=300, help="held-out sentences (at most 300)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    options = parser.parse_args(argv)
    if options.modes[0] != "float32":
        options.modes = ["float32", *[mode for mode in options.modes if mode != "float32"]]
    return options


def held_out_speech(count: int, seed: int) -> tuple[list[str], list[np.ndarray]]:
    """The first `count` held-out corpus sentences and their espeak-ng audio in random voices."""
    from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize

    sentences = corpus_sentences(8000, 300, seed=0)[1][:count]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as folder:
        audio = [
            synthesize(text, Path(folder) / f"{i}.wav", random_voice(rng), seed=seed + i)
            for i, text in enumerate(sentences)
        ]
    return sentences, audio


def load(folder: str, mode: str):
    """The model in `mode`, loaded as a user loads it, and the `generate()` keywords the mode adds."""
    from transformers import AutoModelForSpeechSeq2Seq

    import transformers_fireredasr  # noqa: F401 - registers the FireRedASR classes
    from transformers_fireredasr import compiled_decoding_kwargs, compiled_decoding_load_kwargs
    from transformers_fireredasr.quantization import QUANTIZE_MODES, quantization_config

    switches = mode.split("+")  # "int8-weight+bfloat16+compiled": `--quantize int8-weight --dtype bfloat16 --compile`
    quantize = next((switch for switch in switches if switch in QUANTIZE_MODES), None)
    dtype = next((switch for switch in switches if switch in ("float32", "bfloat16")), None)
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {}
    if quantize:
        kwargs.update(quantization_config=quantization_config(quantize), device_map="cpu")
    compiled = "compiled" in switches
    if compiled:  # as `--compile` loads it: eager attention on the CPU
        kwargs.update(compiled_decoding_load_kwargs())
    from transformers_fireredasr.speed_paths import apply_speed_paths

    # The speed paths every entry point applies (the engine's), so the timings are a user's.
    model = apply_speed_paths(AutoModelForSpeechSeq2Seq.from_pretrained(folder, **kwargs))
    return model.eval(), (compiled_decoding_kwargs() if compiled else {})


def transcribe(
    model, processor, audio: list[np.ndarray], batch: int, generate_kwargs: dict | None = None
) -> tuple[list[str], float]:
    texts, start = [], time.perf_counter()
    with torch.inference_mode():
        for first in range(0, len(audio), batch):
            inputs = processor(audio[first : first + batch], sampling_rate=16000, return_tensors="pt")
            output = model.generate(**inputs, **(generate_kwargs or {}))
            texts += processor.batch_decode(output, skip_special_tokens=True)
    return texts, time.perf_counter() - start


def main(argv=None) -> int:
    import jiwer
    from transformers import AutoProcessor

    import transformers_fireredasr

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    folder = options.model or str(transformers_fireredasr.demo_model_dir())
    processor = AutoProcessor.from_pretrained(folder)
    sentences, audio = held_out_speech(options.utterances, options.seed)
    rows, baseline = [], None
    for mode in options.modes:
        model, generate_kwargs = load(folder, mode)
        # Warm-up (kernel selection, caches; a compiled mode compiles its first shape, later shapes during the run).
        transcribe(model, processor, audio[: options.batch], options.batch, generate_kwargs)
        texts, seconds = transcribe(model, processor, audio, options.batch, generate_kwargs)
        baseline = baseline or texts
        row = {
            "mode": mode,
            "identical to fp32": float(np.mean([a == b for a, b in zip(texts, baseline, strict=True)])),
            "CER vs fp32": jiwer.cer(baseline, texts),
            "CER vs reference": jiwer.cer(sentences, texts),
            "decode s": seconds,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{len(sentences)} held-out sentences, batch {options.batch}, torch threads {torch.get_num_threads()}")
    print("| mode | identical to fp32 | CER vs fp32 | CER vs reference | decode s |\n|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['mode']} | {row['identical to fp32']:.1%} | {row['CER vs fp32']:.2%} | "
            f"{row['CER vs reference']:.2%} | {row['decode s']:.2f} |"
        )
    if options.json:
        options.json.write_text(json.dumps({"utterances": len(sentences), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))  # the checkout's tools/ (the synthetic corpus; not part of the installed package)
    if (root / "src" / "transformers_fireredasr").is_dir():
        sys.path.insert(0, str(root / "src"))
    sys.exit(main())
