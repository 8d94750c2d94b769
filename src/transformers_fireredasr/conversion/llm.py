"""Converts an original FireRedASR-LLM directory into a folder that `from_pretrained` loads.

Input: `model.pth.tar` (encoder, projector and LoRA tensors), `asr_encoder.pth.tar` (an AED package; its encoder
is loaded first and overridden by the encoder in `model.pth.tar`, as the original does), `cmvn.ark` and
`Qwen2-7B-Instruct/` (a transformers folder with safetensors weights). Default: the LoRA update is merged into the
Qwen2 weights (one plain model that quantizes cleanly). `--keep_lora`: the base weights plus a peft adapter in
`lora_adapter/` that `from_pretrained` applies and that can be fine-tuned further. The output also gets the
FireRedASR-LLM-L model card as `README.md` (whatever the converted sizes).

FireRedASR2-LLM (the same code) is told apart by its `asr_encoder.pth.tar`, which holds only `args`: the encoder
weights then all come from `model.pth.tar`. It gets the FireRedASR2-LLM card and its 40 s input limit
(`max_segment_seconds`); upstream runs it in bfloat16 (`--dtype bfloat16` converts the weights to it).

Tensors are streamed one at a time into size-bounded safetensors shards, so memory holds the shard being written
(and `model.pth.tar`'s encoder, projector and LoRA tensors), never the whole language model.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from ..configuration_fireredasr import FireRedLlmConfig
from ..processing_fireredasr import SPEECH_TOKEN, FireRedLlmProcessor
from .aed import AED_ARGS, check_input_dir, encoder_config_from_args, load_cmvn
from .checkpoint import load_original_package, require_args
from .hub import LLM2_CARD, LLM_CARD, finish_conversion
from .key_mapping import ENCODER_KEY_MAPPING, is_dropped, rename_key

LLM_DIR = "Qwen2-7B-Instruct"
LLM_FILES = ("model.pth.tar", "asr_encoder.pth.tar", "cmvn.ark")
LORA_SUBFOLDER = "lora_adapter"
# The original builds its LoRA with r=64, alpha=16 on these projections (scale alpha / r); alpha is not stored.
LORA_ALPHA = 16
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_LORA_KEY = re.compile(r"^llm\.base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$")

# Published decoding settings of FireRedASR-LLM (beam 3, repetition penalty 3.0, length penalty 1.0).
# `max_new_tokens` is only a ceiling: each utterance is limited to its number of speech vectors (the original's
# rule); a value here also keeps the ASR pipeline from imposing its own 256-token default.
LLM_DECODING = {
    "num_beams": 3,
    "repetition_penalty": 3.0,
    "length_penalty": 1.0,
    "temperature": 1.0,
    "top_p": 1.0,
    "max_new_tokens": 4096,
}


def llm_generation_config(text_config) -> GenerationConfig:
    """The published decoding settings as a generation config, with the language model's special token ids."""
    return GenerationConfig(
        bos_token_id=text_config.bos_token_id,
        eos_token_id=text_config.eos_token_id,
        pad_token_id=text_config.pad_token_id,
        **LLM_DECODING,
    )


# FireRedASR2-LLM's recommended input limit (v1: 30 s, the pipeline's default for the LLM).
V2_MAX_SEGMENT_SECONDS = 40.0


def llm_version(asr_encoder_state: dict) -> int:
    """2 when `asr_encoder.pth.tar` carries no encoder weights (FireRedASR2-LLM), else 1."""
    return 1 if any(key.startswith("encoder.") for key in asr_encoder_state) else 2


def split_llm_package(state_dict: dict) -> tuple[dict, dict, dict[str, dict[str, torch.Tensor]]]:
    """Splits `model.pth.tar` weights into encoder (original names), projector and LoRA `{module: {A, B}}`."""
    encoder, projector, lora = {}, {}, {}
    for key, tensor in state_dict.items():
        if key.startswith("encoder."):
            encoder[key[len("encoder.") :]] = tensor
        elif key.startswith("encoder_projector."):
            projector["projector." + key[len("encoder_projector.") :]] = tensor
        elif match := _LORA_KEY.match(key):
            lora.setdefault(match.group(1), {})[match.group(2)] = tensor
        elif not key.startswith("llm."):
            raise KeyError(f"unexpected key in the original checkpoint: {key!r}")
    incomplete = [module for module, pair in lora.items() if set(pair) != {"A", "B"}]
    if incomplete:
        raise ValueError(f"LoRA tensors without their A/B partner: {incomplete[:3]}")
    return encoder, projector, lora


