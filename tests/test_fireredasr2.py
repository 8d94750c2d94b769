"""FireRedASR2 checkpoints (issue #14): the AED's CTC head converts, its log-probs match the reference encoder's
through `ctc.ctc_lo`, transcripts stay the reference's, and v2 output conventions (lowercase English, hidden
`<blank>`/`<sil>`, eos penalty above 1)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSpeechSeq2Seq, pipeline

import transformers_fireredasr  # noqa: F401 - registers the Auto classes
from tests.conftest import ReferenceAed
from tests.test_aed_parity import GREEDY, PUBLISHED, token_ids, transcribe
from transformers_fireredasr import FireRedAedForConditionalGeneration, FireRedAsrProcessor
from transformers_fireredasr.conversion.aed import aed_version
from transformers_fireredasr.conversion.hub import model_card_text


@pytest.fixture(scope="module")
def v2(converted_aed2_dir):
    model = FireRedAedForConditionalGeneration.from_pretrained(converted_aed2_dir).eval()
    return model, FireRedAsrProcessor.from_pretrained(converted_aed2_dir)


def test_v2_is_detected_and_keeps_its_ctc_head(aed2_dir, trained_aed_dir, converted_aed2_dir, converted_aed_dir):
    v2_state = torch.load(aed2_dir / "model.pth.tar", weights_only=False)["model_state_dict"]
    v1_state = torch.load(trained_aed_dir / "model.pth.tar", weights_only=False)["model_state_dict"]
    assert aed_version(v2_state) == 2 and aed_version(v1_state) == 1
    assert json.loads((converted_aed2_dir / "config.json").read_text())["ctc_head"] is True
    assert json.loads((converted_aed_dir / "config.json").read_text())["ctc_head"] is False
    model = AutoModelForSpeechSeq2Seq.from_pretrained(converted_aed2_dir)
    assert torch.equal(model.ctc_head.weight, v2_state["ctc.ctc_lo.weight"])
    assert torch.equal(model.ctc_head.bias, v2_state["ctc.ctc_lo.bias"])
    assert AutoModelForSpeechSeq2Seq.from_pretrained(converted_aed_dir).ctc_head is None  # v1 stays as it was
    assert (converted_aed2_dir / "README.md").read_text("utf-8") == model_card_text("FireRedASR2-AED")
    tokenizer_config = json.loads((converted_aed2_dir / "tokenizer_config.json").read_text())
    assert tokenizer_config["lowercase_output"] is True and tokenizer_config["hidden_tokens"] == ["<blank>", "<sil>"]


def test_ctc_log_probs_match_the_reference_encoder(aed2_dir, trained_aed_dir, v2, speech):
    model, _ = v2
    reference = ReferenceAed(trained_aed_dir)
    state = torch.load(aed2_dir / "model.pth.tar", weights_only=False)["model_state_dict"]
    ctc_lo = torch.nn.Linear(state["ctc.ctc_lo.weight"].shape[1], state["ctc.ctc_lo.weight"].shape[0])
    ctc_lo.load_state_dict({"weight": state["ctc.ctc_lo.weight"], "bias": state["ctc.ctc_lo.bias"]})
    batch = [speech[0], speech[5], speech[-1], speech[9]]
    feats, lengths = reference.features([u.path for u in batch])
    mask = (torch.arange(feats.shape[1])[None, :] < lengths[:, None]).long()
    with torch.no_grad():
        encoder_out, encoder_lengths, _ = reference.model.encoder(feats, lengths)
        expected = ctc_lo(encoder_out).log_softmax(-1)
        ours = model(feats, attention_mask=mask, decoder_input_ids=torch.full((4, 1), 3))
    assert ours.ctc_log_probs.shape == expected.shape
    frames = ours.encoder_attention_mask.sum(-1)
    assert frames.tolist() == encoder_lengths.tolist()
    for row, count in enumerate(frames.tolist()):  # real frames only (padding differs by design)
        assert (ours.ctc_log_probs[row, :count] - expected[row, :count]).abs().max().item() < 1e-4
    generated = model.generate(
        feats, attention_mask=mask, return_dict_in_generate=True, output_ctc_log_probs=True, num_beams=1
    )
    assert torch.allclose(generated.ctc_log_probs, ours.ctc_log_probs)


@pytest.mark.parametrize("decoding", ["greedy", "published"])
def test_v2_transcripts_match_the_reference(v2, reference_aed, speech, decoding):
    """The reference decodes the same weights (v2's original loads them with strict=False, the CTC head unused)."""
    model, processor = v2
    settings = GREEDY if decoding == "greedy" else PUBLISHED
    expected = reference_aed.transcribe([u.path for u in speech], **settings)
    kwargs = {"num_beams": 1} if decoding == "greedy" else {}
    assert any(text for _, text in expected)
    for utterance, (ids, text) in zip(speech, expected, strict=True):
        sequences, texts = transcribe(model, processor, [utterance], **kwargs)
        assert token_ids(sequences[0], model.config) == ids
        assert texts[0] == text.lower()  # v2 prints English in lowercase; Hanzi are unchanged


def test_eos_penalty_above_one_is_allowed(v2, speech):
    """FireRedASR2 allows eos penalties above 1 (the v1 reference asserts <= 1, so greedy decoding is checked
    against a hand-written loop over the model's own logits instead)."""
    model, processor = v2
    eos = model.config.eos_token_id
    lengths = []
    for utterance in [u for u in speech if u.text][:4]:
        inputs = processor([utterance.audio], sampling_rate=16000, return_tensors="pt")
        ids = model.generate(**inputs, num_beams=1, eos_penalty=1.5)[0].tolist()
        expected = [model.config.decoder_start_token_id]
        with torch.no_grad():
            while expected[-1] != eos and len(expected) <= len(ids):
                logits = model(**inputs, decoder_input_ids=torch.tensor([expected])).logits[0, -1]
                scores = (logits / 1.25).log_softmax(-1)
                scores[eos] *= 1.5
                expected.append(int(scores.argmax()))
        assert ids[: len(expected)] == expected
        lengths.append(len(ids))
    inputs = processor([speech[0].audio], sampling_rate=16000, return_tensors="pt")
    with pytest.raises(ValueError, match="eos_penalty must be > 0"):
        model.generate(**inputs, eos_penalty=0.0)


def test_v2_tokenizer_hides_blank_and_sil_and_lowercases(v2):
    _, processor = v2
    tokenizer = processor.tokenizer
    ids = tokenizer("HELLO 今天")["input_ids"]
    blank = tokenizer.convert_tokens_to_ids("<blank>")
    assert tokenizer.decode([blank, *ids], skip_special_tokens=True) == "hello今天"


def test_word_timestamps_on_a_v2_model(converted_aed2_dir, speech):
    asr = pipeline("automatic-speech-recognition", model=str(converted_aed2_dir))
    plain = asr(speech[0].audio)
    timed = asr(speech[0].audio, return_timestamps="word")
    assert timed["text"] == plain["text"] and timed["confidence"] == plain["confidence"]
    assert "".join(chunk["text"] for chunk in timed["chunks"]).replace(" ", "") == plain["text"].replace(" ", "")
    duration = len(speech[0].audio) / 16000 + 0.0005  # times are rounded to the millisecond
    assert all(0 <= c["timestamp"][0] <= c["timestamp"][1] <= duration for c in timed["chunks"])


@pytest.fixture(scope="module")
def llm2_dir(llm_dir, tmp_path_factory):
    """The reference LLM directory as FireRedASR2-LLM ships it: `asr_encoder.pth.tar` holds only `args`."""
    import shutil

    folder = tmp_path_factory.mktemp("llm2") / "FireRedASR2-LLM"
    shutil.copytree(llm_dir, folder)
    package = torch.load(folder / "asr_encoder.pth.tar", weights_only=False)
    torch.save({"args": package["args"]}, folder / "asr_encoder.pth.tar")
    return folder


def test_v2_llm_converts_with_the_encoder_from_model_pth(llm2_dir, converted_llm_dir, tmp_path, speech):
    from safetensors.torch import load_file

    from transformers_fireredasr.conversion.llm import convert_llm

    converted = convert_llm(llm2_dir, tmp_path / "hf")
    config = json.loads((converted / "config.json").read_text())
    assert config["max_segment_seconds"] == 40.0 and config["lowercase_output"] is True
    assert json.loads((converted_llm_dir / "config.json").read_text()).get("max_segment_seconds") is None
    assert (converted / "README.md").read_text("utf-8") == model_card_text("FireRedASR2-LLM")

    # v1's model.pth.tar encoder wins over asr_encoder.pth.tar, so both conversions hold the same encoder tensors.
    def tensors(folder):
        return {key: value for path in folder.glob("*.safetensors") for key, value in load_file(path).items()}

    ours, v1 = tensors(converted), tensors(converted_llm_dir)
    encoder_keys = [key for key in v1 if key.startswith("encoder.")]
    assert encoder_keys and all(torch.equal(ours[key], v1[key]) for key in encoder_keys)
    asr = pipeline("automatic-speech-recognition", model=str(converted))
    assert asr.engine.max_segment_seconds == 40.0
    assert (
        asr(speech[0].audio)["text"]
        == pipeline("automatic-speech-recognition", model=str(converted_llm_dir))(speech[0].audio)["text"].lower()
    )  # the same weights; v2 prints lowercase


def test_v2_llm_without_any_encoder_weights_is_refused(llm2_dir, tmp_path):
    from transformers_fireredasr.conversion.llm import convert_llm

    package = torch.load(llm2_dir / "model.pth.tar", weights_only=False)
    package["model_state_dict"] = {
        k: v for k, v in package["model_state_dict"].items() if not k.startswith("encoder.")
    }
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(llm2_dir, broken)
    torch.save(package, broken / "model.pth.tar")
    with pytest.raises(ValueError, match="encoder weights are missing"):
        convert_llm(broken, tmp_path / "out")
