"""FireRedASR for Hugging Face Transformers. Importing this package registers every class with the Auto classes
and with `pipeline("automatic-speech-recognition")`."""

from . import _torchao_notices  # noqa: F401 - before transformers is imported (see the module)
from .compiled_decoding import (
    compiled_decoding_kwargs,
    compiled_decoding_load_kwargs,
    cpu_compile_config,
    forget_compiled_decoding,
)
from .configuration_fireredasr import FireRedAedConfig, FireRedConformerConfig, FireRedLlmConfig
from .configuration_fireredlid import FireRedLidConfig
from .conversion.resolve import resolve_model
from .demo_model import demo_model_dir, demo_punctuation_dir
from .feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from .generation_fireredasr import SmoothedLogSoftmaxProcessor
from .modeling_conformer import FireRedConformerEncoder, FireRedConformerPreTrainedModel
from .modeling_fireredasr_aed import (
    FireRedAedDecoder,
    FireRedAedForConditionalGeneration,
    FireRedAedModel,
    FireRedAedPreTrainedModel,
)
from .modeling_fireredasr_llm import FireRedLlmAdapter, FireRedLlmForSpeechSeq2Seq, FireRedLlmPreTrainedModel
from .modeling_fireredlid import FireRedLidForConditionalGeneration, FireRedLidOutput
from .processing_fireredasr import FireRedAsrProcessor, FireRedLlmProcessor
from .registration import register
from .speed_paths import apply_speed_paths, remove_speed_paths
from .tokenization_fireredasr import FireRedAsrTokenizer
from .tokenization_fireredlid import FireRedLidTokenizer

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
    "FireRedLidConfig",
    "FireRedLidForConditionalGeneration",
    "FireRedLidOutput",
    "FireRedLidTokenizer",
    "FireRedLlmAdapter",
    "FireRedLlmConfig",
    "FireRedLlmForSpeechSeq2Seq",
    "FireRedLlmPreTrainedModel",
    "FireRedLlmProcessor",
    "SmoothedLogSoftmaxProcessor",
    "apply_speed_paths",
    "compiled_decoding_kwargs",
    "compiled_decoding_load_kwargs",
    "cpu_compile_config",
    "demo_model_dir",
    "demo_punctuation_dir",
    "forget_compiled_decoding",
    "remove_speed_paths",
    "resolve_model",
]
