"""A new (untrained) model must pass the audio through its encoder, or training from scratch cannot learn to listen."""

from __future__ import annotations

import torch

from transformers_fireredasr import FireRedAedConfig, FireRedAedForConditionalGeneration


def test_fresh_encoder_output_depends_on_the_input():
    """Convolutions start at PyTorch's default (Kaiming) scale, as the original was trained from; an N(0, 0.02)
    start shrank the 1-channel subsampling input ~100x, so the decoder learned to ignore the audio."""
    torch.manual_seed(0)
    config = FireRedAedConfig(
        encoder_config=dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=128),
        d_model=64, decoder_layers=1, decoder_attention_heads=4, decoder_ffn_dim=128, vocab_size=20,
    )  # fmt: skip
    model = FireRedAedForConditionalGeneration(config).eval()
    conv = model.model.encoder.subsampling.conv1
    fan_in = conv.weight[0].numel()
    assert abs(conv.weight.std().item() - (1 / fan_in) ** 0.5 / 3**0.5) < 0.05
    features = torch.randn(2, 200, 80)
    with torch.no_grad():
        hidden = model.model.encoder(features, output_hidden_states=True).hidden_states
        subsampled = model.model.encoder.subsampling(features, torch.ones(2, 200, dtype=torch.long))[0]
    assert subsampled.std() > 0.03, "the subsampling output is too small to carry the audio"
    assert (hidden[-1][0] - hidden[-1][1]).abs().mean() > 0.5 * hidden[-1].std()
