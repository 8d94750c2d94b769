"""What one shared encoder pass saves when FireRedASR-AED and FireRedLID run on the same segments.

FireRedLID is FireRedASR's encoder plus a small label decoder. When a converted pair has the same encoder weights and
CMVN (`transformers_fireredasr.modeling_fireredlid.shares_encoder` checks), one encoder pass serves both models:

    encoded = asr.get_encoder()(features, attention_mask=mask)
    texts = asr.generate(encoder_outputs=encoded, attention_mask=mask)
    languages = lid.identify(encoder_outputs=encoded, attention_mask=mask)

This script builds such a pair with random weights at a preset size (`--size L`: FireRedASR-AED-L's encoder and
decoder, FireRedLID's 6-layer decoder over 120 labels) or loads two converted folders (`--asr DIR --lid DIR`, which
must share their encoder), and on `--batch` utterances of `--seconds` (fbank-like features) times, median of
`--repeats` after one warm-up:

- separate: `asr.generate(features)` then `lid.identify(features)`, two encoder passes;
- shared: the encoder once, then both decoders on its output;

and checks that both ways give the same token ids and labels (exit status 1 otherwise). The ASR decodes with its
published beam search and a ceiling of `--max-new-tokens` tokens (random decoders rarely stop earlier); the LID
with upstream's settings. It prints one markdown row per setting: encoder seconds, separate and shared seconds,
the saving and its share.

    python benchmarks/bench_lid.py --size L --batch 1 4 --seconds 10 --repeats 3 --threads 2
    python benchmarks/bench_lid.py --size L --device cuda --dtype bfloat16 --batch 1 16 --seconds 10
    python benchmarks/bench_lid.py --size tiny --batch 2 --seconds 2 --repeats 1       # the tests' smoke size
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import make_inputs, source_revision, synchronize  # noqa: E402

# Encoder (shared) and decoders: FireRedASR-AED-L's published sizes, FireRedLID's 6 layers over 120 labels.
SIZES = {
    "tiny": dict(d_model=64, heads=4, encoder_layers=2, asr_layers=2, vocab=512),
    "small": dict(d_model=512, heads=8, encoder_layers=6, asr_layers=6, vocab=7832),
    "L": dict(d_model=1280, heads=20, encoder_layers=16, asr_layers=16, vocab=7832),
}
LID_LAYERS, LID_LABELS = 6, 120
COLUMNS = ["size", "device", "dtype", "batch", "audio s", "encoder s", "separate s", "shared s", "saved s", "saved %"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="L", choices=sorted(SIZES))
    parser.add_argument("--asr", default=None, help="a converted FireRedASR-AED folder (with --lid) instead of --size")
    parser.add_argument("--lid", default=None, help="a converted FireRedLID folder sharing --asr's encoder")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--max-new-tokens", type=int, default=30, help="the ASR's token ceiling per utterance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    options = parser.parse_args(argv)
    if (options.asr is None) != (options.lid is None):
        parser.error("--asr and --lid go together")
    return options


def build_pair(size: str, seed: int):
    """An ASR model and a LID model with random weights whose encoders are the same weights."""
    from transformers_fireredasr import (
        FireRedAedConfig,
        FireRedAedForConditionalGeneration,
        FireRedLidConfig,
        FireRedLidForConditionalGeneration,
    )
    from transformers_fireredasr.conversion.aed import aed_generation_config
    from transformers_fireredasr.conversion.lid import lid_generation_config

    sizes = SIZES[size]
    encoder = dict(
        hidden_size=sizes["d_model"], num_attention_heads=sizes["heads"], num_hidden_layers=sizes["encoder_layers"],
        intermediate_size=4 * sizes["d_model"],
    )  # fmt: skip
    shared = dict(
        d_model=sizes["d_model"], decoder_attention_heads=sizes["heads"], decoder_ffn_dim=4 * sizes["d_model"]
    )
    torch.manual_seed(seed)
    asr_config = FireRedAedConfig(
        encoder_config=encoder, vocab_size=sizes["vocab"], decoder_layers=sizes["asr_layers"], **shared
    )
    asr = FireRedAedForConditionalGeneration(asr_config)
    asr.generation_config = aed_generation_config(asr_config)
    lid_config = FireRedLidConfig(encoder_config=encoder, vocab_size=LID_LABELS, decoder_layers=LID_LAYERS, **shared)
    lid = FireRedLidForConditionalGeneration(lid_config)
    lid.generation_config = lid_generation_config(lid_config)
    lid.get_encoder().load_state_dict(asr.get_encoder().state_dict())
    return asr, lid


def load_pair(asr_dir: str, lid_dir: str):
    from transformers import AutoFeatureExtractor

    from transformers_fireredasr import FireRedAedForConditionalGeneration, FireRedLidForConditionalGeneration
    from transformers_fireredasr.modeling_fireredlid import shares_encoder

    asr = FireRedAedForConditionalGeneration.from_pretrained(asr_dir)
    lid = FireRedLidForConditionalGeneration.from_pretrained(lid_dir)
    extractors = AutoFeatureExtractor.from_pretrained(asr_dir), AutoFeatureExtractor.from_pretrained(lid_dir)
    if not shares_encoder(asr, lid, *extractors):
        raise SystemExit(f"{asr_dir} and {lid_dir} do not share their encoder (weights or CMVN differ)")
    return asr, lid


def median_seconds(call, device: torch.device, repeats: int):
    """The median wall seconds of `repeats` calls after one warm-up, and the warm-up's outputs."""
    outputs = call()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), outputs


