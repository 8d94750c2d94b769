"""LoRA and QLoRA fine-tuning of FireRedASR-LLM with peft: LoRA on the language model only, the Conformer encoder
and the adapter ("projector") trained in full or frozen by flag.

    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(path)  # or with BitsAndBytesConfig(load_in_4bit=True)
    model = prepare_llm_for_lora(model, train_encoder=False, train_projector=True)
    Trainer(model=model, data_collator=FireRedLlmDataCollator(processor), ...).train()
    model.save_pretrained(out)  # the LoRA weights, plus the encoder/projector when they were trained

The result is a plain `peft.PeftModel`; load a saved adapter with `PeftModel.from_pretrained(base, out)` or
`FireRedLlmForSpeechSeq2Seq.from_pretrained(out)` (transformers reads the base model path from the adapter config).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable

from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from peft.tuners.tuners_utils import check_target_module_exists

from .modeling_fireredasr_llm import FireRedLlmForSpeechSeq2Seq
from .transformers_compat import peft_probing_checkpointing

# The projections the released FireRedASR-LLM-L puts LoRA on (it uses r=64, alpha=16, dropout 0.05).
LLM_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LANGUAGE_MODEL = "language_model"


def llm_lora_config(
    r: int = 16,
    lora_alpha: int = 32,
    lora_dropout: float = 0.05,
    target_modules: Iterable[str] = LLM_LORA_TARGETS,
) -> LoraConfig:
    """A `LoraConfig` on the language model's attention and MLP projections (the encoder is never targeted)."""
    return LoraConfig(r=r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(target_modules))


def _language_model_only(config: LoraConfig) -> LoraConfig:
    """Anchors module-name targets at `language_model.`: the Conformer encoder has `q_proj`... modules too."""
    targets = config.target_modules
    if targets is not None and not isinstance(targets, str):
        names = "|".join(re.escape(name) for name in sorted(targets))
        config.target_modules = rf"{LANGUAGE_MODEL}\.(.*\.)?({names})"
    return config


def prepare_llm_for_lora(
    model: FireRedLlmForSpeechSeq2Seq,
    lora_config: LoraConfig | None = None,
    *,
    train_encoder: bool = False,
    train_projector: bool = True,
    activation_checkpointing: bool = False,
) -> PeftModel:
    """Wraps `model` in a `PeftModel` with LoRA on its language model; everything else is frozen except the encoder
    and/or projector when `train_encoder` / `train_projector` are set.

    Args:
        model: a `FireRedLlmForSpeechSeq2Seq`, plain or loaded in 4/8-bit with a `BitsAndBytesConfig` (QLoRA; the
            encoder and projector are never quantized, see `_keep_in_fp32_modules`).
        lora_config: defaults to `llm_lora_config()` (r=16, alpha=32, dropout 0.05 on q/k/v/o/gate/up/down). Target
            module names are restricted to the language model; a regex that reaches outside it is refused. The
            config is copied, never modified.
        train_encoder: train the encoder in full. It is added to the config's `modules_to_save`, so peft keeps a
            trainable copy and `save_pretrained` writes it next to the LoRA weights; `PeftModel.from_pretrained`
            restores it. (Setting `requires_grad` by hand would train it too, but an adapter-only save would
            silently drop what it learned.) The copy costs the module's size once more (the fp32 encoder's).
        train_projector: the same for the projector (the adapter between encoder and language model).
        activation_checkpointing: recompute activations in the backward pass (non-reentrant, so the frozen input
            embeddings need no `requires_grad` hook). `TrainingArguments(activation_checkpointing=True)` does the
            same.
    """
    if isinstance(model, PeftModel):
        raise TypeError("the model is already a PeftModel; pass the FireRedLlmForSpeechSeq2Seq it wraps")
    if getattr(model.language_model, "_hf_peft_config_loaded", False):
        raise ValueError(
            "the language model already carries a LoRA adapter (a `--keep_lora` conversion). A second LoRA on top "
            "of it cannot be saved or reloaded cleanly: fine-tune the default conversion, where the released LoRA "
            "is merged into the Qwen2 weights"
        )
    config = _language_model_only(copy.deepcopy(lora_config if lora_config is not None else llm_lora_config()))
    # A task-specific wrapper (CAUSAL_LM) would build its own inputs for `generate`; the model needs its audio.
    config.task_type = None
    extra = [name for name, on in (("encoder", train_encoder), ("projector", train_projector)) if on]
    config.modules_to_save = sorted(set(config.modules_to_save or []) | set(extra)) or None

    # Checked before peft touches the model (an excluded module, e.g. one in modules_to_save, matches as False).
    targeted = [name for name, _ in model.named_modules() if name and check_target_module_exists(config, name)]
    if not targeted:
        raise ValueError(f"target_modules {config.target_modules!r} match no module of the language model")
    outside = [name for name in targeted if not name.startswith(f"{LANGUAGE_MODEL}.")]
    if outside:
        raise ValueError(f"LoRA must stay on the language model, but target_modules also match {outside[:3]}")

    if getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False):
        # QLoRA: freezes everything and casts the non-quantized fp16/bf16 weights (LM embeddings, norms, lm_head)
        # to fp32 for stable training. Its own gradient checkpointing is left off: it would turn checkpointing on
        # unasked and, without `use_reentrant` given, in torch's deprecated reentrant mode plus an input-gradient
        # hook. Checkpointing is switched on below, by flag, non-reentrant, with or without quantization.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if activation_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    # get_peft_model freezes every base weight; LoRA weights and `modules_to_save` copies are the trainable ones.
    with peft_probing_checkpointing():
        return get_peft_model(model, config)


__all__ = ["LLM_LORA_TARGETS", "llm_lora_config", "prepare_llm_for_lora"]
