"""FireRedLID: the converter, the model against upstream's FireRedLID path (the oracle, tests/reference_lid.py), the
tokenizer, and `pipeline("audio-classification")`.

The upstream folder holds the trained test AED's encoder and a label decoder trained a little on the corpus, so that
its labels follow the audio (checked first: agreement with an oracle that says the same thing for every input would
prove little).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from transformers import AudioClassificationPipeline, AutoProcessor, AutoTokenizer, pipeline

from tests.audio import read_wav
from tests.reference_lid import DECODER_LAYERS, LABEL_COUNT, ReferenceLid, labels
from transformers_fireredasr import FireRedLidConfig, FireRedLidForConditionalGeneration, FireRedLidTokenizer
from transformers_fireredasr.conversion.lid import PROJECTION, convert_lid, is_lid_folder, lid_card_text
from transformers_fireredasr.pipeline_fireredlid import FireRedLidPipeline

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def oracle(lid_dir):
    return ReferenceLid(lid_dir)


@pytest.fixture(scope="module")
def oracle_batched(oracle, speech):
    """The oracle's answers for the whole corpus in one padded batch of mixed lengths."""
    return oracle.identify([u.path for u in speech])


@pytest.fixture(scope="module")
def converted(converted_lid_dir):
    model = FireRedLidForConditionalGeneration.from_pretrained(converted_lid_dir).eval()
    return model, AutoProcessor.from_pretrained(converted_lid_dir)


def identify(model, processor, utterances) -> list[tuple[list[int], str, float]]:
    """Ours, one batch: `(label ids, text, confidence)` of the best hypothesis per utterance."""
    inputs = processor([u.audio for u in utterances], sampling_rate=16000, return_tensors="pt")
    output = model.identify(inputs["input_features"], inputs["attention_mask"])
    results = []
    for ids, mask, confidence in zip(
        output.label_ids[:, 0], output.label_mask[:, 0], output.confidence[:, 0], strict=True
    ):
        chosen = ids[mask].tolist()
        results.append((chosen, processor.tokenizer.decode(chosen), float(confidence)))
    return results


def assert_same(ours, expected):
    for (ids, text, confidence), (ref_ids, ref_text, ref_confidence) in zip(ours, expected, strict=True):
        assert (ids, text) == (ref_ids, ref_text)
        assert abs(confidence - ref_confidence) < TOLERANCE


def test_the_oracle_follows_the_audio(oracle_batched):
    results = oracle_batched
    assert all(ids for ids, _, _ in results)
    assert len({text for _, text, _ in results}) >= 3
    assert len({round(confidence, 3) for _, _, confidence in results}) >= 6


def test_labels_and_confidences_match_the_oracle_batched(converted, oracle_batched, speech):
    """One padded batch of mixed lengths, on both sides."""
    model, processor = converted
    assert_same(identify(model, processor, speech), oracle_batched)


def test_labels_and_confidences_match_the_oracle_one_by_one(converted, oracle, speech):
    model, processor = converted
    batched = identify(model, processor, speech)
    for utterance, together in zip(speech, batched, strict=True):
        (alone,) = identify(model, processor, [utterance])
        assert_same([alone], oracle.identify([utterance.path]))
        assert_same([alone], [together])


def test_identify_returns_the_ranked_hypotheses(converted, speech):
    model, processor = converted
    inputs = processor([speech[0].audio, speech[-1].audio], sampling_rate=16000, return_tensors="pt")
    output = model.identify(inputs["input_features"], inputs["attention_mask"], top_k=3)
    assert output.label_ids.shape[:2] == output.confidence.shape == (2, 3)
    assert torch.all(output.sequences_scores[:, :-1] >= output.sequences_scores[:, 1:])
    assert torch.all(output.label_mask.sum(-1) <= 2)
    with pytest.raises(ValueError, match="num_return_sequences"):
        model.identify(inputs["input_features"], inputs["attention_mask"], top_k=4)


