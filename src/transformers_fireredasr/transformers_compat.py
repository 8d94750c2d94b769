"""The one place that knows which transformers and torch releases are installed (the supported ranges are
pyproject.toml's dependencies).

transformers 5.24 renamed `past_key_values` to `cache`: in model forwards, in the mask functions
(`create_causal_mask(cache=...)`), in `generate`'s model kwargs and in the fields of the output classes
(`Seq2SeqLMOutput.cache`). 5.23 knows only the old name. This project's code uses the current name everywhere and
asks this module for the name to hand to transformers.

Everything here goes when the floor moves to 5.24: then `CACHE_NAME` is `"cache"`, `cache_kwarg(c)` is `{"cache": c}`,
and `accepts_legacy_cache_name` is transformers' own `deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")`.

torch: the CPU speed paths call operators that torch exposes without promising them (`torch.ops.mkldnn`'s prepacked
linear, `torch._weight_int8pack_mm`) and compile with Inductor, whose CPU backend needs a working C++ toolchain. Each
path asks `torch_offers` at run time and, where the answer is no, takes the plain path after one warning
(`speed_path_unavailable`): slower, never a crash or another answer. Both operators are in every torch from the floor
(2.13) to 2.15; the probes stay, because private operators can go in any release.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import transformers
from packaging import version
from transformers.utils.deprecation import deprecate_kwarg

TRANSFORMERS_VERSION = version.parse(transformers.__version__)
_CACHE_RENAMED = TRANSFORMERS_VERSION >= version.parse("5.24.0.dev0")

# The name transformers gives the KV cache in forwards, mask functions, generate's model kwargs and outputs.
CACHE_NAME = "cache" if _CACHE_RENAMED else "past_key_values"


def cache_kwarg(cache: Any) -> dict[str, Any]:
    """`{CACHE_NAME: cache}`: for calls into transformers (masks, output classes, inner models) on either release."""
    return {CACHE_NAME: cache}


def output_cache(outputs: Any) -> Any:
    """The cache an output object carries, read under the installed release's field name (no deprecation warning)."""
    return getattr(outputs, CACHE_NAME, None)


def accepts_legacy_cache_name(forward: Callable) -> Callable:
    """Lets a forward that takes `cache=` also be called with `past_key_values=`.

    On 5.24+ this is transformers' own decorator: the old name still works and warns, as for every transformers
    model. On 5.23 the old name is what transformers' own `generate` passes, so it is renamed without a warning.
    """
    if _CACHE_RENAMED:
        return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")(forward)

    @functools.wraps(forward)
    def renamed(*args, **kwargs):
        if "past_key_values" in kwargs:
            if kwargs.get("cache") is not None:
                raise ValueError("pass the KV cache once, as `cache` (not also as `past_key_values`)")
            kwargs["cache"] = kwargs.pop("past_key_values")
        return forward(*args, **kwargs)

    return renamed


# What each CPU speed path needs from torch, probed once: name -> (available, what runs without it).
_TORCH_FEATURES: dict[str, Callable[[], bool]] = {
    "onednn_linear": lambda: (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ),
    "int8_weight_kernel": lambda: hasattr(torch, "_weight_int8pack_mm"),
}
_FALLBACKS = {
    "onednn_linear": "fp32 products on the CPU use torch's default BLAS path (slower; the same results up to rounding)",
    "int8_weight_kernel": "int8 weights are multiplied by torchao's own path (slower; the same results up to rounding)",
    "compiled_decoding": "the decoding steps run eagerly (slower; the same results)",
}
_warned_unavailable: set[str] = set()


@functools.cache
def torch_offers(feature: str) -> bool:
    """Whether the installed torch has what the speed path `feature` calls (`onednn_linear`, `int8_weight_kernel`)."""
    try:
        return bool(_TORCH_FEATURES[feature]())
    except (AttributeError, RuntimeError):  # an operator namespace that this build lacks altogether
        return False


