"""Compiled decoding steps on the CPU: FireRedASR-AED's decoding steps without Python overhead, on prepacked weights.

    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder, **compiled_decoding_load_kwargs())  # Python
    model.generate(**inputs, **compiled_decoding_kwargs())
    pipeline("automatic-speech-recognition", model=folder, model_kwargs=compiled_decoding_load_kwargs(),
             generate_kwargs=compiled_decoding_kwargs())
    fireredasr-transcribe --compile audio.wav                                                   # the command line

It asks for a static cache, so that every decoding step after the first has the same shapes, and runs those steps
through `torch.compile` with two Inductor settings that pay on the CPU:
- `freezing`: the weights become constants of the compiled code, which Inductor prepacks for oneDNN (the eager path
  does that only for fp32, `cpu_linear.py`) and fuses the small operations of a step around;
- `max_autotune` with its C++ GEMM templates: for `int8-weight`'s int8 weights it picks Inductor's weight-only int8
  kernel, which reads them faster than torch's `_weight_int8pack_mm` at three beam rows.
With eager attention (`compiled_decoding_load_kwargs`), which Inductor fuses into the step, this is the fastest CPU
mode (benchmarks/RESULTS.md has the figures). Compiling keeps each mode's accuracy: fp32 transcripts are those of
eager decoding. On a GPU the static cache alone is asked for: transformers then compiles the steps itself, with CUDA
graphs. The modules that `speed_paths.apply_speed_paths` swapped in trace their plain path under `torch.compile`.

Freezing turns every tensor of a static cache (marked a static address) into part of the compiled code. What a step
only reads becomes a constant, which Inductor may fold further (eager attention's transposed keys): a static
cross-attention cache would leave later calls attending to the audio of the call that compiled the steps. So with
frozen weights the cross-attention cache is a `DynamicCache`, an ordinary input of the compiled steps. The
self-attention cache, which the steps write, stays static; its buffers are part of the compiled code too, so
`kept_static_cache` keeps one per compiled shape and refills it.

Why by hand: transformers compiles `generate`'s steps only on accelerators. On the CPU only its testing switch
`CompileConfig._compile_all_devices` turns that on (set by `transformers_compat.compile_on_every_device`, like every
private transformers attribute this package touches), and its default mode (`reduce-overhead`, CUDA graphs) does
nothing there. torch.compile also ignores `freezing` passed as an option, so the steps run inside
`torch._inductor.config.patch(...)` (`with_inductor_options`).

What is kept on the model, and why there: the static caches of compiled shapes (`_fireredasr_static_caches`) and the
fingerprint of the weights a frozen compile was made from (`_fireredasr_frozen_weights`), as transformers keeps its
compiled forward on the model: they live exactly as long as the model, whose compiled steps refer to them.

Costs, all paid by the first call: compiling takes minutes at the published sizes on a few cores (seconds for the
bundled demo), and every new shape (another batch size or encoder length) compiles again, up to torch's recompile
limit (`torch._dynamo.config.recompile_limit`, 8), after which the steps of further shapes run eagerly
(`with_inductor_options`). So it pays for many utterances of few shapes (fixed-length chunks, a benchmark), not yet
for archives of varied lengths. The compiled code keeps its own copy of the weights: when they change afterwards
(training, `load_state_dict`), `generate` notices, warns and decodes eagerly; `forget_compiled_decoding(model)` lets
the next call compile the new weights.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import torch
from transformers import CompileConfig

from .transformers_compat import (
    compile_on_every_device,
    drop_compiled_call,
    dynamo_recompile_limit,
    speed_path_unavailable,
)

# Compiled step functions whose compiling failed with this torch: their steps run eagerly.
_FAILED_COMPILES: weakref.WeakSet = weakref.WeakSet()
# What torch.compile hands to Inductor (as `options`, which excludes a `mode`).
INDUCTOR_OPTIONS = {"freezing": True, "max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}


def cpu_compile_config() -> CompileConfig:
    """transformers' `CompileConfig` for compiled decoding steps on the CPU (module docstring)."""
    # Static shapes: with frozen int8 weights, torch 2.13's shape-generic recompile fails on the next shape change
    # (a stride assertion in the compiled code), so every new shape compiles for itself.
    config = CompileConfig(fullgraph=True, dynamic=False, mode=None, options=dict(INDUCTOR_OPTIONS))
    return compile_on_every_device(config)  # transformers compiles the steps by itself only on accelerators


def compiled_decoding_load_kwargs(device: str | torch.device = "cpu") -> dict:
    """`from_pretrained()` keywords for a model whose decoding steps will be compiled on `device`: eager attention on
    the CPU. Inductor fuses its products and softmax into the step, while SDPA's CPU kernel (a call Inductor leaves
    alone) is slow for the few query rows of a decoding step (benchmarks/RESULTS.md)."""
    return {"attn_implementation": "eager"} if torch.device(device).type == "cpu" else {}


def compiled_decoding_kwargs(device: str | torch.device = "cpu") -> dict:
    """`generate()` keywords that compile the decoding steps on `device`: a static cache, plus `cpu_compile_config()`
    on the CPU (on an accelerator, transformers compiles static-cache steps by itself)."""
    kwargs: dict = {"cache_implementation": "static"}
    if torch.device(device).type == "cpu":
        kwargs["compile_config"] = cpu_compile_config()
    return kwargs


