"""Original FireRedASR state-dict names -> this package's names, as data (regex, replacement) applied in order."""

from __future__ import annotations

import re

# Encoder keys, relative to the encoder module (original prefix `encoder.`).
ENCODER_KEY_MAPPING: list[tuple[str, str]] = [
    (r"^input_preprocessor\.conv\.0\.", "subsampling.conv1."),
    (r"^input_preprocessor\.conv\.2\.", "subsampling.conv2."),
    (r"^input_preprocessor\.out\.", "subsampling.out."),
    (r"^layer_stack\.(\d+)\.ffn([12])\.net\.0\.", r"layers.\1.feed_forward\2.layer_norm."),
    (r"^layer_stack\.(\d+)\.ffn([12])\.net\.1\.", r"layers.\1.feed_forward\2.linear1."),
    (r"^layer_stack\.(\d+)\.ffn([12])\.net\.4\.", r"layers.\1.feed_forward\2.linear2."),
    (r"^layer_stack\.(\d+)\.mhsa\.w_qs\.", r"layers.\1.self_attn.q_proj."),
    (r"^layer_stack\.(\d+)\.mhsa\.w_ks\.", r"layers.\1.self_attn.k_proj."),
    (r"^layer_stack\.(\d+)\.mhsa\.w_vs\.", r"layers.\1.self_attn.v_proj."),
    (r"^layer_stack\.(\d+)\.mhsa\.fc\.", r"layers.\1.self_attn.o_proj."),
    (r"^layer_stack\.(\d+)\.mhsa\.layer_norm_([qkv])\.", r"layers.\1.self_attn.\2_norm."),
    (r"^layer_stack\.(\d+)\.mhsa\.linear_pos\.", r"layers.\1.self_attn.relative_k_proj."),
    (r"^layer_stack\.(\d+)\.mhsa\.pos_bias_([uv])$", r"layers.\1.self_attn.bias_\2"),
    (r"^layer_stack\.(\d+)\.conv\.pre_layer_norm\.", r"layers.\1.conv_module.layer_norm."),
    (r"^layer_stack\.(\d+)\.conv\.batch_norm\.", r"layers.\1.conv_module.norm."),
    (r"^layer_stack\.(\d+)\.conv\.(pointwise_conv1|depthwise_conv|pointwise_conv2)\.", r"layers.\1.conv_module.\2."),
    (r"^layer_stack\.(\d+)\.layer_norm\.", r"layers.\1.final_layer_norm."),
]

# Decoder keys, relative to the decoder module (original prefix `decoder.`).
DECODER_KEY_MAPPING: list[tuple[str, str]] = [
    (r"^tgt_word_emb\.", "embed_tokens."),
    (r"^layer_stack\.(\d+)\.self_attn_norm\.", r"layers.\1.self_attn_layer_norm."),
    (r"^layer_stack\.(\d+)\.cross_attn_norm\.", r"layers.\1.encoder_attn_layer_norm."),
    (r"^layer_stack\.(\d+)\.mlp_norm\.", r"layers.\1.final_layer_norm."),
    (r"^layer_stack\.(\d+)\.self_attn\.w_([qkv])s\.", r"layers.\1.self_attn.\2_proj."),
    (r"^layer_stack\.(\d+)\.self_attn\.fc\.", r"layers.\1.self_attn.o_proj."),
    (r"^layer_stack\.(\d+)\.cross_attn\.w_([qkv])s\.", r"layers.\1.encoder_attn.\2_proj."),
    (r"^layer_stack\.(\d+)\.cross_attn\.fc\.", r"layers.\1.encoder_attn.o_proj."),
    (r"^layer_stack\.(\d+)\.mlp\.w_1\.", r"layers.\1.fc1."),
    (r"^layer_stack\.(\d+)\.mlp\.w_2\.", r"layers.\1.fc2."),
    (r"^layer_norm_out\.", "norm."),
]

# FireRedASR2-AED's CTC head (`ctc.ctc_lo`, a Linear on the final encoder output), relative to `ctc.`.
CTC_KEY_MAPPING: list[tuple[str, str]] = [(r"^ctc_lo\.(weight|bias)$", r"\1")]

# Keys with no counterpart: fixed sinusoid tables (computed on the fly here) and the tied output projection.
DROPPED_KEYS = (r"(^|\.)positional_encoding\.pe$", r"^decoder\.tgt_word_prj\.weight$")

# Original top-level prefix -> (mapping, this package's prefix) for FireRedAedForConditionalGeneration.
AED_PREFIXES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "encoder.": (ENCODER_KEY_MAPPING, "model.encoder."),
    "decoder.": (DECODER_KEY_MAPPING, "model.decoder."),
    "ctc.": (CTC_KEY_MAPPING, "ctc_head."),
}

# FireRedLID's checkpoint: the AED encoder, and the decoder under `lid_decoder.` (its tied `tgt_word_prj` is checked
# and dropped by the converter, `conversion/lid.py`), for FireRedLidForConditionalGeneration.
LID_PREFIXES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "encoder.": (ENCODER_KEY_MAPPING, "model.encoder."),
    "lid_decoder.": (DECODER_KEY_MAPPING, "model.decoder."),
}

# The state-dict key whose presence marks a FireRedASR2-AED checkpoint (v1 has no CTC head).
V2_AED_MARKER = "ctc.ctc_lo.weight"


def rename_key(key: str, mapping: list[tuple[str, str]]) -> str:
    """Applies the first matching rule of `mapping`; raises KeyError for a key no rule knows."""
    for pattern, replacement in mapping:
        new_key, count = re.subn(pattern, replacement, key)
        if count:
            return new_key
    raise KeyError(f"unexpected key in the original checkpoint: {key!r}")


def is_dropped(key: str) -> bool:
    """True for original keys that have no tensor here."""
    return any(re.search(pattern, key) for pattern in DROPPED_KEYS)


def convert_state_dict(state_dict: dict, prefixes: dict[str, tuple[list[tuple[str, str]], str]]) -> dict:
    """Renames an original state dict; keys under none of `prefixes` are rejected with a clear error."""
    converted = {}
    for key, tensor in state_dict.items():
        if is_dropped(key):
            continue
        for old_prefix, (mapping, new_prefix) in prefixes.items():
            if key.startswith(old_prefix):
                try:
                    converted[new_prefix + rename_key(key[len(old_prefix) :], mapping)] = tensor
                except KeyError:
                    raise KeyError(f"unexpected key in the original checkpoint: {key!r}") from None
                break
        else:
            raise KeyError(f"unexpected key in the original checkpoint: {key!r}")
    return converted
