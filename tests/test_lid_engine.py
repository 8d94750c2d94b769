"""Languages in transcripts: the engine's optional FireRedLID model (`LoadOptions.lid_model`) tags every segment with
text, every punctuated sentence and each result, the same batched and one by one; without it nothing changes.

The language model is the test FireRedLID (tests/reference_lid.py), whose labels follow the corpus sentences; the
transcription model is the bundled demo, so segment features reach it through another CMVN.
"""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from tests.audio import HELD_OUT_CLIPS, join_with_pauses, write_wav
from transformers_fireredasr import demo_model_dir
from transformers_fireredasr.engine import Engine, LoadOptions, OptionError, TranscribeOptions
from transformers_fireredasr.engine.language import dominant_language
from transformers_fireredasr.language_identification import Language, LanguageIdentifier

DEMO = str(demo_model_dir())


@pytest.fixture(scope="module")
def demo_engine():
    return Engine.from_pretrained(DEMO, {"device": "cpu"})


@pytest.fixture(scope="module")
def identifier(converted_lid_dir):
    return LanguageIdentifier.from_pretrained(converted_lid_dir)


@pytest.fixture(scope="module")
def engine(demo_engine, identifier):
    return Engine(
        demo_engine.model, demo_engine.feature_extractor, demo_engine.tokenizer, language_identifier=identifier
    )


@pytest.fixture(scope="module")
def recording(speech, tmp_path_factory):
    """Four sentences of different labels with pauses between them, as a wav file."""
    spoken = [u.audio for u in speech if u.text][::4]
    audio, _ = join_with_pauses(spoken, np.random.default_rng(3))
    path = tmp_path_factory.mktemp("lid_engine") / "four_sentences.wav"
    write_wav(path, audio)
    return str(path)


@pytest.fixture(scope="module")
def segment_result(engine, recording):
    """The recording transcribed with segment timestamps and languages."""
    return engine.transcribe(recording, timestamps="segment")


def test_each_segment_gets_the_language_of_its_own_audio(segment_result, identifier, recording):
    from transformers_fireredasr.audio_io import load_waveform

    result = segment_result
    waveform = load_waveform(recording)
    assert len(result["chunks"]) >= 3
    expected = []
    for chunk in result["chunks"]:
        start, end = (round(t * 16000) for t in chunk["timestamp"])
        expected.append(identifier.identify([waveform[start:end]])[0])
    for chunk, language in zip(result["chunks"], expected, strict=True):
        assert chunk["language"] == language.label
        assert chunk["language_confidence"] == pytest.approx(language.confidence, abs=2e-3)
    assert len({chunk["language"] for chunk in result["chunks"]}) >= 2  # the labels follow the audio
    seconds = [(c["timestamp"][1] - c["timestamp"][0], Language(c["language"], c["language_confidence"])) for c in
               result["chunks"]]  # fmt: skip
    overall = dominant_language(seconds)
    assert result["language"] == overall.label
    assert result["language_confidence"] == pytest.approx(overall.confidence, abs=1e-3)


def test_word_timestamps_tag_the_segments(engine, recording):
    result = engine.transcribe(recording, timestamps="word")
    assert result["segments"] and all("language" in segment for segment in result["segments"])
    assert all("language" not in word for word in result["chunks"])
    assert result["language"] in {segment["language"] for segment in result["segments"]}


def test_nothing_changes_without_a_language_model(demo_engine, segment_result, recording):
    plain = demo_engine.transcribe(recording, timestamps="segment")
    tagged = segment_result
    assert "language" not in plain and all("language" not in chunk for chunk in plain["chunks"])
    assert plain["text"] == tagged["text"]
    assert [c["timestamp"] for c in plain["chunks"]] == [c["timestamp"] for c in tagged["chunks"]]


