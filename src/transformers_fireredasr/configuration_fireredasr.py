"""Configurations of FireRedASR: the Conformer encoder shared by both variants, and the AED model."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


@strict
class FireRedConformerConfig(PreTrainedConfig):
    r"""
    Configuration of the FireRedASR Conformer encoder (Conv2d subsampling x4, relative-position Conformer blocks).

    Defaults are the published FireRedASR-L sizes.

    Args:
        num_mel_bins (`int`): fbank bins of the input features.
        hidden_size (`int`): model width (`d_model` of the original).
        num_hidden_layers (`int`): Conformer blocks.
        num_attention_heads (`int`): attention heads.
        intermediate_size (`int`): width of the macaron feed-forward modules (4 x hidden in the original).
        conv_kernel_size (`int`): depthwise convolution kernel of the convolution module.
        subsampling_conv_channels (`int`): channels of the two stride-2 subsampling convolutions.
        hidden_dropout (`float`): residual dropout (`residual_dropout` of the original).
        activation_dropout (`float`): dropout inside feed-forward and convolution modules (`dropout_rate`).
        attention_dropout (`float`): dropout on attention probabilities (0 in the original).
        layer_norm_eps (`float`): LayerNorm epsilon.
        initializer_range (`float`): std of the normal initialiser for linear weights.
    """

    model_type = "fireredasr_conformer"

    num_mel_bins: int = 80
    hidden_size: int = 1280
    num_hidden_layers: int = 16
    num_attention_heads: int = 20
    intermediate_size: int = 5120
    conv_kernel_size: int = 33
    subsampling_conv_channels: int = 32
    hidden_dropout: float | int = 0.1
    activation_dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd, got {self.conv_kernel_size}")

    @property
    def subsampling_factor(self) -> int:
        """Frames of input per encoder output frame (two stride-2 convolutions)."""
        return 4


@strict
class FireRedAedConfig(PreTrainedConfig):
    r"""
    Configuration of FireRedASR-AED: a [`FireRedConformerConfig`] encoder and a pre-LN Transformer decoder.

    Defaults are the published FireRedASR-AED-L sizes and special token ids (`<pad>`=2, `<sos>`=3, `<eos>`=4).

    Args:
        encoder_config (`dict` or [`FireRedConformerConfig`]): the encoder.
        vocab_size (`int`): output vocabulary (`odim` of the original).
        d_model (`int`): decoder width; must equal the encoder's `hidden_size`.
        decoder_layers (`int`), decoder_attention_heads (`int`), decoder_ffn_dim (`int`): decoder sizes.
        dropout (`float`): residual dropout of the decoder.
        attention_dropout (`float`): dropout on decoder attention probabilities.
        blank_token_id (`int`): CTC blank id of the vocabulary (0 in the release; the CTC head's blank).
        ctc_head (`bool`): whether the model has a CTC head, `Linear(d_model, vocab_size)` on the final encoder
            output (FireRedASR2-AED's `ctc.ctc_lo`); its log-probs give word timestamps by forced alignment.
        ctc_onset_offset_s (`float`), ctc_end_padding_s (`float`): word timing (`alignment.TimingRule`): a token
            starts at its first CTC frame x 40 ms + the offset and ends after its last frame + the padding. Measured
            per model by `benchmarks/bench_timestamps.py --calibrate`; the defaults are the bundled demo's.
    """

    model_type = "fireredasr_aed"
    sub_configs_defaults = {"encoder_config": FireRedConformerConfig}
    # Whisper-style names so `get_text_config(decoder=True)`, caches and `generate` find the decoder sizes.
    attribute_map = {
        "hidden_size": "d_model",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
        "num_key_value_heads": "decoder_attention_heads",
    }

    encoder_config: dict | PreTrainedConfig | None = None
    vocab_size: int = 7832
    d_model: int = 1280
    decoder_layers: int = 16
    decoder_attention_heads: int = 20
    decoder_ffn_dim: int = 5120
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    pad_token_id: int | None = 2
    bos_token_id: int | None = 3
    eos_token_id: int | list[int] | None = 4
    decoder_start_token_id: int | None = 3
    blank_token_id: int | None = 0
    ctc_head: bool = False
    ctc_onset_offset_s: float = 0.022
    ctc_end_padding_s: float = 0.299
    use_cache: bool = True
    is_encoder_decoder: bool = True
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.encoder_config.hidden_size != self.d_model:
            raise ValueError(
                f"encoder_config.hidden_size ({self.encoder_config.hidden_size}) must equal d_model ({self.d_model})"
            )
        if self.d_model % self.decoder_attention_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by decoder_attention_heads ({self.decoder_attention_heads})"
            )


@strict
class FireRedLlmConfig(PreTrainedConfig):
    r"""
    Configuration of FireRedASR-LLM: a [`FireRedConformerConfig`] encoder, a frame-splicing Linear-ReLU-Linear
    adapter and a causal language model (`text_config`, Qwen2 in the release).

    Args:
        encoder_config (`dict` or [`FireRedConformerConfig`]): the speech encoder.
        text_config (`dict` or `PreTrainedConfig`): the language model (any `AutoModelForCausalLM` config).
        speech_token_id (`int`): id of the `<speech>` placeholder; each one is replaced by one speech vector.
        encoder_downsample_rate (`int`): encoder frames spliced into one speech vector (2: 40 ms -> 80 ms).
        prompt_prefix_ids (`list[int]`), prompt_suffix_ids (`list[int]`): the chat prompt's token ids before and
            after the run of `<speech>` placeholders, so `generate()` can build the prompt from audio alone.
        lora_adapter_subfolder (`str`, *optional*): subfolder of a peft LoRA adapter that `from_pretrained` applies
            to the language model (written by the converter's `--keep_lora`); None when LoRA is merged.
        max_segment_seconds (`float`, *optional*): the longest audio the pipeline decodes in one piece (None: 30 s,
            FireRedASR-LLM's limit; FireRedASR2-LLM: 40 s).
        lowercase_output (`bool`): the pipeline lowercases transcripts, as FireRedASR2-LLM prints English.
    """

    model_type = "fireredasr_llm"
    sub_configs_defaults = {
        "encoder_config": FireRedConformerConfig,
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="qwen2"),
    }

    encoder_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    speech_token_id: int = 151646
    encoder_downsample_rate: int = 2
    prompt_prefix_ids: list[int] | None = None
    prompt_suffix_ids: list[int] | None = None
    lora_adapter_subfolder: str | None = None
    max_segment_seconds: float | None = None
    lowercase_output: bool = False
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.encoder_downsample_rate < 1:
            raise ValueError(f"encoder_downsample_rate must be >= 1, got {self.encoder_downsample_rate}")


__all__ = ["FireRedConformerConfig", "FireRedAedConfig", "FireRedLlmConfig"]
