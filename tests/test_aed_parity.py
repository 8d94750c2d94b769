"""FireRedASR-AED against the reference package on the same weights: log-probs, tokens, texts, pipeline."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForSpeechSeq2Seq,
    AutoProcessor,
    AutoTokenizer,
    pipeline,
)

import transformers_fireredasr  # noqa: F401 - registers the Auto classes
from tests.conftest import ReferenceAed
from transformers_fireredasr import (
    FireRedAedConfig,
    FireRedAedForConditionalGeneration,
    FireRedAedModel,
    FireRedAsrFeatureExtractor,
    FireRedAsrProcessor,
    FireRedAsrTokenizer,
)

PUBLISHED = dict(beam_size=3, nbest=1, decode_max_len=0, softmax_smoothing=1.25, length_penalty=0.6, eos_penalty=1.0)
GREEDY = dict(beam_size=1, nbest=1, decode_max_len=0, softmax_smoothing=1.0, length_penalty=0.0, eos_penalty=1.0)


def load(folder, attn_implementation="eager"):
    model = FireRedAedForConditionalGeneration.from_pretrained(folder, attn_implementation=attn_implementation)
    return model.eval(), FireRedAsrProcessor.from_pretrained(folder)


@torch.no_grad()
def transcribe(model, processor, utterances, **generate_kwargs):
    """Our full path, one batch: audio -> processor -> generate -> decode."""
    inputs = processor([u.audio for u in utterances], sampling_rate=16000, return_tensors="pt")
    sequences = model.generate(**inputs, **generate_kwargs)
    return sequences, processor.batch_decode(sequences, skip_special_tokens=True)


def token_ids(sequence: torch.Tensor, config) -> list[int]:
    """Generated ids without the start token, the final `<eos>` and padding, as the reference returns them."""
    ids = sequence.tolist()[1:]
    while ids and ids[-1] == config.pad_token_id:
        ids.pop()
    if ids and ids[-1] == config.eos_token_id:
        ids.pop()
    return ids


@pytest.fixture(scope="module")
def trained(converted_aed_dir):
    return load(converted_aed_dir)


def test_fixture_listens_to_the_audio(reference_aed, speech):
    """The oracle's outputs are non-empty for speech and differ across sentences, so agreement means something."""
    texts = [text for _, text in reference_aed.transcribe([u.path for u in speech], **GREEDY)]
    spoken = [t for t, u in zip(texts, speech, strict=True) if u.text]
    assert all(spoken)
    assert len(set(spoken)) >= 6


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("fixture", ["trained", "odd"])
def test_teacher_forced_log_probs_match(fixture, attn_implementation, request, speech):
    """Same features, same targets: decoder log-probs within 1e-4, for a mixed-length batch."""
    original_dir = request.getfixturevalue("trained_aed_dir" if fixture == "trained" else "odd_aed_dir")
    converted_dir = request.getfixturevalue("converted_aed_dir" if fixture == "trained" else "converted_odd_dir")
    reference = ReferenceAed(original_dir)
    model, processor = load(converted_dir, attn_implementation)
    batch = [speech[0], speech[5], speech[-1], speech[9]]
    feats, lengths = reference.features([u.path for u in batch])
    mask = (torch.arange(feats.shape[1])[None, :] < lengths[:, None]).long()
    labels = torch.tensor([processor.tokenizer(u.text or "今天天气很好")["input_ids"][:5] for u in batch])
    decoder_inputs = torch.cat([torch.full((len(batch), 1), 3), labels[:, :-1]], dim=1)

    with torch.no_grad():
        ours = model(feats, attention_mask=mask, decoder_input_ids=decoder_inputs).logits.log_softmax(-1)
        ref = reference.model
        enc, _, enc_mask = ref.encoder(feats, lengths)
        dec = ref.decoder
        hidden = dec.tgt_word_emb(decoder_inputs) * dec.scale + dec.positional_encoding(decoder_inputs)
        for layer in dec.layer_stack:
            hidden = layer(hidden, enc, dec.ignored_target_position_is_0(decoder_inputs, dec.pad_id), enc_mask)
        expected = dec.tgt_word_prj(dec.layer_norm_out(hidden)).log_softmax(-1)
    assert (ours - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize("decoding", ["greedy", "published"])
def test_transcripts_match_reference(trained, reference_aed, speech, decoding):
    """Token ids and text identical to the reference's transcribe + detokenize, utterance by utterance."""
    model, processor = trained
    settings = GREEDY if decoding == "greedy" else PUBLISHED
    expected = reference_aed.transcribe([u.path for u in speech], **settings)
    kwargs = {"num_beams": 1} if decoding == "greedy" else {}  # published settings come from generation_config
    for utterance, (ids, text) in zip(speech, expected, strict=True):
        sequences, texts = transcribe(model, processor, [utterance], **kwargs)
        assert token_ids(sequences[0], model.config) == ids
        assert texts[0] == text


def test_generation_config_holds_published_settings(trained):
    model, _ = trained
    config = model.generation_config
    assert config.num_beams == 3
    assert config.softmax_smoothing == 1.25
    assert config.gnmt_length_penalty == 0.6
    assert config.eos_penalty == 1.0
    assert config.original_beam_search is True


@pytest.mark.parametrize("fixture", ["trained", "odd"])
def test_beam_variants_match_reference(fixture, request, speech):
    """Other beam widths, nbest ranking, eos penalty and length limits follow the original procedure exactly."""
    original_dir = request.getfixturevalue("trained_aed_dir" if fixture == "trained" else "odd_aed_dir")
    converted_dir = request.getfixturevalue("converted_aed_dir" if fixture == "trained" else "converted_odd_dir")
    reference = ReferenceAed(original_dir)
    model, processor = load(converted_dir)
    cases = [
        (dict(beam_size=4, softmax_smoothing=1.5, length_penalty=1.0, eos_penalty=0.8, decode_max_len=0), {}),
        (dict(beam_size=2, softmax_smoothing=1.0, length_penalty=0.0, eos_penalty=1.0, decode_max_len=3), {}),
    ]
    for settings, _ in cases:
        generate_kwargs = dict(
            num_beams=settings["beam_size"],
            softmax_smoothing=settings["softmax_smoothing"],
            gnmt_length_penalty=settings["length_penalty"],
            eos_penalty=settings["eos_penalty"],
        )
        if settings["decode_max_len"]:
            generate_kwargs["max_new_tokens"] = settings["decode_max_len"]
        for utterance in speech[::3]:
            ((ids, _),) = reference.transcribe([utterance.path], nbest=1, **settings)
            sequences, _ = transcribe(model, processor, [utterance], **generate_kwargs)
            assert token_ids(sequences[0], model.config) == ids


def test_batched_equals_one_by_one(trained, speech):
    """A batch of mixed lengths gives exactly the transcripts of decoding each utterance alone."""
    model, processor = trained
    batch = [speech[0], speech[3], speech[-1], speech[10], speech[-2], speech[7]]
    for kwargs in ({}, {"num_beams": 1}):
        _, batched = transcribe(model, processor, batch, **kwargs)
        alone = [transcribe(model, processor, [u], **kwargs)[1][0] for u in batch]
        assert batched == alone


def test_batched_equals_one_by_one_untrained(converted_odd_dir, speech):
    """Also for a random model, whose hypotheses run into the per-utterance length limit."""
    model, processor = load(converted_odd_dir)
    batch = [speech[1], speech[-1], speech[6]]
    sequences, batched = transcribe(model, processor, batch)
    alone = [transcribe(model, processor, [u])[0][0] for u in batch]
    for row, single in zip(sequences, alone, strict=True):
        assert token_ids(row, model.config) == token_ids(single, model.config)


def test_pipeline_matches_reference(converted_aed_dir, reference_aed, speech):
    """`pipeline("automatic-speech-recognition", model=DIR)` runs as seq2seq with the published settings."""
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed_dir), device="cpu")
    expected = [text for _, text in reference_aed.transcribe([u.path for u in speech], **PUBLISHED)]
    outputs = asr([u.audio for u in speech], batch_size=4)
    assert [o["text"] for o in outputs] == expected
    assert set(outputs[0]) == {"text", "confidence"}  # the pipeline's keys: the transcript and its confidence
    single = asr({"raw": speech[2].audio, "sampling_rate": 16000})
    assert single["text"] == expected[2]
    from_file = asr(str(speech[4].path))
    assert from_file["text"] == expected[4]


