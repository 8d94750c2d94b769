"""Where our FireRedASR-AED's time goes on one utterance: encoder and decoder apart, per decoding step, per operator.

Builds our model exactly as `bench_speed.py` does (random weights at a preset size, `--size L` is the published
AED-L), then, on one `--seconds` utterance with the published beam-3 decoding:

- times the encoder alone and the beam search alone on the encoder's output (median of `--repeats`);
- gives the decoder's seconds per step (its wall over the steps it took) and what reading every decoder weight once
  per step means in GB/s, against the machine's memory bandwidth as a large tensor copy measures it;
- prints torch.profiler's top operators (self CPU time) of one encoder call and of one beam search, with input
  shapes, so that GEMM shapes and small-op overhead show.

    python benchmarks/bench_profile.py --size L --seconds 10 --threads 2 [--cache static] [--quantize int8-weight]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import (  # noqa: E402
    DECODING,
    SIZES,
    build_models,
    environment,
    make_inputs,
    reduced_precision,
)
from transformers_fireredasr.quantization import QUANTIZE_MODES  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="L", choices=sorted(SIZES))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--beam", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rows", type=int, default=20, help="operators per profiler table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="dynamic", choices=["dynamic", "static"], help="our KV cache")
    # Both together give a quantized model loaded in that dtype, as bench_speed.py and bench_precision.py do.
    parser.add_argument("--ours-dtype", default=None, choices=["float32", "bfloat16"], help="our weights' dtype")
    parser.add_argument(
        "--quantize", default=None, choices=list(QUANTIZE_MODES), help="a torchao int8 mode, as bench_speed.py"
    )
    options = parser.parse_args(argv)
    # What build_models reads besides the size and the precision.
    options.checkpoint, options.device, options.dtype, options.attn = None, "cpu", "float32", "sdpa"
    options.compile, options.ragged = "off", False
    return options


def median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def copy_bandwidth() -> float:
    """GB/s of a 512 MB fp32 copy (read + write), the memory system's ceiling as torch sees it."""
    source = torch.empty(128 * 2**20)
    target = torch.empty_like(source)
    target.copy_(source)
    seconds = median_seconds(lambda: target.copy_(source), 5)
    return 2 * source.numel() * 4 / seconds / 1e9


def decoder_weight_bytes(model) -> int:
    """Bytes one decoding step reads at least: every decoder weight but the cached cross-attention K/V projections."""
    total = 0
    for name, parameter in model.model.decoder.named_parameters():
        if "encoder_attn" in name and ("k_proj" in name or "v_proj" in name):
            continue
        total += parameter.numel() * parameter.element_size()
    return total


def main(argv: list[str] | None = None) -> int:
    from torch.profiler import ProfilerActivity, profile

    from transformers_fireredasr.generation_fireredasr import original_beam_search

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    reference, ours, _, label = build_models(options)
    del reference
    print(environment(options))
    features, lengths = make_inputs(options.batch, options.seconds, options.seed, False)
    mask = (torch.arange(features.shape[1])[None, :] < lengths[:, None]).long()
    config = ours.generation_config
    encoder = ours.get_encoder()

    with torch.inference_mode():
        encoded = encoder(features, attention_mask=mask)
        hidden, frame_mask = encoded.last_hidden_state, encoded.attention_mask

        # The cache generate() would use: the model's own choice for the requested implementation.
        cache_config = copy.deepcopy(config)
        cache_config.cache_implementation = options.cache
        rows = options.batch * options.beam

        def search():
            cache, _ = ours._decoding_cache(cache_config, rows, options.max_new_tokens, hidden.shape[1])
            return original_beam_search(
                ours, hidden, frame_mask, torch.full((options.batch,), options.max_new_tokens), options.beam, 1,
                DECODING["softmax_smoothing"], DECODING["eos_penalty"], DECODING["length_penalty"],
                config.decoder_start_token_id, config.eos_token_id, config.pad_token_id, cache=cache,
            )  # fmt: skip

        search()  # warm-up
        encoder_s = median_seconds(lambda: encoder(features, attention_mask=mask), options.repeats)
        decoder_s = median_seconds(search, options.repeats)
        steps = search()[0].shape[1] - 1
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as encoder_profile:
            encoder(features, attention_mask=mask)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as decoder_profile:
            search()

    weights = decoder_weight_bytes(ours)
    per_step = decoder_s / steps
    precision = reduced_precision(options) or "float32"
    print(f"\n{label} {precision}, batch {options.batch}, beam {options.beam}, {options.seconds:g} s, {steps} steps")
    print(f"encoder {encoder_s:.3f} s; beam search {decoder_s:.3f} s = {per_step * 1000:.1f} ms per step")
    print(
        f"decoder weights read per step {weights / 1e9:.2f} GB -> {weights / per_step / 1e9:.1f} GB/s; "
        f"copy bandwidth {copy_bandwidth():.1f} GB/s"
    )
    for name, result in (("encoder", encoder_profile), ("beam search", decoder_profile)):
        print(f"\n## {name}: top operators by self CPU time\n")
        print(result.key_averages().table(sort_by="self_cpu_time_total", row_limit=options.rows))
        print(f"\n## {name}: by input shape\n")
        shapes = result.key_averages(group_by_input_shape=True)
        print(shapes.table(sort_by="self_cpu_time_total", row_limit=options.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