def speed_path_unavailable(feature: str, why: str = "") -> None:
    """Warns, once per process and speed path, that `feature` cannot run with the installed torch and what runs
    instead (`_FALLBACKS`)."""
    if feature in _warned_unavailable:
        return
    _warned_unavailable.add(feature)
    reason = why or f"torch {torch.__version__} lacks the operators it calls"
    warnings.warn(f"speed path {feature!r} is unavailable ({reason}): {_FALLBACKS[feature]}", stacklevel=3)


# transformers' private attributes and methods for compiled decoding steps. Each is reached through one function
# here, so that a rename in transformers is one edit, and each says the release that lets it go.


def compile_on_every_device(compile_config: Any) -> Any:
    """`compile_config` (a `CompileConfig`) with transformers' switch that lets `generate` compile its decoding steps
    outside accelerators set (`CompileConfig._compile_all_devices`, a testing switch that `_valid_auto_compile_criteria`
    reads); returns it. No release lets it go yet: `CompileConfig` has no public option for the CPU."""
    compile_config._compile_all_devices = True
    return compile_config


def auto_compile_allowed(model: Any, cache: Any, generation_config: Any) -> bool:
    """Whether transformers' own rules let `generate` compile `model`'s decoding steps on `cache` (device, cache kind,
    quantizer, offloading, `disable_compile`): `GenerationMixin._valid_auto_compile_criteria`. No release lets it go
    yet: transformers has no public form of that check, and a model with its own decoding loop must follow it."""
    return model._valid_auto_compile_criteria(cache_kwarg(cache), generation_config)


def cached_compiled_call(model: Any) -> Callable | None:
    """The compiled forward that `PreTrainedModel.get_compiled_call` keeps on `model` (`_compiled_call`), or None.
    No release lets it go yet: transformers keeps it privately, with no public accessor."""
    return model.__dict__.get("_compiled_call")


def drop_compiled_call(model: Any) -> None:
    """Makes `PreTrainedModel.get_compiled_call` compile `model`'s forward afresh on its next call, by deleting what it
    keeps (`_compiled_call`, `_last_compile_config`). No release lets it go yet: transformers recompiles only for
    another `CompileConfig` and offers no public reset."""
    for name in ("_compiled_call", "_last_compile_config"):
        model.__dict__.pop(name, None)


def dynamo_recompile_limit() -> int:
    """How many shapes torch compiles a function for (`torch._dynamo.config.recompile_limit`, 8 by default). Read
    defensively: in torch 2.15 a process that set and restored it (as `monkeypatch.setattr` does) found it hidden, and
    reading it raised. The older name `cache_size_limit` is the fallback, then torch's default."""
    import torch._dynamo.config as dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        try:
            return int(getattr(dynamo, name))
        except AttributeError:
            continue
    return 8


@contextmanager
def torchscript_deprecations_silenced() -> Iterator[None]:
    """Silences torch's notices that TorchScript is deprecated (`torch.jit.load`, `torch.jit.script_method`: a
    DeprecationWarning in torch 2.13, a FutureWarning from 2.14) while silero-vad, which ships its model as
    TorchScript, is imported and loaded: users cannot act on them. Goes when silero-vad's model is no TorchScript."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=category)
        yield


@contextmanager
def peft_probing_checkpointing() -> Iterator[None]:
    """Silences the one FutureWarning that peft (0.21.2, the newest release) causes inside transformers 5.24:
    `PeftModel.__init__` reads `model.is_gradient_checkpointing`, which 5.24 renamed `is_activation_checkpointing`.
    Goes when peft reads the new name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield


__all__ = [
    "CACHE_NAME",
    "TRANSFORMERS_VERSION",
    "accepts_legacy_cache_name",
    "auto_compile_allowed",
    "cache_kwarg",
    "cached_compiled_call",
    "compile_on_every_device",
    "drop_compiled_call",
    "dynamo_recompile_limit",
    "output_cache",
    "peft_probing_checkpointing",
    "speed_path_unavailable",
    "torch_offers",
    "torchscript_deprecations_silenced",
]