def with_inductor_options(compiled_call: Callable, compile_config: CompileConfig, eager_call: Callable) -> Callable:
    """`compiled_call` run with `compile_config.options` set in Inductor's config, where they take effect, and
    `eager_call` for a step that torch will not compile any more.

    Why the options: `torch.compile(options={"freezing": True})` compiles without freezing (torch 2.13: the option
    reaches Inductor after the choice of a frozen graph is made), so they are set around every call; compiling
    happens inside the first call of a shape, so it sees them. Why the eager fallback: past torch's recompile limit
    (`torch._dynamo.config.recompile_limit`, one compile per shape), a `fullgraph=True` compile raises before it runs
    anything; that step, and every step of a shape after it, then runs eagerly (one warning). Why the other
    fallback: where this torch cannot compile the steps at all (no C++ toolchain for Inductor's CPU code, a Dynamo
    or Inductor change), every step runs eagerly, after one warning (`transformers_compat.speed_path_unavailable`)."""
    import torch._dynamo.exc
    import torch._inductor.config

    options = dict(compile_config.options or {})

    def call(*args, **kwargs):
        if compiled_call in _FAILED_COMPILES:
            return eager_call(*args, **kwargs)
        with torch._inductor.config.patch(options):
            try:
                return compiled_call(*args, **kwargs)
            except torch._dynamo.exc.FailOnRecompileLimitHit:  # what fullgraph=True raises at the limit
                pass
            except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.TorchRuntimeError) as error:
                # This torch cannot compile the steps (no C++ toolchain, an Inductor or Dynamo change): they run
                # eagerly from now on. An error of the step itself is raised again by the eager call below.
                _FAILED_COMPILES.add(compiled_call)
                speed_path_unavailable("compiled_decoding", f"torch {torch.__version__}: {type(error).__name__}")
                return eager_call(*args, **kwargs)
        warnings.warn(
            "the decoding steps were compiled for as many shapes (batch sizes, audio lengths) as torch's recompile "
            "limit allows: steps of further shapes run without compiling",
            stacklevel=3,
        )
        return eager_call(*args, **kwargs)

    return call


def freezes_weights(compile_config: CompileConfig | None) -> bool:
    """Whether `compile_config` folds the weights into the compiled code (Inductor's `freezing`)."""
    return bool(compile_config is not None and (compile_config.options or {}).get("freezing"))


def weights_fingerprint(model: torch.nn.Module) -> tuple:
    """Where every parameter lives and how often it was changed in place: what a frozen compile depends on."""
    return tuple((parameter.data_ptr(), parameter._version) for parameter in model.parameters())


def frozen_call_usable(model: torch.nn.Module, compiled_call) -> bool:
    """True when `compiled_call` (from `get_compiled_call` with freezing) was compiled from the model's current
    weights, or is new (its weights are recorded now); False, with a warning, when they changed since."""
    fingerprint = weights_fingerprint(model)
    recorded = getattr(model, "_fireredasr_frozen_weights", None)
    if recorded is None or recorded[0] is not compiled_call:
        model._fireredasr_frozen_weights = (compiled_call, fingerprint)
        return True
    if recorded[1] == fingerprint:
        return True
    warnings.warn(
        "the model's weights changed after its decoding steps were compiled with frozen weights, so this call decodes "
        "without the compiled steps; call transformers_fireredasr.forget_compiled_decoding(model) to compile the new "
        "weights on the next call",
        stacklevel=4,
    )
    return False


def kept_static_cache(model: torch.nn.Module, key: tuple, build: Callable[[], object], every_shape: bool):
    """The static cache for decoding shapes `key`, kept on `model` for the next call of the same shapes, as
    transformers' generate keeps its `_cache` (the buffers a CUDA graph was recorded on stay the same, so it is
    replayed rather than recorded again); `build()` makes a new one. It is `reset()` before reuse.

    `every_shape` (frozen weights): one cache per shape is kept, not only the last. Freezing makes a static cache's
    buffers part of the compiled code (module docstring), so a shape's compiled steps use the buffers they were
    compiled with whatever cache they are given: a return to a shape must bring that cache. Those steps keep it alive
    anyway; at most `torch._dynamo.config.recompile_limit` caches are kept (no later shape compiles), the others
    serve their call only."""
    kept = model.__dict__.setdefault("_fireredasr_static_caches", {})
    cache = kept.get(key)
    if cache is not None:
        cache.reset()
        return cache
    cache = build()
    if not every_shape:
        kept.clear()
    if len(kept) < dynamo_recompile_limit():
        kept[key] = cache
    return cache


def forget_compiled_decoding(model: torch.nn.Module) -> None:
    """Drops the model's compiled decoding steps so that the next `generate` compiles its current weights. It calls
    `torch._dynamo.reset()`, which clears every compiled function of the process."""
    drop_compiled_call(model)
    for name in ("_fireredasr_frozen_weights", "_fireredasr_static_caches"):
        model.__dict__.pop(name, None)
    torch._dynamo.reset()


__all__ = [
    "compiled_decoding_kwargs",
    "compiled_decoding_load_kwargs",
    "cpu_compile_config",
    "forget_compiled_decoding",
]
