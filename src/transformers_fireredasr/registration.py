"""Registers the FireRedASR classes with the Auto classes and the ASR pipeline, in one place.

Called once when `transformers_fireredasr` is imported.
"""

from __future__ import annotations

import functools

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForAudioFrameClassification,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    AutoTokenizer,
)
from transformers.models.auto import modeling_auto
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_fireredasr import FireRedAedConfig, FireRedConformerConfig, FireRedLlmConfig
from .configuration_fireredlid import FireRedLidConfig
from .configuration_fireredvad import FireRedVadConfig
from .feature_extraction_fireredasr import FireRedAsrFeatureExtractor
from .modeling_conformer import FireRedConformerEncoder
from .modeling_fireredasr_aed import FireRedAedForConditionalGeneration, FireRedAedModel
from .modeling_fireredasr_llm import FireRedLlmForSpeechSeq2Seq
from .modeling_fireredlid import FireRedLidForConditionalGeneration
from .modeling_fireredvad import FireRedVadForAudioFrameClassification
from .pipeline_fireredlid import FireRedLidPipeline
from .processing_fireredasr import FireRedAsrProcessor, FireRedLlmProcessor
from .tokenization_fireredasr import FireRedAsrTokenizer
from .tokenization_fireredlid import FireRedLidTokenizer


def register() -> None:
    """Makes `Auto*.from_pretrained(dir)` and `pipeline("automatic-speech-recognition", model=dir)` work."""
    AutoConfig.register(FireRedConformerConfig.model_type, FireRedConformerConfig, exist_ok=True)
    AutoConfig.register(FireRedAedConfig.model_type, FireRedAedConfig, exist_ok=True)
    AutoModel.register(FireRedConformerConfig, FireRedConformerEncoder, exist_ok=True)
    AutoModel.register(FireRedAedConfig, FireRedAedModel, exist_ok=True)
    AutoModelForSpeechSeq2Seq.register(FireRedAedConfig, FireRedAedForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(FireRedAedConfig, FireRedAsrFeatureExtractor, exist_ok=True)
    AutoTokenizer.register(FireRedAedConfig, slow_tokenizer_class=FireRedAsrTokenizer, exist_ok=True)
    AutoProcessor.register(FireRedAedConfig, FireRedAsrProcessor, exist_ok=True)
    AutoConfig.register(FireRedLlmConfig.model_type, FireRedLlmConfig, exist_ok=True)
    AutoModelForSpeechSeq2Seq.register(FireRedLlmConfig, FireRedLlmForSpeechSeq2Seq, exist_ok=True)
    AutoFeatureExtractor.register(FireRedLlmConfig, FireRedAsrFeatureExtractor, exist_ok=True)
    AutoProcessor.register(FireRedLlmConfig, FireRedLlmProcessor, exist_ok=True)
    # The ASR pipeline decides "seq2seq vs CTC" by class name in this plain dict, not by the registered mapping.
    for config_class, model_class in (
        (FireRedAedConfig, FireRedAedForConditionalGeneration),
        (FireRedLlmConfig, FireRedLlmForSpeechSeq2Seq),
    ):
        modeling_auto.MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES[config_class.model_type] = model_class.__name__
    # Long audio and timestamps: the task's class becomes FireRedAsrPipeline, which serves FireRedASR models and hands
    # every other model the stock AutomaticSpeechRecognitionPipeline (see pipeline_fireredasr.py).
    PIPELINE_REGISTRY.supported_tasks["automatic-speech-recognition"]["impl"] = (
        "transformers_fireredasr.pipeline_fireredasr.FireRedAsrPipeline"
    )
    register_language_identification()
    register_voice_activity_detection()
    explain_original_releases()


def register_voice_activity_detection() -> None:
    """FireRedVAD: `AutoModelForAudioFrameClassification` and `AutoFeatureExtractor` load a converted folder."""
    AutoConfig.register(FireRedVadConfig.model_type, FireRedVadConfig, exist_ok=True)
    AutoModelForAudioFrameClassification.register(
        FireRedVadConfig, FireRedVadForAudioFrameClassification, exist_ok=True
    )
    AutoFeatureExtractor.register(FireRedVadConfig, FireRedAsrFeatureExtractor, exist_ok=True)


def register_language_identification() -> None:
    """FireRedLID: the Auto classes, and `pipeline("audio-classification", model=dir)` (see pipeline_fireredlid.py),
    whose task class hands every other model the class the task had before."""
    AutoConfig.register(FireRedLidConfig.model_type, FireRedLidConfig, exist_ok=True)
    AutoModelForAudioClassification.register(FireRedLidConfig, FireRedLidForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(FireRedLidConfig, FireRedAsrFeatureExtractor, exist_ok=True)
    AutoTokenizer.register(FireRedLidConfig, slow_tokenizer_class=FireRedLidTokenizer, exist_ok=True)
    AutoProcessor.register(FireRedLidConfig, FireRedAsrProcessor, exist_ok=True)
    # The pipeline's model check reads this plain dict (it logs an error for a class that is not named there).
    name = FireRedLidForConditionalGeneration.__name__
    modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES[FireRedLidConfig.model_type] = name
    task = PIPELINE_REGISTRY.supported_tasks["audio-classification"]
    if task["impl"] is not FireRedLidPipeline:
        FireRedLidPipeline.fallback = task["impl"]
        task["impl"] = FireRedLidPipeline


def explain_original_releases() -> None:
    """Makes `AutoConfig.from_pretrained` (which every Auto class, `AutoProcessor` and `pipeline()` call first) raise
    `OriginalFormatError` for an original FireRedASR release folder or Hub repository, naming `resolve_model` and the
    converters, instead of transformers' "no config.json" / "Unrecognized model" errors. Only a failed load is
    looked at; the error is an `OSError`, which `AutoProcessor`'s fallback (it swallows `ValueError`) lets through."""
    loader = AutoConfig.from_pretrained
    if getattr(loader, "explains_original_releases", False):
        return

    @functools.wraps(loader.__func__)
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        try:
            return loader.__func__(cls, pretrained_model_name_or_path, *args, **kwargs)
        except (OSError, ValueError) as error:
            from .conversion.resolve import original_format_error

            explained = original_format_error(pretrained_model_name_or_path)
            if explained is None:
                raise
            raise explained from error

    from_pretrained.explains_original_releases = True
    AutoConfig.from_pretrained = classmethod(from_pretrained)