def encoder_weights(asr_encoder_state: dict, llm_encoder_state: dict) -> dict[str, torch.Tensor]:
    """Encoder tensors under this package's names; `model.pth.tar` wins over `asr_encoder.pth.tar`."""
    merged = {k[len("encoder.") :]: v for k, v in asr_encoder_state.items() if k.startswith("encoder.")}
    merged.update(llm_encoder_state)
    return {
        "encoder." + rename_key(key, ENCODER_KEY_MAPPING): tensor
        for key, tensor in merged.items()
        if not is_dropped("encoder." + key)
    }


def merge_lora(weight: torch.Tensor, pair: dict[str, torch.Tensor]) -> torch.Tensor:
    """`weight + (alpha / r) * B @ A`, computed in float32 and returned in `weight`'s dtype and device."""
    scale = LORA_ALPHA / pair["A"].shape[0]
    update = scale * (pair["B"].to(weight.device, torch.float32) @ pair["A"].to(weight.device, torch.float32))
    return (weight.float() + update).to(weight.dtype)


def llm_tensors(llm_dir: Path, lora: dict, merge: bool) -> Iterator[tuple[str, torch.Tensor]]:
    """The language model's tensors one at a time, with the LoRA update merged in when `merge`."""
    files = sorted(llm_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{llm_dir} has no *.safetensors weights")
    used = set()
    for file in files:
        with safe_open(str(file), framework="pt") as shard:
            for key in shard.keys():
                tensor = shard.get_tensor(key)
                module = key.removesuffix(".weight")
                if merge and module in lora:
                    tensor = merge_lora(tensor, lora[module])
                    used.add(module)
                yield "language_model." + key, tensor
    if merge and used != set(lora):
        raise ValueError(f"LoRA tensors for modules missing from {llm_dir}: {sorted(set(lora) - used)[:3]}")


class ShardWriter:
    """Writes tensors into safetensors shards of at most `max_shard_bytes`, plus the index transformers reads."""

    def __init__(self, output_dir: Path, max_shard_bytes: int):
        self.output_dir = output_dir
        self.max_shard_bytes = max_shard_bytes
        self.current: dict[str, torch.Tensor] = {}
        self.current_bytes = 0
        self.shards: list[list[str]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self.current and self.current_bytes + size > self.max_shard_bytes:
            self._flush()
        self.current[name] = tensor.contiguous()
        self.current_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        index = len(self.shards)
        save_file(self.current, str(self.output_dir / f"shard-{index}.tmp"), metadata={"format": "pt"})
        self.shards.append(list(self.current))
        self.current, self.current_bytes = {}, 0

    def close(self) -> None:
        if self.current or not self.shards:
            self._flush()
        count = len(self.shards)
        if count == 1:
            (self.output_dir / "shard-0.tmp").rename(self.output_dir / "model.safetensors")
            return
        weight_map = {}
        for index, names in enumerate(self.shards):
            final = f"model-{index + 1:05d}-of-{count:05d}.safetensors"
            (self.output_dir / f"shard-{index}.tmp").rename(self.output_dir / final)
            weight_map.update(dict.fromkeys(names, final))
        index_file = self.output_dir / "model.safetensors.index.json"
        index_file.write_text(json.dumps({"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}))


def write_lora_adapter(folder: Path, lora: dict) -> None:
    """Saves the LoRA tensors as a peft adapter of the language model."""
    from peft import LoraConfig

    rank = next(iter(lora.values()))["A"].shape[0]
    config = LoraConfig(r=rank, lora_alpha=LORA_ALPHA, lora_dropout=0.05, target_modules=LORA_TARGETS,
                        task_type="CAUSAL_LM")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    tensors = {f"base_model.model.{module}.lora_{part}.weight": pair[part].contiguous()
               for module, pair in lora.items() for part in ("A", "B")}  # fmt: skip
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})


def convert_llm(
    input_dir: str | Path,
    output_dir: str | Path,
    keep_lora: bool = False,
    dtype: torch.dtype | None = None,
    max_shard_size: int = 5 * 1024**3,
    push_to_hub: str | None = None,
) -> Path:
    """Converts the original LLM directory `input_dir` into `output_dir`; returns `output_dir`."""
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    check_input_dir(input_dir, LLM_FILES)
    llm_dir = input_dir / LLM_DIR
    if not (llm_dir / "config.json").is_file():
        raise FileNotFoundError(f"{input_dir} lacks the language model folder {LLM_DIR}/ (with config.json)")
    args, state_dict = load_original_package(input_dir / "model.pth.tar")
    require_args(args, ["encoder_downsample_rate"], input_dir / "model.pth.tar")
    encoder_args, encoder_state = load_original_package(input_dir / "asr_encoder.pth.tar", weights_optional=True)
    require_args(encoder_args, [name for name in AED_ARGS if name != "odim"], input_dir / "asr_encoder.pth.tar")
    llm_encoder, projector, lora = split_llm_package(state_dict)
    version = llm_version(encoder_state)
    if version == 2 and not llm_encoder:
        raise ValueError(
            f"{input_dir / 'asr_encoder.pth.tar'} holds no weights (FireRedASR2-LLM) and "
            f"{input_dir / 'model.pth.tar'} has no encoder.* tensors either: the encoder weights are missing"
        )
    if not lora and keep_lora:
        raise ValueError(f"{input_dir / 'model.pth.tar'} holds no LoRA tensors to keep")

    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
    tokenizer.add_special_tokens({"additional_special_tokens": [SPEECH_TOKEN]})
    tokenizer.pad_token = "<|endoftext|>"
    text_config = AutoConfig.from_pretrained(str(llm_dir))
    text_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text_config.bos_token_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
    text_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    speech_token_id = tokenizer.convert_tokens_to_ids(SPEECH_TOKEN)
    if speech_token_id >= text_config.vocab_size:
        raise ValueError(f"{SPEECH_TOKEN} gets id {speech_token_id}, beyond the LM's {text_config.vocab_size} rows")
    processor = FireRedLlmProcessor(
        load_cmvn(input_dir / "cmvn.ark", encoder_args.idim),
        tokenizer,
        encoder_downsample_rate=args.encoder_downsample_rate,
    )
    prefix_ids, suffix_ids = processor.prompt_ids()
    config = FireRedLlmConfig(
        encoder_config=encoder_config_from_args(encoder_args),
        text_config=text_config.to_dict(),
        speech_token_id=speech_token_id,
        encoder_downsample_rate=args.encoder_downsample_rate,
        prompt_prefix_ids=prefix_ids,
        prompt_suffix_ids=suffix_ids,
        lora_adapter_subfolder=LORA_SUBFOLDER if keep_lora else None,
        max_segment_seconds=V2_MAX_SEGMENT_SECONDS if version == 2 else None,
        lowercase_output=version == 2,
    )
    config.architectures = ["FireRedLlmForSpeechSeq2Seq"]

    output_dir.mkdir(parents=True, exist_ok=True)
    writer = ShardWriter(output_dir, max_shard_size)
    tensors = [*encoder_weights(encoder_state, llm_encoder).items(), *projector.items()]
    for name, tensor in [*tensors, *llm_tensors(llm_dir, lora, merge=not keep_lora)]:
        writer.add(name, tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor)
    writer.close()
    if keep_lora:
        write_lora_adapter(output_dir / LORA_SUBFOLDER, lora)

    config.save_pretrained(output_dir)
    llm_generation_config(text_config).save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return finish_conversion(output_dir, push_to_hub, model_card=LLM2_CARD if version == 2 else LLM_CARD)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_dir", required=True, help="original FireRedASR-LLM directory")
    parser.add_argument("--output_dir", required=True, help="where to write the transformers folder")
    parser.add_argument("--keep_lora", action="store_true", help="keep LoRA as a peft adapter instead of merging")
    parser.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"], help="cast weights")
    parser.add_argument("--max_shard_size_gb", type=float, default=5.0)
    parser.add_argument("--push_to_hub", default=None, metavar="REPO_ID", help="also upload the folder to the Hub")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    convert_llm(
        options.input_dir,
        options.output_dir,
        keep_lora=options.keep_lora,
        dtype=getattr(torch, options.dtype) if options.dtype else None,
        max_shard_size=int(options.max_shard_size_gb * 1024**3),
        push_to_hub=options.push_to_hub,
    )


if __name__ == "__main__":
    main()
