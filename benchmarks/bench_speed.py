"""Side-by-side speed and memory of FireRedASR-AED: the reference package (`fireredasr==0.0.2`) against this port.

Both implementations get the same weights (random weights at a preset size, or an original `model.pth.tar`) and
the same input features, run in one process, and must produce identical token ids. The script prints one
markdown table row per (batch, beam, seconds) setting: wall seconds (median over `--repeats`), real-time factor
(wall / audio seconds; lower is faster), speed-up (reference wall / ours wall) and peak memory of each side.
It exits with status 1 when any transcript differs (the differing utterances are printed).

Decoding: the published settings (beam 3, softmax smoothing 1.25, GNMT length penalty 0.6, eos penalty 1.0) with a
fixed ceiling of `--max-new-tokens` output tokens per utterance (`decode_max_len` on the reference side,
`max_new_tokens` on ours). Random decoders rarely emit `<eos>`, so each utterance usually decodes exactly that
many tokens; the `tokens/utt` column shows how many were decoded.

Examples (see benchmarks/README.md):
    python benchmarks/bench_speed.py --size small --batch 4 1 --beam 3 --seconds 10
    python benchmarks/bench_speed.py --size L --device cuda --dtype bfloat16 --batch 16 --seconds 10
    python benchmarks/bench_speed.py --checkpoint FireRedASR-AED-L --device cuda
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import math
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Preset sizes. XS/S/M/L use the widths and layer counts of Table 1 of the FireRedASR report (arXiv 2501.14350:
# 512 12/12, 768 16/16, 1024 16/16, 1280 16/16); only L's head count (20) is published, XS/S/M assume 64-dim heads.
# `small` is the CPU target (d_model 512, 6+6 layers); `tiny` is for CI.
PUBLISHED_VOCAB = 7832
SIZES: dict[str, dict] = {
    "tiny": dict(d_model=64, n_head=4, n_layers_enc=2, n_layers_dec=2, odim=512),
    "small": dict(d_model=512, n_head=8, n_layers_enc=6, n_layers_dec=6, odim=PUBLISHED_VOCAB),
    "XS": dict(d_model=512, n_head=8, n_layers_enc=12, n_layers_dec=12, odim=PUBLISHED_VOCAB),
    "S": dict(d_model=768, n_head=12, n_layers_enc=16, n_layers_dec=16, odim=PUBLISHED_VOCAB),
    "M": dict(d_model=1024, n_head=16, n_layers_enc=16, n_layers_dec=16, odim=PUBLISHED_VOCAB),
    "L": dict(d_model=1280, n_head=20, n_layers_enc=16, n_layers_dec=16, odim=PUBLISHED_VOCAB),
}
FRAMES_PER_SECOND = 100  # fbank frame shift 10 ms
DECODING = dict(softmax_smoothing=1.25, length_penalty=0.6, eos_penalty=1.0)  # published settings, beam aside
TABLE_COLUMNS = [
    "size", "params", "device", "dtype", "batch", "beam", "audio s", "tokens/utt", "ref wall s", "ours wall s",
    "ref RTF", "ours RTF", "speed-up", "ref peak MiB", "ours peak MiB", "transcripts",
]  # fmt: skip


def reference_modules():
    """The reference submodules, imported directly (its top-level package imports modelscope)."""
    import fireredasr.models.fireredasr_aed as fireredasr_aed

    return fireredasr_aed


def reference_args(**sizes) -> argparse.Namespace:
    """The original argparse hyper-parameters (as stored in `model.pth.tar`) for a preset size."""
    args = dict(
        idim=80, odim=PUBLISHED_VOCAB, d_model=1280, n_head=20, n_layers_enc=16, n_layers_dec=16, d_inner=5120,
        kernel_size=33, pe_maxlen=5000, residual_dropout=0.1, dropout_rate=0.1, sos_id=3, eos_id=4, pad_id=2,
        blank_id=0, input_length_max=60.0, output_length_max=250,
    )  # fmt: skip
    args.update(sizes)
    args["d_inner"] = 4 * args["d_model"]
    return argparse.Namespace(**args)


def build_models(options) -> tuple[torch.nn.Module, torch.nn.Module, argparse.Namespace, str]:
    """The reference model and ours with identical weights, in eval mode, on the target device and dtype."""
    from transformers_fireredasr import FireRedAedForConditionalGeneration
    from transformers_fireredasr.conversion.aed import aed_config_from_args, aed_generation_config
    from transformers_fireredasr.conversion.checkpoint import load_original_package, require_args
    from transformers_fireredasr.conversion.key_mapping import AED_PREFIXES, convert_state_dict

    fireredasr_aed = reference_modules()
    if options.checkpoint:
        path = Path(options.checkpoint)
        path = path / "model.pth.tar" if path.is_dir() else path
        args, state_dict = load_original_package(path)
        require_args(args, ["idim", "odim", "d_model", "n_head", "n_layers_enc", "n_layers_dec"], path)
        reference = fireredasr_aed.FireRedAsrAed.from_args(args)
        reference.load_state_dict(state_dict)
        label = f"{path.parent.name or path.name} (d{args.d_model} {args.n_layers_enc}+{args.n_layers_dec})"
    else:
        args = reference_args(**SIZES[options.size])
        torch.manual_seed(options.seed)
        # Built on the CPU: the reference creates pos_bias_u/v with torch.FloatTensor, which ignores device contexts.
        reference = fireredasr_aed.FireRedAsrAed.from_args(args)
        randomize_for_decoding(reference, args, options.seed)
        label = options.size
    reference.eval()

    config = aed_config_from_args(args)
    config._attn_implementation = options.attn
    with torch.device("meta"):
        ours = FireRedAedForConditionalGeneration(config)
    weights = {
        key: value.detach().clone() for key, value in convert_state_dict(reference.state_dict(), AED_PREFIXES).items()
    }
    missing, unexpected = ours.load_state_dict(weights, strict=False, assign=True)
    missing = [key for key in missing if key not in ours._tied_weights_keys]
    if missing or unexpected:
        raise RuntimeError(f"weights do not match: missing {missing}, unexpected {unexpected}")
    ours.tie_weights()
    ours.generation_config = aed_generation_config(config)
    ours.eval()

    dtype = getattr(torch, options.dtype)
    reference.to(device=options.device, dtype=dtype)
    # bench_speed_llm builds its encoder through here with options of its own, without the reduced-precision ones.
    ours.to(device=options.device, dtype=getattr(torch, getattr(options, "ours_dtype", None) or options.dtype))
    if getattr(options, "quantize", None):
        ours = quantized(ours, options.quantize)
    from transformers_fireredasr.speed_paths import apply_speed_paths

    # What every entry point runs (the engine applies them): the CPU kernels swapped into the loaded model.
    return reference, apply_speed_paths(ours), args, label


def quantized(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """`model` saved and loaded again with `--quantize`'s TorchAoConfig, the way a user gets it from
    `from_pretrained(..., quantization_config=quantization_config(mode))`, with the same attention implementation
    (the saved config does not keep it)."""
    import tempfile

    from transformers_fireredasr import FireRedAedForConditionalGeneration
    from transformers_fireredasr.quantization import quantization_config

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        generation_config, attention = model.generation_config, model.config._attn_implementation
        del model
        loaded = FireRedAedForConditionalGeneration.from_pretrained(
            folder,
            quantization_config=quantization_config(mode),
            device_map="cpu",
            attn_implementation=attention,
        )
    loaded.generation_config = generation_config
    return loaded.eval()


def reduced_precision(options) -> str | None:
    """What our side runs in when it is not the reference's precision (its transcripts may then differ)."""
    quantize, ours_dtype = getattr(options, "quantize", None), getattr(options, "ours_dtype", None)
    parts = [quantize] if quantize else []
    if ours_dtype and ours_dtype != options.dtype:
        parts.append(ours_dtype)
    return " + ".join(parts) or None


