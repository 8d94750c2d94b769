"""The supported transformers and torch ranges: the cache rename of transformers 5.24, the same ids from every
decoding mode on every release of both, tuple outputs, typos refused on every path, and no deprecation warnings from
our own calls.

`tests/run.sh --subset --transformers lowest` (and `--torch floor`) runs the version-sensitive tests again on the other
end of a range; each run leaves the ids of every decoding mode in `.test-ids/transformers-X-torch-Y.json`, and a run
on other releases must produce the same ids.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import warnings
from pathlib import Path

import pytest
import torch
import transformers
from packaging import version
from transformers.masking_utils import create_causal_mask
from transformers.modeling_outputs import Seq2SeqLMOutput

from tests.test_aed_parity import load, transcribe
from transformers_fireredasr.transformers_compat import CACHE_NAME

IDS_DIR = Path(os.environ.get("FIREREDASR_IDS_DIR", Path(__file__).resolve().parent.parent / ".test-ids"))
RENAMED = version.parse(transformers.__version__) >= version.parse("5.24.0.dev0")

# Every decoding mode of the AED, on a batch of three utterances (the trained fixture listens to the audio).
MODES = {
    "original_beam": {},
    "original_greedy": {"num_beams": 1},
    "original_beam_static": {"cache_implementation": "static"},
    "transformers_greedy": {"original_beam_search": False, "num_beams": 1},
    "transformers_beam": {"original_beam_search": False, "num_beams": 3},
    "transformers_sampling_seed_0": {"do_sample": True, "top_k": 5, "num_beams": 1},
    "transformers_greedy_static": {"original_beam_search": False, "num_beams": 1, "cache_implementation": "static"},
    "transformers_beam_static": {"original_beam_search": False, "num_beams": 3, "cache_implementation": "static"},
}
TRANSFORMERS_MODES = [name for name in MODES if name.startswith("transformers_")]


@pytest.fixture(scope="module")
def trained(converted_aed_dir):
    return load(converted_aed_dir, attn_implementation="sdpa")


def decode(model, processor, utterances, **kwargs) -> torch.Tensor:
    torch.manual_seed(0)
    return transcribe(model, processor, utterances, **kwargs)[0]


def test_the_cache_name_is_the_installed_releases():
    """The shim's one decision, checked against what the installed transformers really takes and returns."""
    assert CACHE_NAME == ("cache" if RENAMED else "past_key_values")
    assert CACHE_NAME in {field.name for field in dataclasses.fields(Seq2SeqLMOutput)}
    assert CACHE_NAME in inspect.signature(create_causal_mask).parameters


@pytest.mark.parametrize("mode", TRANSFORMERS_MODES)
def test_transformers_searches_use_the_cache(trained, speech, mode):
    """With the cache wired through, transformers' searches give the ids of decoding without any cache. (On 5.24
    with the old `past_key_values` forward the cache was dropped: other tokens, or shape errors with a static cache.)"""
    model, processor = trained
    batch = [speech[0], speech[7], speech[12]]
    kwargs = dict(MODES[mode], max_new_tokens=12)
    cached = decode(model, processor, batch, **kwargs)
    kwargs.pop("cache_implementation", None)
    uncached = decode(model, processor, batch, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)
    assert (cached[:, 1:] != model.config.pad_token_id).any(), "nothing was decoded"


def test_every_mode_gives_the_same_ids_on_every_release(trained, speech):
    """Writes this release's ids of every mode and compares them with those another release wrote before."""
    model, processor = trained
    batch = [speech[0], speech[7], speech[12]]
    ids = {name: decode(model, processor, batch, **kwargs).tolist() for name, kwargs in MODES.items()}
    texts = processor.batch_decode(torch.tensor(ids["original_beam"]), skip_special_tokens=True)
    assert texts == [u.text for u in batch]  # the fixture transcribes these three correctly
    IDS_DIR.mkdir(parents=True, exist_ok=True)
    releases = f"transformers-{transformers.__version__}-torch-{torch.__version__}"
    (IDS_DIR / f"{releases}.json").write_text(json.dumps(ids))
    others = {path.stem: json.loads(path.read_text()) for path in IDS_DIR.glob("*.json")}
    others.pop(releases)
    if not others:
        pytest.skip(f"no other transformers or torch release has written its ids to {IDS_DIR} yet")
    for other_releases, other in others.items():
        differing = [name for name in MODES if other.get(name) != ids[name]]
        assert not differing, f"{other_releases} gave other ids for {differing}"