def test_batched_equals_one_by_one(engine, segment_result, recording):
    inputs = [("long", recording), (HELD_OUT_CLIPS[0].name, str(HELD_OUT_CLIPS[0]))]
    options = TranscribeOptions(timestamps="segment")
    outcomes = {outcome.key: outcome for outcome in engine.transcribe_many(inputs, options, batch_size=8)}
    for key, path in inputs:
        outcome = outcomes[key]
        assert outcome.error is None
        alone = segment_result if key == "long" else engine.transcribe(path, options)
        assert outcome.result == alone
        assert [piece.get("language") for piece in outcome.pieces] == [c["language"] for c in alone["chunks"]]


def test_silence_has_no_language(engine, tmp_path):
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(16000, dtype=np.float32))
    result = engine.transcribe(str(path))
    assert result["text"] == "" and result["language"] is None and result["language_confidence"] is None


def test_sentences_take_the_language_of_their_segment(demo_engine, identifier, converted_punc_dir, recording):
    from transformers_fireredasr.punctuation import Punctuator

    punctuator = Punctuator.from_pretrained(converted_punc_dir)
    engine = Engine(
        demo_engine.model,
        demo_engine.feature_extractor,
        demo_engine.tokenizer,
        punctuator=punctuator,
        language_identifier=identifier,
    )
    result = engine.transcribe(recording, timestamps="segment")
    labels = {chunk["language"] for chunk in result["chunks"]}
    assert result["sentences"] and all(sentence["language"] in labels for sentence in result["sentences"])
    for sentence in result["sentences"]:
        overlaps = [
            max(0.0, min(sentence["end"], c["timestamp"][1]) - max(sentence["start"], c["timestamp"][0]))
            for c in result["chunks"]
        ]
        assert sentence["language"] == result["chunks"][int(np.argmax(overlaps))]["language"]


def test_one_input_the_language_model_fails_on_fails_alone(demo_engine, converted_lid_dir):
    identifier = LanguageIdentifier.from_pretrained(converted_lid_dir)
    original = identifier.identify_features
    bad_frames = set()

    def identify_features(features, feature_extractor=None):
        if any(len(piece) in bad_frames for piece in features):
            raise RuntimeError("this segment breaks the language model")
        return original(features, feature_extractor)

    identifier.identify_features = identify_features
    engine = Engine(
        demo_engine.model, demo_engine.feature_extractor, demo_engine.tokenizer, language_identifier=identifier
    )
    clips = [(path.name, str(path)) for path in HELD_OUT_CLIPS]
    bad_frames.add(len(engine.prepare(clips[1][1], TranscribeOptions()).segments[0].features))
    outcomes = list(engine.transcribe_many(clips, TranscribeOptions(), batch_size=4))
    assert [outcome.key for outcome in outcomes if outcome.error] == [clips[1][0]]
    failed = next(outcome for outcome in outcomes if outcome.error)
    assert "language identification failed (this segment breaks the language model)" in failed.error
    assert all(outcome.result["language"] for outcome in outcomes if not outcome.error)


def test_load_option_and_pipeline(converted_lid_dir, segment_result, recording):
    engine = Engine.from_pretrained(DEMO, {"device": "cpu", "lid_model": str(converted_lid_dir)})
    assert isinstance(engine.language_identifier, LanguageIdentifier)
    asr = pipeline("automatic-speech-recognition", model=DEMO, device="cpu", lid_model=str(converted_lid_dir))
    assert asr(recording, return_timestamps=True) == segment_result
    with pytest.raises(OptionError, match="lid_model must name a model"):
        LoadOptions(lid_model="")
    with pytest.raises(ValueError, match="not a FireRedLID model"):
        Engine.from_pretrained(DEMO, {"device": "cpu", "lid_model": DEMO})


@pytest.fixture(scope="module")
def shared_engine(converted_aed2_dir, converted_lid_dir):
    """FireRedASR2-AED (the trained test AED with a CTC head) and the test FireRedLID, which took that AED's encoder
    and CMVN: the engine runs one encoder pass for both."""
    return Engine.from_pretrained(str(converted_aed2_dir), {"device": "cpu", "lid_model": str(converted_lid_dir)})


