"""`apply_speed_paths(model)`: the model files hold plain modules, and the CPU speed paths are swapped into a loaded
model by one call, which every entry point makes through the engine; `print(model)` then shows what runs."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.audio import HELD_OUT_CLIPS
from transformers_fireredasr import apply_speed_paths, cpu_linear, demo_model_dir, remove_speed_paths
from transformers_fireredasr.cpu_linear import PrepackedLinear, PrepackedPointwiseConv1d, TimeMajorDepthwiseConv1d

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "transformers_fireredasr"
SPEED_MODULES = {"cpu_linear", "compiled_decoding", "quantization", "speed_paths"}
ACCELERATED = ("PrepackedLinear", "PrepackedPointwiseConv1d", "TimeMajorDepthwiseConv1d")
DEMO = str(demo_model_dir())


def load_demo():
    from transformers import AutoModelForSpeechSeq2Seq

    return AutoModelForSpeechSeq2Seq.from_pretrained(DEMO).eval()


def classes(model: nn.Module) -> dict[str, str]:
    return {name: type(module).__name__ for name, module in model.named_modules()}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, relative imports as their last dotted part too (`.cpu_linear` -> cpu_linear)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}".strip(".") for alias in node.names)
    return names | {name.rpartition(".")[2] for name in names}


def test_model_files_import_no_speed_module():
    """The architecture imports no kernels, layouts, quantization or compiling: those are applied to a loaded model."""
    files = sorted(PACKAGE.glob("modeling_*.py"))
    assert {path.name for path in files} >= {
        "modeling_conformer.py",
        "modeling_fireredasr_aed.py",
        "modeling_fireredasr_llm.py",
    }
    for path in files:
        assert not imported_modules(path) & SPEED_MODULES, path.name
        assert "mkldnn" not in path.read_text() and "conv2d" not in path.read_text(), path.name


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path):
    """The check above can fail: each form of import of a speed module is seen."""
    for line in (
        "from .cpu_linear import PrepackedLinear",
        "from . import speed_paths",
        "import transformers_fireredasr.compiled_decoding",
        "from transformers_fireredasr.quantization import quantization_config",
    ):
        (tmp_path / "modeling_x.py").write_text(line + "\n")
        assert imported_modules(tmp_path / "modeling_x.py") & SPEED_MODULES, line


def test_a_loaded_model_is_plain_and_the_call_swaps_in_the_accelerated_modules():
    """`from_pretrained` gives plain Linears and Conv1ds; `apply_speed_paths` swaps them in place (the same objects:
    parameters, the tied output projection and state dict keys stay), and a second call changes nothing."""
    model = load_demo()
    plain = repr(model)
    assert "Linear(in_features=" in plain and not any(name in plain for name in ACCELERATED)
    assert all(type(m) in (nn.Linear, nn.Conv1d) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d)))
    modules = dict(model.named_modules())
    parameters = dict(model.named_parameters(remove_duplicate=False))
    state = {key: value.clone() for key, value in model.state_dict().items()}

    assert apply_speed_paths(model) is model
    text = repr(model)
    for name in ACCELERATED:
        assert f"{name}(" in text
    assert "(proj_out): PrepackedLinear(in_features=128, out_features=406, bias=False)" in text
    assert isinstance(model.ctc_head, PrepackedLinear)
    conv = model.model.encoder.layers[0].conv_module
    assert (
        type(conv.pointwise_conv1) is PrepackedPointwiseConv1d
        and type(conv.pointwise_conv2) is PrepackedPointwiseConv1d
    )
    assert type(conv.depthwise_conv) is TimeMajorDepthwiseConv1d
    assert type(model.model.encoder.subsampling.conv1) is nn.Conv2d  # no kernel of ours for it
    assert all(type(m) is not nn.Linear for m in model.modules())  # every Linear of the AED is ours
    swapped = classes(model)

    assert dict(model.named_modules()) == modules  # the same objects under the same names
    assert all(p is parameters[n] for n, p in model.named_parameters(remove_duplicate=False))
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight
    assert model.get_output_embeddings() is model.proj_out
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())

    assert apply_speed_paths(model) is model and classes(model) == swapped  # idempotent
    assert dict(model.named_modules()) == modules

    assert remove_speed_paths(model) is model
    assert repr(model) == plain and dict(model.named_modules()) == modules


def test_the_engine_and_the_pipeline_apply_the_speed_paths():
    """Every entry point builds an `Engine`, which applies the speed paths to its model; the pipeline makes its
    engine over its model, so `print(pipe.model)` shows the accelerated modules."""
    from transformers import AutoProcessor, pipeline

    from transformers_fireredasr.engine import Engine

    processor = AutoProcessor.from_pretrained(DEMO)
    engine = Engine(load_demo(), processor.feature_extractor, processor.tokenizer)
    assert all(f"{name}(" in repr(engine.model) for name in ACCELERATED)
    assert all(f"{name}(" in repr(Engine.from_pretrained(DEMO).model) for name in ACCELERATED)

    pipe = pipeline("automatic-speech-recognition", model=DEMO)
    assert pipe(str(HELD_OUT_CLIPS[0]))["text"]
    assert all(f"{name}(" in repr(pipe.model) for name in ACCELERATED)


def test_pipeline_transcripts_are_the_same_with_and_without_the_speed_paths():
    """fp32: the demo's held-out clips give the same text through the pipeline, and the same token ids from
    `generate`, with the speed paths and without them (also with every product packed, the decoder's small steps
    included)."""
    from transformers import AutoProcessor, pipeline

    from transformers_fireredasr.audio_io import load_waveform

    clips = [str(path) for path in HELD_OUT_CLIPS]
    pipe = pipeline("automatic-speech-recognition", model=DEMO)
    accelerated = [result["text"] for result in pipe(clips)]
    assert isinstance(pipe.model.proj_out, PrepackedLinear)
    remove_speed_paths(pipe.model)  # the engine keeps the model object, now plain
    plain = [result["text"] for result in pipe(clips)]
    assert type(pipe.model.proj_out) is nn.Linear
    assert accelerated == plain and all(plain)

    processor = AutoProcessor.from_pretrained(DEMO)
    features = processor([load_waveform(clip) for clip in clips], sampling_rate=16000, return_tensors="pt")
    model = load_demo()
    with torch.inference_mode():
        expected = model.generate(**features)
        apply_speed_paths(model)
        assert torch.equal(model.generate(**features), expected)
        assert any(m._packed is not None for m in model.modules() if isinstance(m, PrepackedLinear))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(cpu_linear, "MIN_PACKED_WORK", 0)
            assert torch.equal(model.generate(**features), expected)
    assert processor.batch_decode(expected, skip_special_tokens=True) == plain


def test_training_after_the_swap_takes_the_plain_path():
    """`model.train()` and gradients after the swap: the loss and every gradient are those of the plain model, and
    nothing is packed while autograd records."""
    from transformers import AutoProcessor

    from transformers_fireredasr.audio_io import load_waveform

    processor = AutoProcessor.from_pretrained(DEMO)
    inputs = processor([load_waveform(str(HELD_OUT_CLIPS[0]))], sampling_rate=16000, return_tensors="pt")
    labels = torch.tensor([[5, 6, 7, 8, processor.tokenizer.eos_token_id]])
    plain = load_demo()
    plain.train()
    accelerated = apply_speed_paths(copy.deepcopy(plain))
    losses = []
    for model in (plain, accelerated):
        torch.manual_seed(0)  # the same dropout masks
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        losses.append(loss)
    assert torch.equal(losses[0], losses[1])
    with_grads = 0
    for (name, p), q in zip(plain.named_parameters(), accelerated.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), name  # the CTC head is not in this loss
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name
            with_grads += 1
    assert with_grads > 100
    assert all(m._packed is None for m in accelerated.modules() if isinstance(m, PrepackedLinear))


def test_modules_off_the_cpu_or_of_other_dtypes_stay_plain():
    """A model on another device (here the meta device, standing in for a GPU) or in bf16 keeps plain modules: the
    CPU fp32 kernels would not run there, and `print(model)` shows what runs."""
    from transformers import AutoConfig, AutoModelForSpeechSeq2Seq

    with torch.device("meta"):
        elsewhere = AutoModelForSpeechSeq2Seq.from_config(AutoConfig.from_pretrained(DEMO))
    assert classes(apply_speed_paths(elsewhere)) == classes(load_demo())
    bf16 = load_demo().to(torch.bfloat16)
    assert not any(name in repr(apply_speed_paths(bf16)) for name in ACCELERATED)


def test_only_fireredasrs_own_modules_are_swapped():
    """The speed paths swap the Linears and Conv1ds that FireRedASR's modules hold, not those of a model they are
    put in or that wraps them (a language model's, whose packed copies would double its memory)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from transformers_fireredasr.modeling_conformer import FireRedConformerEncoder

    encoder = load_demo().get_encoder()
    lm = Qwen2ForCausalLM(
        Qwen2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, vocab_size=32)
    )
    both = nn.ModuleDict({"encoder": encoder, "lm": lm, "head": nn.Linear(4, 4)})
    apply_speed_paths(both)
    assert isinstance(encoder, FireRedConformerEncoder)
    assert type(encoder.layers[0].feed_forward1.linear1) is PrepackedLinear
    assert type(lm.lm_head) is nn.Linear and type(lm.model.layers[0].mlp.up_proj) is nn.Linear
    assert type(both["head"]) is nn.Linear