def test_auto_classes_load_the_converted_folder(converted_aed_dir, trained):
    model = AutoModelForSpeechSeq2Seq.from_pretrained(converted_aed_dir)
    processor = AutoProcessor.from_pretrained(converted_aed_dir)
    assert isinstance(model, FireRedAedForConditionalGeneration)
    assert isinstance(processor, FireRedAsrProcessor)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert isinstance(AutoConfig.from_pretrained(converted_aed_dir), FireRedAedConfig)
    assert isinstance(AutoModel.from_pretrained(converted_aed_dir), FireRedAedModel)
    assert isinstance(AutoTokenizer.from_pretrained(converted_aed_dir), FireRedAsrTokenizer)
    assert isinstance(AutoFeatureExtractor.from_pretrained(converted_aed_dir), FireRedAsrFeatureExtractor)


def test_sampling_and_transformers_beam_search_run(trained, speech):
    """Non-original modes go through transformers' generate: sampling, plain beam search, several sequences."""
    model, processor = trained
    inputs = processor([speech[0].audio, speech[5].audio], sampling_rate=16000, return_tensors="pt")
    torch.manual_seed(0)
    sampled = model.generate(**inputs, do_sample=True, top_k=5, num_beams=1)
    hf_beam = model.generate(**inputs, original_beam_search=False, num_beams=3, num_return_sequences=2)
    nbest = model.generate(**inputs, num_beams=3, num_return_sequences=3, return_dict_in_generate=True)
    texts = processor.batch_decode(hf_beam, skip_special_tokens=True)
    assert sampled.shape[0] == 2 and hf_beam.shape[0] == 4 and nbest.sequences.shape[0] == 6
    assert texts[0] == speech[0].text and texts[2] == speech[5].text
    scores = nbest.sequences_scores.view(2, 3)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])
    with torch.no_grad():  # precomputed encoder outputs, even as a plain tuple, take the same paths
        encoded = model.get_encoder()(inputs["input_features"], attention_mask=inputs["attention_mask"])
    for original in (True, False):
        again = model.generate(
            encoder_outputs=(encoded.last_hidden_state,), attention_mask=inputs["attention_mask"],
            original_beam_search=original, num_beams=3,
        )  # fmt: skip
        assert processor.batch_decode(again, skip_special_tokens=True) == [speech[0].text, speech[5].text]