def randomize_for_decoding(model: torch.nn.Module, args: argparse.Namespace, seed: int) -> None:
    """Makes a randomly initialised reference model decode varied, input-dependent token streams.

    With PyTorch's default init a random AED decoder is degenerate: N(0, 1) tied embeddings make it echo its start
    token forever, and with N(0, 1/d_model) embeddings it still echoes its previous token, the same for every input.
    Here embeddings are N(0, 1/d_model), the weights of the final decoder LayerNorm are N(0, 1) (random signs break
    the echo through the tied output projection) and every other LayerNorm weight and bias is jittered by 0.1 (so a
    swapped or misplaced norm would change the output). The decoder then rarely emits `<eos>`.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.decoder.tgt_word_emb.weight.normal_(0.0, args.d_model**-0.5, generator=generator)
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        final = model.decoder.layer_norm_out.weight
        final.copy_(torch.randn(final.shape, generator=generator))


def make_inputs(batch: int, seconds: float, seed: int, ragged: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised fbank-like features `(batch, frames, 80)` and their lengths, different for every utterance.

    Piecewise-constant random spectral envelopes (one per 200 ms, like phones) plus temporally smoothed noise,
    scaled to unit variance (what global CMVN gives). With `ragged`, utterance i has
    `seconds * (1 - 0.4 * i / batch)` seconds (zero-padded to the longest).
    """
    generator = torch.Generator().manual_seed(seed)
    frames = int(round(seconds * FRAMES_PER_SECOND))
    segment = 20
    envelopes = torch.randn(batch, frames // segment + 1, 80, generator=generator)
    envelopes = envelopes.repeat_interleave(segment, dim=1)[:, :frames]
    noise = torch.randn(batch, frames + 2, 80, generator=generator)
    noise = (noise[:, :-2] + noise[:, 1:-1] + noise[:, 2:]) / math.sqrt(3.0)
    features = (envelopes + 0.5 * noise) / math.sqrt(1.25)
    if ragged:
        lengths = torch.tensor([int(frames * (1 - 0.4 * i / batch)) for i in range(batch)])
    else:
        lengths = torch.full((batch,), frames)
    features = features.masked_fill(torch.arange(frames)[None, :, None] >= lengths[:, None, None], 0.0)
    return features, lengths


def encoder_frames(fbank_frames: int) -> int:
    """Encoder frames of an utterance of `fbank_frames` frames (6 frames of right context, two stride-2 convs)."""
    return ((fbank_frames + 6 - 3) // 2 + 1 - 3) // 2 + 1


def malloc_trim() -> None:
    """Returns free heap memory to the system (glibc); a no-op elsewhere."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory of one call above the memory in use when it started.

    CUDA: `torch.cuda.max_memory_allocated` (allocator view). CPU: the process resident-set high-water mark
    `VmHWM`, reset before each call by writing 5 to /proc/self/clear_refs (Linux), after `malloc_trim(0)` has
    handed memory that the C allocator kept from earlier calls back to the system (otherwise a call reusing it
    would show no growth); where that is unavailable, `ru_maxrss`, which cannot be reset, so the figure is the
    process peak so far (an upper bound).
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.method = "torch.cuda.max_memory_allocated - allocated before the call"
        elif self._can_reset_rss():
            self.method = "process RSS high-water mark (VmHWM, reset via /proc/self/clear_refs after malloc_trim) - RSS before the call"
        else:
            self.method = "ru_maxrss (process peak so far, not resettable) - RSS before the first call"
        self.base = 0

    @staticmethod
    def _status(field_name: str) -> int | None:
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith(field_name + ":"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def _can_reset_rss(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
        except OSError:
            return False
        return self._status("VmHWM") is not None

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        elif self.method.startswith("process RSS"):
            malloc_trim()
            self._can_reset_rss()
            self.base = self._status("VmRSS") or 0
        elif not self.base:
            self.base = self._status("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def stop(self) -> int:
        """Bytes above the starting point."""
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - self.base
        if self.method.startswith("process RSS"):
            peak = self._status("VmHWM") or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return max(peak - self.base, 0)


def run_reference(model, features, lengths, beam: int, max_new_tokens: int) -> list[list[int]]:
    hyps = model.transcribe(features, lengths, beam_size=beam, nbest=1, decode_max_len=max_new_tokens, **DECODING)
    return [hyp[0]["yseq"].tolist() for hyp in hyps]


def cache_settings(cache: str, compile_mode: str, device: str = "cpu") -> dict:
    """`generate()` keywords for `--cache` and `--compile`: a static cache compiles its decoding steps on an
    accelerator by transformers' own rule (`auto`); `on` compiles on any device (fullgraph; on the CPU with the
    package's documented settings, `cpu_compile_config()`: frozen weights and max-autotune), `off` never."""
    settings = {"cache_implementation": cache}
    if compile_mode == "on":
        from transformers import CompileConfig

        from transformers_fireredasr import cpu_compile_config

        if device == "cpu":
            compile_config = cpu_compile_config()
        else:
            compile_config = CompileConfig(fullgraph=True)
            compile_config._compile_all_devices = True  # transformers' switch for compiling on any device
        settings["compile_config"] = compile_config
    elif compile_mode == "off":
        settings["disable_compile"] = True
    return settings


def run_ours(model, features, mask, beam: int, max_new_tokens: int, **settings) -> list[list[int]]:
    sequences = model.generate(
        features,
        attention_mask=mask,
        num_beams=beam,
        softmax_smoothing=DECODING["softmax_smoothing"],
        gnmt_length_penalty=DECODING["length_penalty"],
        eos_penalty=DECODING["eos_penalty"],
        max_new_tokens=max_new_tokens,
        **settings,
    )
    return [token_ids(row, model.config) for row in sequences.tolist()]


def token_ids(row: list[int], config) -> list[int]:
    """Our sequence without the start token, `<eos>` and padding: what the reference's `yseq` holds."""
    ids = row[1:]
    if config.eos_token_id in ids:
        return ids[: ids.index(config.eos_token_id)]
    while ids and ids[-1] == config.pad_token_id:
        ids.pop()
    return ids


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Measurement:
    """Timings (seconds), peak memory (bytes) and outputs of one implementation for one setting."""

    times: list[float] = field(default_factory=list)
    peak: int = 0
    outputs: list[list[int]] | None = None
    others: list[float] = field(default_factory=list)  # CPU share of other processes during each timed run

    @property
    def wall(self) -> float:
        return statistics.median(self.times)


class OtherLoad:
    """The share of all CPUs that other processes used over an interval (/proc/stat minus this process's time).

    The CPU may be shared: a figure well above 0 means the timing was disturbed. None where /proc is unavailable
    or the interval is too short to tell (under 50 clock ticks summed over all CPUs, 0.25 s on two CPUs).
    """

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[int, int, int] | None:
        try:
            with open("/proc/stat") as stat:
                values = [int(v) for v in stat.readline().split()[1:9]]
            with open("/proc/self/stat") as own:
                fields = own.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(values) - values[3] - values[4]  # all but idle and iowait
        return sum(values), busy, int(fields[11]) + int(fields[12])  # utime + stime, same clock ticks

    def share(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        total, busy, own = (e - s for e, s in zip(end, self.start, strict=True))
        return max(busy - own, 0) / total if total >= 50 else None


def timed(call, device: torch.device, result: Measurement) -> None:
    """One timed call; its outputs are kept from the first."""
    synchronize(device)
    load = OtherLoad()
    start = time.perf_counter()
    outputs = call()
    synchronize(device)
    result.times.append(time.perf_counter() - start)
    share = load.share()
    if share is not None:
        result.others.append(share)
    if result.outputs is None:
        result.outputs = outputs


def peak_memory(call, device: torch.device, memory: PeakMemory, result: Measurement) -> None:
    """One untimed call for its peak memory. Kept apart from the timed calls: on the CPU the measurement first
    hands the C allocator's free memory back to the system (`malloc_trim`), and a call that then faults its pages
    in again runs slower (up to 1.5x for compiled decoding steps), which no user's process does."""
    memory.start()
    synchronize(device)
    call()
    result.peak = max(result.peak, memory.stop())


def bench_setting(reference, ours, options, batch: int, beam: int, seconds: float, memory: PeakMemory) -> dict:
    """Warms up both sides once, then times them alternately `options.repeats` times; checks identical ids."""
    device = torch.device(options.device)
    dtype = getattr(torch, options.dtype)
    features, lengths = make_inputs(batch, seconds, options.seed, options.ragged)
    shortest = encoder_frames(int(lengths.min()))
    if shortest < options.max_new_tokens:
        # The reference limits every utterance to decode_max_len, ours also to its own encoder frame count.
        raise ValueError(
            f"{seconds} s inputs give {shortest} encoder frames, fewer than --max-new-tokens "
            f"{options.max_new_tokens}: use longer inputs"
        )
    features = features.to(device=device, dtype=dtype)
    mask = (torch.arange(features.shape[1])[None, :] < lengths[:, None]).long().to(device)
    lengths = lengths.to(device)

    def call_reference():
        return run_reference(reference, features, lengths, beam, options.max_new_tokens)

    def call_ours():
        return run_ours(
            ours,
            features,
            mask,
            beam,
            options.max_new_tokens,
            **cache_settings(options.cache, options.compile, options.device),
        )

    audio = batch * seconds if not options.ragged else float(lengths.sum()) / FRAMES_PER_SECOND
    row = run_side_by_side(call_reference, call_ours, device, memory, options.repeats)
    return dict(row, batch=batch, beam=beam, seconds=seconds, audio=audio, features=features, mask=mask)


def run_side_by_side(call_reference, call_ours, device: torch.device, memory: PeakMemory, repeats: int) -> dict:
    """Warms up both sides once, times them alternately `repeats` times, measures each side's peak memory in one
    more call and compares their token ids: the two measurements, the reference's mean tokens per utterance, its
    distinct transcripts and the differing ones."""
    ref, our = Measurement(), Measurement()
    with torch.inference_mode():
        call_reference()  # warm-up
        call_ours()
        for _ in range(repeats):
            timed(call_reference, device, ref)
            timed(call_ours, device, our)
        peak_memory(call_reference, device, memory, ref)
        peak_memory(call_ours, device, memory, our)
    mismatches = [
        (index, r, o) for index, (r, o) in enumerate(zip(ref.outputs, our.outputs, strict=True)) if r != o
    ]  # fmt: skip
    return dict(
        reference=ref,
        ours=our,
        mismatches=mismatches,
        tokens=statistics.mean(len(ids) for ids in ref.outputs),
        distinct=len({tuple(ids) for ids in ref.outputs}),
    )


def format_row(label: str, params: int, options, row: dict) -> list[str]:
    ref, our = row["reference"], row["ours"]
    identical = "identical" if not row["mismatches"] else f"{len(row['mismatches'])} DIFFER"
    identical += f" ({row['distinct']}/{row['batch']} distinct)"
    precision = (
        options.dtype if reduced_precision(options) is None else f"{options.dtype} / ours {reduced_precision(options)}"
    )
    return [
        label,
        f"{params / 1e6:.1f}M",
        options.device,
        precision,
        str(row["batch"]),
        str(row["beam"]),
        f"{row['audio']:.1f}",
        f"{row['tokens']:.1f}",
        f"{ref.wall:.3f}",
        f"{our.wall:.3f}",
        f"{ref.wall / row['audio']:.4f}",
        f"{our.wall / row['audio']:.4f}",
        f"{ref.wall / our.wall:.2f}x",
        f"{ref.peak / 2**20:.0f}",
        f"{our.peak / 2**20:.0f}",
        identical,
    ]


def report_setting(row: dict) -> list[str]:
    """Prints one setting's timings (and a warning when other processes loaded the CPU); returns a description of
    every utterance whose transcripts differ."""
    ref, our = row["reference"], row["ours"]
    setting = f"batch {row['batch']} beam {row['beam']} {row['seconds']:g} s"
    others = ref.others + our.others
    print(
        f"  {setting}: ref {', '.join(f'{t:.3f}' for t in ref.times)} s (min {min(ref.times):.3f}); "
        f"ours {', '.join(f'{t:.3f}' for t in our.times)} s (min {min(our.times):.3f}); "
        f"{row['distinct']}/{row['batch']} distinct transcripts"
        + (f"; other processes used up to {max(others):.0%} of the CPU" if others else ""),
        flush=True,
    )
    if others and max(others) > 0.05:
        print("  WARNING: other processes loaded the CPU during the timed runs; timings are disturbed")
    failures = []
    for index, ref_ids, our_ids in row["mismatches"]:
        first = next((i for i, (r, o) in enumerate(zip(ref_ids, our_ids, strict=False)) if r != o), None)
        first = min(len(ref_ids), len(our_ids)) if first is None else first
        failures.append(
            f"{setting} utterance {index} (first difference at token {first}):\n  reference {ref_ids}\n"
            f"  ours      {our_ids}"
        )
    return failures


def finish(rows: list[list[str]], failures: list[str], reduced: str | None = None) -> int:
    """Prints the table and the differing transcripts; the exit status (1 when any transcript differs, unless our
    side runs in `reduced` precision, where differences are expected and the table counts them)."""
    print()
    print(markdown_table(rows))
    if reduced is not None:
        print(f"\nours in {reduced}: the transcripts column counts those that differ from the reference's")
        return 0
    if failures:
        print("\nTRANSCRIPTS DIFFER:\n" + "\n".join(failures))
        return 1
    print("\nall transcripts identical")
    return 0


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment(options) -> str:
    device = torch.device(options.device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    import transformers

    import transformers_fireredasr

    return (
        f"date {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; device {options.device} ({name}); "
        f"torch {torch.__version__}, transformers {transformers.__version__}, python {platform.python_version()}; "
        f"torch threads {torch.get_num_threads()}; attention (ours) {options.attn}; cache (ours) {options.cache}, "
        f"compile {options.compile}\n"
        f"transformers_fireredasr from {Path(transformers_fireredasr.__file__).parent} ({source_revision()})"
    )


def source_revision() -> str:
    """The git commit of the imported transformers_fireredasr (with "+changes" when its tree is modified)."""
    import subprocess

    import transformers_fireredasr

    folder = Path(transformers_fireredasr.__file__).parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}{' +changes' if dirty else ''}"


def profile_ours(ours, row: dict, beam: int, max_new_tokens: int, settings: dict, limit: int = 25) -> str:
    """The top operators of one `generate` call of ours, by self CPU time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if row["features"].is_cuda else [])
    with torch.inference_mode(), profile(activities=activities) as profiler:
        run_ours(ours, row["features"], row["mask"], beam, max_new_tokens, **settings)
    sort_by = "self_cuda_time_total" if row["features"].is_cuda else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=limit)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from transformers_fireredasr.quantization import QUANTIZE_MODES  # after __main__ put this checkout on sys.path

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=sorted(SIZES), help="preset size with random weights")
    parser.add_argument("--checkpoint", default=None, help="original FireRedASR-AED model.pth.tar (or its folder)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--ours-dtype",
        default=None,
        choices=["float32", "float16", "bfloat16"],
        help="our side only (the reference keeps --dtype): reduced precision against the original as users run it",
    )
    parser.add_argument(
        "--quantize",
        default=None,
        choices=list(QUANTIZE_MODES),
        help="our side only, through torchao (transformers_fireredasr.quantization); CPU",
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[4], help="batch sizes (one row each)")
    parser.add_argument("--beam", type=int, nargs="+", default=[3], help="beam sizes (one row each)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0], help="seconds per utterance")
    parser.add_argument("--ragged", action="store_true", help="utterances of decreasing length (down to 60%%)")
    parser.add_argument("--max-new-tokens", type=int, default=50, help="output tokens per utterance at most")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="our attention implementation")
    parser.add_argument("--cache", default="dynamic", choices=["dynamic", "static"], help="our KV cache")
    parser.add_argument(
        "--compile",
        default="auto",
        choices=["auto", "on", "off"],
        help="compile our decoding steps with a static cache: auto = on accelerators only (transformers' rule)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators of ours")
    options = parser.parse_args(argv)
    if options.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if options.repeats < 1:
        parser.error("--repeats must be >= 1")
    if options.quantize and options.device != "cpu":
        parser.error("--quantize is a CPU mode (torchao int8); on a GPU use --ours-dtype")
    return options


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0 when every transcript is identical, 1 otherwise."""
    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    reference, ours, args, label = build_models(options)
    params = sum(p.numel() for p in ours.parameters())
    memory = PeakMemory(torch.device(options.device))
    print(environment(options))
    print(
        f"model {label}: d_model {args.d_model}, heads {args.n_head}, layers {args.n_layers_enc}+{args.n_layers_dec}, "
        f"vocab {args.odim}, kernel {args.kernel_size}, {params / 1e6:.1f}M parameters"
    )
    print(
        f"decoding: softmax_smoothing {DECODING['softmax_smoothing']}, length penalty {DECODING['length_penalty']}, "
        f"eos penalty {DECODING['eos_penalty']}, at most {options.max_new_tokens} tokens; "
        f"wall = median of {options.repeats} (after 1 warm-up), RTF = wall / audio seconds, "
        f"speed-up = ref wall / ours wall"
    )
    print(f"peak memory: one more call per side after the timed ones, {memory.method}")
    sys.stdout.flush()

    rows, failures = [], []
    for seconds in options.seconds:
        for batch in options.batch:
            for beam in options.beam:
                row = bench_setting(reference, ours, options, batch, beam, seconds, memory)
                rows.append(format_row(label, params, options, row))
                differences = report_setting(row)
                if reduced_precision(options) is None:
                    failures += differences
                elif differences:  # expected of reduced precision: reported, not a failure
                    print(f"  {len(differences)} of {row['batch']} transcripts differ from the reference's "
                          f"{options.dtype} ({reduced_precision(options)} on our side)")  # fmt: skip
                if options.profile:
                    settings = cache_settings(options.cache, options.compile, options.device)
                    print(profile_ours(ours, row, beam, options.max_new_tokens, settings))
    return finish(rows, failures, reduced_precision(options))


if __name__ == "__main__":
    # Benchmark the package of the checkout this script belongs to, whatever copy is installed.
    source = Path(__file__).resolve().parents[1] / "src"
    if (source / "transformers_fireredasr").is_dir():
        sys.path.insert(0, str(source))
    sys.exit(main())