# --- the converter --------------------------------------------------------------------------------------------------


def test_converted_folder(converted_lid_dir, converted_aed_dir):
    model = FireRedLidForConditionalGeneration.from_pretrained(converted_lid_dir)
    config = model.config
    assert isinstance(config, FireRedLidConfig) and config.model_type == "fireredlid"
    assert (config.vocab_size, config.decoder_layers) == (LABEL_COUNT, DECODER_LAYERS)
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (2, 3, 4)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    generation = model.generation_config
    assert (generation.num_beams, generation.max_new_tokens) == (3, 2)
    assert (generation.softmax_smoothing, generation.gnmt_length_penalty, generation.eos_penalty) == (1.25, 0.6, 1.0)
    assert (converted_lid_dir / "README.md").read_text("utf-8") == lid_card_text()
    # The test LID took the trained AED's encoder: the converted pair holds the same encoder weights.
    from transformers_fireredasr import FireRedAedForConditionalGeneration

    asr = FireRedAedForConditionalGeneration.from_pretrained(converted_aed_dir)
    lid_encoder, asr_encoder = model.get_encoder().state_dict(), asr.get_encoder().state_dict()
    assert lid_encoder.keys() == asr_encoder.keys()
    assert all(torch.equal(lid_encoder[key], asr_encoder[key]) for key in lid_encoder)


def test_shares_encoder_compares_weights_and_cmvn(converted_lid_dir, converted_aed_dir):
    from transformers import AutoFeatureExtractor

    from transformers_fireredasr import FireRedAedForConditionalGeneration
    from transformers_fireredasr.modeling_fireredlid import shares_encoder

    lid = FireRedLidForConditionalGeneration.from_pretrained(converted_lid_dir)
    asr = FireRedAedForConditionalGeneration.from_pretrained(converted_aed_dir)
    lid_features, asr_features = (
        AutoFeatureExtractor.from_pretrained(d) for d in (converted_lid_dir, converted_aed_dir)
    )
    assert shares_encoder(asr, lid, asr_features, lid_features)
    shifted = AutoFeatureExtractor.from_pretrained(converted_lid_dir, cmvn_mean=[0.0] * 80)
    assert not shares_encoder(asr, lid, asr_features, shifted)
    with torch.no_grad():
        lid.get_encoder().layers[0].final_layer_norm.bias.add_(1e-3)
    assert not shares_encoder(asr, lid)


def _edited(lid_dir, tmp_path, edit):
    """A copy of the upstream folder whose package `edit(package)` changed."""
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(lid_dir, folder)
    package = torch.load(folder / "model.pth.tar", map_location="cpu", weights_only=False)
    edit(package)
    torch.save(package, folder / "model.pth.tar")
    return folder