def test_loss_and_labels(trained, speech):
    """`labels` are shifted into decoder inputs and give a cross-entropy loss that ignores -100."""
    model, processor = trained
    inputs = processor(audio=[speech[0].audio, speech[2].audio], text=[speech[0].text, speech[2].text],
                       sampling_rate=16000, return_tensors="pt", padding=True)  # fmt: skip
    labels = inputs["labels"].masked_fill(inputs["labels"] == model.config.pad_token_id, -100)
    output = model(inputs["input_features"], attention_mask=inputs["attention_mask"], labels=labels)
    assert output.loss.item() < 0.5  # the fixture learned these sentences
    logits = output.logits.log_softmax(-1)
    keep = labels != -100
    manual = -logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)[keep].mean()
    assert torch.allclose(output.loss, manual, atol=1e-5)


def test_long_input_does_not_crash(trained):
    """Relative positions are computed for any length: the reference's 5000-entry table fails past 200 s."""
    model, _ = trained
    frames = 20_500  # 205 s of fbank frames
    features = torch.randn(1, frames, 80) * 0.1
    with torch.no_grad():
        encoded = model.get_encoder()(features)
    assert encoded.last_hidden_state.shape[1] == (frames + 3) // 4
    assert torch.isfinite(encoded.last_hidden_state).all()


def test_save_load_round_trip_is_lossless(trained, tmp_path, speech):
    model, processor = trained
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    reloaded, reprocessor = load(tmp_path)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name
    assert reloaded.generation_config.to_diff_dict() == model.generation_config.to_diff_dict()
    assert transcribe(reloaded, reprocessor, speech[:2])[1] == transcribe(model, processor, speech[:2])[1]


def test_generate_rejects_bad_features(trained):
    model, _ = trained
    with pytest.raises(ValueError, match="shape"):
        model.generate(torch.zeros(1, 50))
    with pytest.raises(ValueError, match="NaN"):
        model.generate(torch.full((1, 50, 80), float("nan")))
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.generate(torch.zeros(1, 50, 80), num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="eos_penalty"):  # > 0 (FireRedASR2 allows penalties above 1)
        model.generate(torch.zeros(1, 50, 80), eos_penalty=0.0)