def test_the_forward_takes_the_cache_under_both_names(trained, speech):
    """`cache=` is the name; `past_key_values=` still works, and warns only where transformers deprecates it."""
    model, processor = trained
    inputs = processor([speech[0].audio], sampling_rate=16000, return_tensors="pt")
    start = torch.tensor([[model.config.decoder_start_token_id]])
    with torch.no_grad():
        encoded = model.get_encoder()(**inputs)
        new = model(encoder_outputs=encoded, decoder_input_ids=start, use_cache=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = model(encoder_outputs=encoded, decoder_input_ids=start, use_cache=True, past_key_values=None)
    assert torch.equal(new.logits, old.logits)
    assert getattr(new, CACHE_NAME).get_seq_length() == 1
    deprecations = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(deprecations) == (1 if RENAMED else 0), [str(w.message) for w in deprecations]


def _tuples_equal(as_tuple, as_dict) -> None:
    expected = as_dict.to_tuple()
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected)
    for left, right in zip(as_tuple, expected, strict=True):
        if isinstance(left, torch.Tensor):
            assert torch.equal(left, right)
        else:
            assert type(left) is type(right)


def test_return_dict_false_gives_tuples_for_every_aed_class(trained, speech):
    model, processor = trained
    inputs = processor([speech[0].audio, speech[3].audio], sampling_rate=16000, return_tensors="pt")
    labels = processor.tokenizer([speech[0].text, speech[3].text], return_tensors="pt", padding=True)["input_ids"]
    encoder, base = model.get_encoder(), model.model
    with torch.no_grad():
        encoded = encoder(**inputs)
        _tuples_equal(encoder(**inputs, return_dict=False), encoded)
        decoder_inputs = dict(
            input_ids=labels,
            encoder_hidden_states=encoded.last_hidden_state,
            encoder_attention_mask=encoded.attention_mask,
        )
        _tuples_equal(base.decoder(**decoder_inputs, return_dict=False), base.decoder(**decoder_inputs))
        for module, kwargs in ((base, {"decoder_input_ids": labels}), (model, {"labels": labels})):
            as_dict = module(**inputs, **kwargs)
            _tuples_equal(module(**inputs, **kwargs, return_dict=False), as_dict)
        loss, logits = model(**inputs, labels=labels, return_dict=False)[:2]
    assert torch.equal(loss, as_dict.loss) and torch.equal(logits, as_dict.logits)


def test_return_dict_false_gives_tuples_for_the_llm(converted_llm_dir, speech):
    from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor

    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir).eval()
    processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
    inputs = processor([speech[0].audio], text=[speech[0].text], sampling_rate=16000)
    with torch.no_grad():
        as_dict = model(**inputs)
        as_tuple = model(**inputs, return_dict=False)
    _tuples_equal(as_tuple, as_dict)
    assert torch.equal(as_tuple[0], as_dict.loss)


@pytest.mark.parametrize("mode", ["original_beam", "original_greedy", "transformers_greedy", "transformers_beam"])
@pytest.mark.parametrize("typo", [{"nonsense_option": 1}, {"num_beam": 5}, {"softmax_smothing": 1.25}])
def test_a_typo_in_a_generate_option_is_an_error_on_every_path(trained, speech, mode, typo):
    model, processor = trained
    inputs = processor([speech[0].audio], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match=f"`model_kwargs` are not used by the model: .*{next(iter(typo))}"):
        model.generate(**inputs, **MODES[mode], **typo)


def test_arguments_only_transformers_searches_implement_are_refused_by_the_original_search(trained, speech):
    from transformers import MaxLengthCriteria, StoppingCriteriaList

    model, processor = trained
    inputs = processor([speech[0].audio], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match=r"\['synced_gpus'\] are not supported by FireRedASR's original beam"):
        model.generate(**inputs, synced_gpus=True)
    assert torch.equal(model.generate(**inputs, synced_gpus=False), model.generate(**inputs))  # switched off: fine
    criteria = StoppingCriteriaList([MaxLengthCriteria(max_length=3)])
    with pytest.raises(ValueError, match=r"\['stopping_criteria'\] are not supported by FireRedASR's original beam"):
        model.generate(**inputs, stopping_criteria=criteria)
    # transformers' own search takes it.
    assert model.generate(**inputs, stopping_criteria=criteria, original_beam_search=False).shape == (1, 3)


