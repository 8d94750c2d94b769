"""FireRedASR-LLM: Conformer encoder -> frame-splicing adapter -> causal LM (Qwen2), speech vectors scattered into
the prompt embeddings at `<speech>` placeholders (one placeholder per speech vector)."""

from __future__ import annotations

import copy
import os

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    GenerationMixin,
    LogitsProcessorList,
    PreTrainedModel,
    RepetitionPenaltyLogitsProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_fireredasr import FireRedLlmConfig
from .hotwords import (
    DEFAULT_HOTWORD_SCORE,
    SurfaceHotwordLogitsProcessor,
    character_tries,
    hotword_lists,
    hotwords_given,
    model_tokenizer,
)
from .modeling_conformer import FireRedConformerEncoder, check_input_features, init_relative_position_biases
from .processing_fireredasr import left_pad
from .transformers_compat import CACHE_NAME, accepts_legacy_cache_name, cache_kwarg


class FireRedLlmAdapter(nn.Module):
    """Splices `encoder_downsample_rate` encoder frames (40 ms -> 80 ms) and maps them into the LM width."""

    def __init__(self, config: FireRedLlmConfig):
        super().__init__()
        self.rate = config.encoder_downsample_rate
        encoder_width = config.encoder_config.hidden_size
        llm_width = config.text_config.hidden_size
        self.linear1 = nn.Linear(encoder_width * self.rate, llm_width)
        self.linear2 = nn.Linear(llm_width, llm_width)

    def forward(self, hidden_states: torch.Tensor, frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns speech vectors `(B, T // rate, H)` and each utterance's number of real vectors `(B,)`."""
        batch, frames, width = hidden_states.shape
        usable = frames - frames % self.rate  # trailing frames that do not fill a vector are dropped
        spliced = hidden_states[:, :usable].reshape(batch, usable // self.rate, width * self.rate)
        vectors = self.linear2(nn.functional.relu(self.linear1(spliced)))
        lengths = frame_mask.sum(-1).clamp(max=usable) // self.rate
        return vectors, lengths


class PerUtteranceMaxNewTokens(StoppingCriteria):
    """Stops utterance i's rows after `limits[i]` new tokens, so every utterance keeps its own length limit inside
    a batch (transformers' `max_new_tokens` is one number for the whole batch). Stopping criteria act per row in
    greedy, sampling and beam search alike, exactly like the length limit does for an utterance decoded alone."""

    def __init__(self, limits: torch.Tensor, prompt_length: int):
        self.limits = limits
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        rows_per_utterance = input_ids.shape[0] // len(self.limits)
        limits = self.limits.to(input_ids.device).repeat_interleave(rows_per_utterance)
        return (input_ids.shape[1] - self.prompt_length) >= limits


class FireRedLlmPreTrainedModel(PreTrainedModel):
    """Shared flags of the FireRedASR-LLM models."""

    config: FireRedLlmConfig
    config_class = FireRedLlmConfig
    base_model_prefix = ""
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["FireRedConformerBlock", "FireRedLlmAdapter"]
    # Quantization (bitsandbytes) skips these; the encoder and adapter stay in full or half precision.
    _keep_in_fp32_modules = ["encoder", "projector"]
    _skip_keys_device_placement = [CACHE_NAME]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = False

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        init_relative_position_biases(module, self.config.initializer_range)


class FireRedLlmForSpeechSeq2Seq(FireRedLlmPreTrainedModel, GenerationMixin):
    """FireRedASR-LLM for speech recognition: `generate()` takes audio features and returns the transcript tokens.

    `main_input_name` stays `input_ids` (a decoder-only model with `input_features` as main input would have its
    audio dropped by `GenerationMixin`); a floating-point `input_ids`, which is what the ASR pipeline passes, is
    read as `input_features` with the pipeline's `attention_mask` as their frame mask.
    """

    def __init__(self, config: FireRedLlmConfig):
        super().__init__(config)
        self.encoder = FireRedConformerEncoder(config.encoder_config)
        self.projector = FireRedLlmAdapter(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Loads the model, then the peft LoRA adapter the config names (a `--keep_lora` conversion) onto the LM."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        subfolder = model.config.lora_adapter_subfolder
        if subfolder:
            local = os.path.join(str(pretrained_model_name_or_path), subfolder)
            if os.path.isdir(local):
                model.language_model.load_adapter(local)
            else:
                model.language_model.load_adapter(
                    str(pretrained_model_name_or_path), adapter_kwargs={"subfolder": subfolder}
                )
        return model

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_encoder(self, modality: str | None = None) -> FireRedConformerEncoder:
        return self.encoder

    def get_decoder(self) -> PreTrainedModel:
        return self.language_model

    def get_speech_features(
        self, input_features: torch.Tensor, feature_attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Speech vectors `(B, N, H)` of fbank `input_features`, and the number of real vectors per utterance."""
        encoded = self.encoder(input_features, attention_mask=feature_attention_mask)  # it casts the features
        return self.projector(encoded.last_hidden_state, encoded.attention_mask)

    def merge_speech(self, input_ids: torch.LongTensor, speech: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings with utterance i's `lengths[i]` speech vectors at its `<speech>` placeholders."""
        inputs_embeds = self.get_input_embeddings()(input_ids)
        placeholders = input_ids == self.config.speech_token_id
        counts = placeholders.sum(-1)
        if not torch.equal(counts.cpu(), lengths.cpu()):
            raise ValueError(
                f"each utterance needs one <speech> placeholder per speech vector: placeholders {counts.tolist()}, "
                f"speech vectors {lengths.tolist()} (build prompts with the processor)"
            )
        real = torch.arange(speech.shape[1], device=speech.device)[None, :] < lengths.to(speech.device)[:, None]
        vectors = speech[real].to(inputs_embeds.device, inputs_embeds.dtype)
        return inputs_embeds.masked_scatter(placeholders.unsqueeze(-1).to(inputs_embeds.device), vectors)

    def build_prompt(self, lengths: torch.Tensor) -> tuple[torch.LongTensor, torch.LongTensor]:
        """The chat prompt around `lengths[i]` placeholders per utterance, left-padded, and its attention mask."""
        prefix, suffix = self.config.prompt_prefix_ids, self.config.prompt_suffix_ids
        if prefix is None or suffix is None:
            raise ValueError("config.prompt_prefix_ids/prompt_suffix_ids are unset: pass input_ids from the processor")
        rows = [prefix + [self.config.speech_token_id] * int(n) + suffix for n in lengths.tolist()]
        pad = self.config.text_config.pad_token_id
        input_ids, attention_mask = left_pad(rows, pad if pad is not None else 0)
        return input_ids.to(self.device), attention_mask.to(self.device)

    @accepts_legacy_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """
        Args:
            input_ids: prompt (and, for training, transcript) ids with one `<speech>` per speech vector.
            input_features: `(batch, frames, 80)` fbank features; feature_attention_mask: their frame mask.
            labels: like `input_ids` with -100 everywhere but the transcript tokens (the LM shifts them).
        """
        if inputs_embeds is None:
            if input_features is not None:
                speech, lengths = self.get_speech_features(input_features, feature_attention_mask)
                inputs_embeds = self.merge_speech(input_ids, speech, lengths)
            else:
                inputs_embeds = self.get_input_embeddings()(input_ids)
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **cache_kwarg(cache),
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    def _hotword_processors(self, hotwords, hotword_score, tokenizer, batch_size: int, generation_config) -> list:
        """The hotword biasing of `generate(hotwords=...)`, matched on the decoded text (Qwen's BPE merges Hanzi
        differently by context, so a phrase has no one tokenization); nothing at all without hotwords."""
        if not hotwords_given(hotwords, hotword_score):
            return []
        tokenizer = tokenizer if tokenizer is not None else model_tokenizer(self)
        score = DEFAULT_HOTWORD_SCORE if hotword_score is None else hotword_score
        eos = generation_config.eos_token_id
        end_ids = list(eos) if isinstance(eos, (list, tuple)) else [eos] if eos is not None else []
        tries = character_tries(hotword_lists(hotwords, batch_size, score))
        return [
            SurfaceHotwordLogitsProcessor(tries, tokenizer, end_ids, take_back=(generation_config.num_beams or 1) > 1)
        ]

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor | None = None,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        feature_attention_mask: torch.Tensor | None = None,
        generation_config=None,
        logits_processor: LogitsProcessorList | None = None,
        stopping_criteria: StoppingCriteriaList | None = None,
        **kwargs,
    ) -> torch.LongTensor:
        """Transcribes audio features; returns only the generated tokens (no prompt).

        Each utterance may produce at most as many tokens as it has speech vectors (the original's default
        limit), whether decoded alone or in a batch; `max_new_tokens` can lower that.
        """
        if input_ids is not None and torch.is_floating_point(input_ids):
            input_features, feature_attention_mask = input_ids, attention_mask
            input_ids, attention_mask = None, None
        if input_features is None:
            raise ValueError("generate() needs input_features (audio features from the processor)")
        check_input_features(input_features, self.config.encoder_config.num_mel_bins)

        speech, lengths = self.get_speech_features(input_features, feature_attention_mask)
        if input_ids is None:
            input_ids, attention_mask = self.build_prompt(lengths)
        elif attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs_embeds = self.merge_speech(input_ids, speech, lengths)

        generation_config = copy.deepcopy(
            generation_config if generation_config is not None else self.generation_config
        )
        hotwords, hotword_score = kwargs.pop("hotwords", None), kwargs.pop("hotword_score", None)
        tokenizer = kwargs.pop("tokenizer", None)  # also transformers' own argument (stop_strings): passed back
        model_kwargs = generation_config.update(**kwargs)
        limits = lengths.clamp(min=1)
        if generation_config.max_new_tokens is not None:
            limits = limits.clamp(max=generation_config.max_new_tokens)
        generation_config.max_length = None
        generation_config.max_new_tokens = int(limits.max())
        processors = LogitsProcessorList(logits_processor or [])
        if generation_config.repetition_penalty not in (None, 1.0):
            # transformers 5.23 skips the first `left padding` generated tokens of each row when it penalises
            # repetitions of an inputs_embeds prompt, so padded rows of a batch would be penalised differently
            # from the same utterance alone; penalise exactly the generated tokens, as the original does.
            processors.append(RepetitionPenaltyLogitsProcessor(generation_config.repetition_penalty))
            generation_config.repetition_penalty = 1.0
        processors.extend(self._hotword_processors(hotwords, hotword_score, tokenizer, len(limits), generation_config))
        if tokenizer is not None:
            model_kwargs["tokenizer"] = tokenizer
        criteria = StoppingCriteriaList(stopping_criteria or [])
        criteria.append(PerUtteranceMaxNewTokens(limits, prompt_length=0))  # inputs_embeds only: no prompt ids

        outputs = self.language_model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            generation_config=generation_config,
            logits_processor=processors,
            stopping_criteria=criteria,
            **model_kwargs,
        )
        sequences = outputs if isinstance(outputs, torch.Tensor) else outputs.sequences
        # Utterances that stopped early are padded up to the longest; drop columns that are padding everywhere.
        pad = generation_config.pad_token_id
        filled = (sequences != pad).any(0).nonzero() if pad is not None else None
        if filled is not None and len(filled):
            sequences = sequences[:, : int(filled.max()) + 1]
        if isinstance(outputs, torch.Tensor):
            return sequences
        outputs.sequences = sequences
        return outputs


__all__ = ["FireRedLlmAdapter", "FireRedLlmForSpeechSeq2Seq", "FireRedLlmPreTrainedModel"]