def test_decoder_layers_come_from_the_weights(lid_dir, tmp_path):
    def claim_sixteen(package):
        package["args"] = argparse.Namespace(**{**vars(package["args"]), "n_layers_dec": 16})

    converted = convert_lid(_edited(lid_dir, tmp_path, claim_sixteen), tmp_path / "out")
    assert FireRedLidConfig.from_pretrained(converted).decoder_layers == DECODER_LAYERS


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda p: p["model_state_dict"].update({"decoder.tgt_word_emb.weight": torch.zeros(3, 3)}), "ASR checkpoint"),
        (lambda p: p["model_state_dict"].update({"lid_decoder.extra.weight": torch.zeros(3)}), "lid_decoder.extra"),
        (lambda p: p["model_state_dict"].pop("lid_decoder.layer_stack.5.mlp.w_1.bias"), "missing"),
        (lambda p: p["model_state_dict"].pop("encoder.layer_stack.0.mhsa.w_qs.weight"), "missing"),
        (lambda p: p["model_state_dict"].update({PROJECTION: p["model_state_dict"][PROJECTION] + 1.0}), "ties"),
        (lambda p: setattr(p["args"], "lid_odim", 7), "lid_odim"),
    ],
    ids=["asr-decoder", "unexpected", "missing-decoder", "missing-encoder", "untied", "odim"],
)
def test_the_converter_refuses_a_checkpoint_that_does_not_fit(lid_dir, tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        convert_lid(_edited(lid_dir, tmp_path, edit), tmp_path / "out")


def test_the_converter_names_missing_files(lid_dir, tmp_path):
    import shutil

    folder = tmp_path / "partial"
    shutil.copytree(lid_dir, folder)
    (folder / "cmvn.ark").unlink()
    assert not is_lid_folder(folder) and is_lid_folder(lid_dir)
    with pytest.raises(FileNotFoundError, match="cmvn.ark"):
        convert_lid(folder, tmp_path / "out")


def test_resolve_model_converts_an_original_folder_once(lid_dir, tmp_path, monkeypatch, capsys):
    from transformers import AutoConfig

    from transformers_fireredasr.conversion.resolve import (
        CACHE_VARIABLE,
        OriginalFormatError,
        original_format_error,
        original_kind,
        resolve_model,
    )

    monkeypatch.setenv(CACHE_VARIABLE, str(tmp_path / "cache"))
    assert original_kind(lid_dir) == "lid"
    converted = resolve_model(str(lid_dir))
    assert "FireRedLID" in capsys.readouterr().err
    assert resolve_model(str(lid_dir)) == converted and original_kind(converted) is None
    assert FireRedLidConfig.from_pretrained(converted).decoder_layers == DECODER_LAYERS
    with pytest.raises(OriginalFormatError, match="convert_fireredlid.py"):
        AutoConfig.from_pretrained(str(lid_dir))
    assert "FireRedLID" in str(original_format_error("FireRedTeam/FireRedLID"))


# --- tokenizer and pipeline ----------------------------------------------------------------------------------------


def test_tokenizer_round_trip(converted_lid_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(converted_lid_dir)
    assert isinstance(tokenizer, FireRedLidTokenizer) and len(tokenizer) == LABEL_COUNT
    ids = tokenizer("zh mandarin")["input_ids"]
    assert ids == [labels().index("zh"), labels().index("mandarin"), tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "zh mandarin"
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).get_vocab() == tokenizer.get_vocab()


def test_audio_classification_pipeline(converted_lid_dir, oracle, speech):
    classify = pipeline("audio-classification", model=str(converted_lid_dir))
    assert isinstance(classify, FireRedLidPipeline)
    paths = [str(speech[0].path), str(speech[-1].path)]
    expected = [oracle.identify([path])[0] for path in paths]
    alone = [classify(path) for path in paths]
    for hypotheses, (_, text, confidence) in zip(alone, expected, strict=True):
        assert len(hypotheses) == 3 and len({h["label"] for h in hypotheses}) == 3
        assert hypotheses[0]["label"] == text and abs(hypotheses[0]["score"] - confidence) < TOLERANCE
    batched = classify(paths, batch_size=2)
    for together, one in zip(batched, alone, strict=True):
        assert [h["label"] for h in together] == [h["label"] for h in one]
        assert [h["score"] for h in together] == pytest.approx([h["score"] for h in one], abs=TOLERANCE)
    best = classify({"array": read_wav(paths[0]), "sampling_rate": 16000}, top_k=1)
    assert [h["label"] for h in best] == [alone[0][0]["label"]]
    with pytest.raises(ValueError, match="function_to_apply"):
        classify(paths[0], function_to_apply="softmax")


def test_other_models_keep_the_stock_audio_classification_pipeline():
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    config = Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
        conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2,
        num_labels=2, classifier_proj_size=8,
    )  # fmt: skip
    model = Wav2Vec2ForSequenceClassification(config).eval()
    classify = pipeline("audio-classification", model=model, feature_extractor=Wav2Vec2FeatureExtractor())
    assert type(classify) is AudioClassificationPipeline
    assert len(classify(np.zeros(1600, dtype=np.float32))) == 2