def bench_batch(asr, lid, options, batch: int) -> tuple[dict, bool]:
    device = torch.device(options.device)
    features, lengths = make_inputs(batch, options.seconds, options.seed, ragged=True)
    features = features.to(device, getattr(torch, options.dtype))
    mask = (torch.arange(features.shape[1])[None, :] < lengths[:, None]).long().to(device)
    asr_kwargs = {"max_new_tokens": options.max_new_tokens}

    def encoder_only():
        return asr.get_encoder()(features, attention_mask=mask)

    def separate():
        texts = asr.generate(features, attention_mask=mask, **asr_kwargs)
        return texts, lid.identify(features, attention_mask=mask).label_ids

    def shared():
        encoded = asr.get_encoder()(features, attention_mask=mask)
        texts = asr.generate(encoder_outputs=encoded, attention_mask=mask, **asr_kwargs)
        return texts, lid.identify(encoder_outputs=encoded, attention_mask=mask).label_ids

    with torch.inference_mode():
        encoder_s, _ = median_seconds(encoder_only, device, options.repeats)
        separate_s, separate_out = median_seconds(separate, device, options.repeats)
        shared_s, shared_out = median_seconds(shared, device, options.repeats)
    same = all(torch.equal(a, b) for a, b in zip(separate_out, shared_out, strict=True))
    saved = separate_s - shared_s
    row = {
        "size": options.size if options.asr is None else Path(options.asr).name,
        "device": options.device,
        "dtype": options.dtype,
        "batch": batch,
        "audio s": round(batch * options.seconds, 2),
        "encoder s": round(encoder_s, 4),
        "separate s": round(separate_s, 4),
        "shared s": round(shared_s, 4),
        "saved s": round(saved, 4),
        "saved %": round(100 * saved / separate_s, 1),
    }
    return row, same


def main(argv: list[str] | None = None) -> int:
    import json

    import transformers

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    asr, lid = build_pair(options.size, options.seed) if options.asr is None else load_pair(options.asr, options.lid)
    dtype = getattr(torch, options.dtype)
    asr, lid = (model.to(options.device, dtype).eval() for model in (asr, lid))
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}; "
        f"transformers_fireredasr {source_revision()}"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    rows, differing = [], []
    for batch in options.batch:
        row, same = bench_batch(asr, lid, options, batch)
        rows.append(row)
        print("| " + " | ".join(str(row[column]) for column in COLUMNS) + " |", flush=True)
        if not same:
            differing.append(batch)
    if options.json:
        Path(options.json).write_text(json.dumps({"rows": rows, "identical": not differing}, indent=1))
    if differing:
        print(f"sharing the encoder changed the output at batch {differing}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