def test_a_logits_processor_acts_in_the_original_search(trained, speech):
    """`logits_processor` is applied to each step's log-probs in the original beam search too, not ignored."""
    from transformers import LogitsProcessor, LogitsProcessorList, SuppressTokensLogitsProcessor

    model, processor = trained
    inputs = processor([speech[0].audio], sampling_rate=16000, return_tensors="pt")
    plain = model.generate(**inputs)
    first = int(plain[0, 1])
    suppressed = model.generate(
        **inputs, logits_processor=LogitsProcessorList([SuppressTokensLogitsProcessor([first])])
    )
    assert first not in suppressed[0].tolist() and not torch.equal(plain, suppressed)

    class Identity(LogitsProcessor):
        def __call__(self, input_ids, scores):
            return scores

    assert torch.equal(plain, model.generate(**inputs, logits_processor=LogitsProcessorList([Identity()])))


def test_the_llm_refuses_a_typo_too(converted_llm_dir, speech):
    from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor

    model = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir).eval()
    processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
    inputs = processor([speech[0].audio], sampling_rate=16000)
    with pytest.raises(ValueError, match="`model_kwargs` are not used by the model: .*num_beam"):
        model.generate(**inputs, num_beam=5)


def test_the_stock_processor_idiom_works_for_the_llm(converted_llm_dir, speech):
    """`processor(audio, sampling_rate=16000, return_tensors="pt")`, as for every transformers processor."""
    from transformers_fireredasr import FireRedLlmProcessor

    processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
    default = processor(speech[0].audio, sampling_rate=16000)
    as_pt = processor(speech[0].audio, sampling_rate=16000, return_tensors="pt")
    as_np = processor(speech[0].audio, sampling_rate=16000, return_tensors="np")
    assert default.keys() == as_pt.keys() == as_np.keys()
    for key in default:
        assert torch.equal(default[key], as_pt[key])
        assert torch.equal(default[key], torch.from_numpy(as_np[key]))
    with pytest.raises(ValueError, match="not a valid TensorType"):
        processor(speech[0].audio, sampling_rate=16000, return_tensors="nonsense")


class _DeprecationLog(logging.Handler):
    """Collects transformers' logged deprecation notices (5.24 logs some with `logger.warning_once`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "deprecat" in record.getMessage().lower():
            self.messages.append(record.getMessage())


def test_our_calls_raise_no_deprecation_on_this_release(trained, converted_llm_dir, speech, tmp_path):
    """Every decoding mode, the pipeline, the LLM and a training step, with FutureWarnings as errors and
    transformers' logged deprecation notices collected. (The suite also runs with FutureWarning as an error.)"""
    from transformers import pipeline

    from transformers_fireredasr import FireRedLlmForSpeechSeq2Seq, FireRedLlmProcessor
    from transformers_fireredasr.lora import prepare_llm_for_lora

    handler = _DeprecationLog()
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    transformers.logging.set_verbosity_warning()
    # warning_once remembers what it logged earlier in the session; forget it so that this test sees it again.
    transformers.utils.logging.warning_once.cache_clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            model, processor = trained
            for kwargs in MODES.values():
                decode(model, processor, [speech[0], speech[5]], **kwargs)
            asr = pipeline(
                "automatic-speech-recognition",
                model=model,
                tokenizer=processor.tokenizer,
                feature_extractor=processor.feature_extractor,
            )
            asr(speech[0].audio, return_timestamps=True)
            llm = FireRedLlmForSpeechSeq2Seq.from_pretrained(converted_llm_dir)
            llm_processor = FireRedLlmProcessor.from_pretrained(converted_llm_dir)
            llm.generate(**llm_processor([speech[0].audio], sampling_rate=16000), max_new_tokens=3)
            peft_model = prepare_llm_for_lora(llm, activation_checkpointing=True).train()
            batch = llm_processor([speech[0].audio], text=[speech[0].text], sampling_rate=16000)
            peft_model(**batch).loss.backward()
    finally:
        logger.removeHandler(handler)
    assert not handler.messages, handler.messages
