"""FireRedASR for Hugging Face Transformers. Importing this package registers every class with the Auto classes
and with `pipeline("automatic-speech-recognition")`."""

from .configuration_fireredasr import FireRedAedConfig, FireRedConformerConfig
from .feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from .generation_fireredasr import SmoothedLogSoftmaxProcessor
from .modeling_conformer import FireRedConformerEncoder, FireRedConformerPreTrainedModel
from .modeling_fireredasr_aed import (
    FireRedAedDecoder,
    FireRedAedForConditionalGeneration,
    FireRedAedModel,
    FireRedAedPreTrainedModel,
)
from .processing_fireredasr import FireRedAsrProcessor
from .registration import register
from .tokenization_fireredasr import FireRedAsrTokenizer

register()

__version__ = "0.1.0"

__all__ = [
    "FireRedAedConfig",
    "FireRedAedDecoder",
    "FireRedAedForConditionalGeneration",
    "FireRedAedModel",
    "FireRedAedPreTrainedModel",
    "FireRedAsrFeatureExtractor",
    "FireRedAsrProcessor",
    "FireRedAsrTokenizer",
    "FireRedConformerConfig",
    "FireRedConformerEncoder",
    "FireRedConformerPreTrainedModel",
    "SmoothedLogSoftmaxProcessor",
]
