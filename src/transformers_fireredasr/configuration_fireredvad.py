"""Configuration of FireRedVAD: the DFSMN that scores every 10 ms frame for speech (or for speech, singing and music)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# The labels of the three-output audio-event variant (mVAD), in output order.
EVENT_LABELS = ("speech", "singing", "music")


@strict
class FireRedVadConfig(PreTrainedConfig):
    r"""
    Configuration of a FireRedVAD DFSMN (`Rx[H-P(N1,N2,S1,S2)]-MxH` in upstream's notation).

    Defaults are the published sizes of the offline VAD. The streaming variant has no lookahead
    (`lookahead_order=0`); the audio-event variant has three outputs (`id2label` speech, singing, music).

    Args:
        num_mel_bins (`int`): fbank bins of the input features (`idim`).
        num_blocks (`int`): FSMN memory blocks, the first one included (`R`).
        num_dnn_layers (`int`): feed-forward layers after the last block (`M`).
        hidden_size (`int`): width of the feed-forward layers (`H`).
        projection_size (`int`): width of the memory blocks (`P`).
        lookback_order (`int`): frames the memory looks back over, the current frame included (`N1`).
        lookback_stride (`int`): dilation of the lookback filter (`S1`).
        lookahead_order (`int`): frames the memory looks ahead (`N2`); 0 makes the model causal (streaming).
        lookahead_stride (`int`): dilation of the lookahead filter (`S2`).
        dropout (`float`): dropout after each feed-forward layer (training only).
        initializer_range (`float`): std of the normal initialiser for the weights.
    """

    model_type = "fireredvad"

    num_mel_bins: int = 80
    num_blocks: int = 8
    num_dnn_layers: int = 1
    hidden_size: int = 256
    projection_size: int = 128
    lookback_order: int = 20
    lookback_stride: int = 1
    lookahead_order: int = 20
    lookahead_stride: int = 1
    dropout: float | int = 0.1
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = {0: EVENT_LABELS[0]}  # one output: the speech probability
        super().__post_init__(**kwargs)
        if self.num_labels == len(EVENT_LABELS) and all(name.startswith("LABEL_") for name in self.id2label.values()):
            self.id2label = dict(enumerate(EVENT_LABELS))
        if self.num_labels not in (1, len(EVENT_LABELS)):
            raise ValueError(f"FireRedVAD has 1 output (speech) or 3 (speech, singing, music), got {self.num_labels}")
        self.label2id = {label: index for index, label in self.id2label.items()}
        if self.num_blocks < 1 or self.num_dnn_layers < 1:
            raise ValueError(
                f"num_blocks and num_dnn_layers must be >= 1, got {self.num_blocks}, {self.num_dnn_layers}"
            )
        if self.lookback_order < 2 or self.lookback_stride < 1:
            raise ValueError(
                f"lookback_order must be >= 2 and lookback_stride >= 1, got {self.lookback_order}, {self.lookback_stride}"
            )
        if self.lookahead_order < 0 or (self.lookahead_order > 0 and self.lookahead_stride < 1):
            raise ValueError(
                f"lookahead_order must be >= 0 (and lookahead_stride >= 1 with a lookahead), got "
                f"{self.lookahead_order}, {self.lookahead_stride}"
            )

    @property
    def is_streaming(self) -> bool:
        """Whether every frame's score depends only on the frames up to it (no lookahead)."""
        return self.lookahead_order == 0

    @property
    def is_event_model(self) -> bool:
        """Whether this is the audio-event variant, scoring speech, singing and music."""
        return self.num_labels == len(EVENT_LABELS)

    @property
    def cache_frames(self) -> int:
        """Frames of each memory block's input a streaming call keeps for the next one."""
        return (self.lookback_order - 1) * self.lookback_stride


__all__ = ["EVENT_LABELS", "FireRedVadConfig"]