def test_a_pair_that_shares_its_encoder_runs_it_once_with_the_same_results(shared_engine, recording):
    import copy

    assert shared_engine.shares_encoder
    identifier = shared_engine.language_identifier
    separate = copy.copy(shared_engine)  # the same models, identified apart from decoding
    separate.shares_encoder = False
    calls = {"asr": 0, "lid": 0}
    hooks = [
        model.get_encoder().register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
        for name, model in (("asr", shared_engine.model), ("lid", identifier.model))
    ]
    options = TranscribeOptions(timestamps="segment", hotwords=["天气"])
    words = TranscribeOptions(timestamps="word")  # the CTC head reads the shared pass too
    paths = {"long": recording, "clip": str(HELD_OUT_CLIPS[0])}
    inputs = [(key, shared_engine.prepare(path, options)) for key, path in paths.items()]  # prepared once for all
    worded = inputs[:1]  # word times on the same segments
    try:
        shared = {o.key: o for o in shared_engine.transcribe_many(inputs, options, batch_size=8)}
        assert calls == {"asr": 1, "lid": 0}  # one batch: one encoder pass, the language model's encoder idle
        apart = {o.key: o for o in separate.transcribe_many(inputs, options, batch_size=8)}
        assert calls["lid"] >= 1
        alone = {key: next(shared_engine.transcribe_many([(key, audio)], options)) for key, audio in inputs}
        shared_words, apart_words = (next(e.transcribe_many(worded, words)) for e in (shared_engine, separate))
        processors = {"feature_extractor": shared_engine.feature_extractor, "tokenizer": shared_engine.tokenizer}
        asr = pipeline("automatic-speech-recognition", model=shared_engine.model, **processors, lid_model=identifier)
        before = dict(calls)
        piped = asr(recording, return_timestamps=True, hotwords=["天气"])
        assert calls["lid"] == before["lid"] and calls["asr"] > before["asr"]  # the pipeline's lid_model shares it too
    finally:
        for hook in hooks:
            hook.remove()
    for key in paths:
        assert shared[key].error is None and apart[key].error is None
        assert shared[key].result == apart[key].result == alone[key].result
        assert shared[key].pieces == apart[key].pieces == alone[key].pieces
    chunks = shared["long"].result["chunks"]
    assert len(chunks) >= 3 and len({chunk["language"] for chunk in chunks}) >= 2  # the labels follow the audio
    assert shared_words.result == apart_words.result and shared_words.pieces == apart_words.pieces
    assert all(segment["language"] for segment in shared_words.result["segments"])
    assert piped == shared["long"].result


def test_a_pair_that_does_not_share_identifies_apart(shared_engine, engine, identifier, converted_aed2_dir):
    import copy
    from types import SimpleNamespace

    import torch

    from transformers_fireredasr.engine.language import shares_encoder_pass

    assert not engine.shares_encoder  # the demo has its own encoder and CMVN
    model, features = shared_engine.model, shared_engine.feature_extractor
    assert shares_encoder_pass(model, features, identifier)
    shifted = features.__class__(**{**features.to_dict(), "cmvn_mean": [0.0] * features.feature_size})
    assert not shares_encoder_pass(model, features, LanguageIdentifier(identifier.model, shifted))
    assert not shares_encoder_pass(model, shifted, identifier)
    bfloat16 = LanguageIdentifier(copy.deepcopy(identifier.model).to(torch.bfloat16), identifier.feature_extractor)
    assert not shares_encoder_pass(model, features, bfloat16)  # one pass gives one dtype
    llm = SimpleNamespace(config=SimpleNamespace(model_type="fireredasr_llm"))  # generate encodes by itself
    assert not shares_encoder_pass(llm, features, identifier)
    int8 = Engine.from_pretrained(str(converted_aed2_dir), {"device": "cpu", "quantize": "int8-dynamic"}).model
    assert not shares_encoder_pass(int8, features, identifier)  # an int8 encoder computes another output
