"""FireRedVAD against its oracle `fireredvad==0.0.2`: the converter, frame probabilities, offline segments, streaming
frame results in chunks of several sizes, and the audio-event variant's events, on speech, silence and noise.

The upstream folders are the oracle's own `DetectModel` with random weights (tests/vad_reference.py). Frame
probabilities are compared within 1e-5 on the same features (the model) and end to end, audio in, where both sides
compute the fbank with kaldi_native_fbank (the detector's default when it is installed, as it is for the tests).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModelForAudioFrameClassification

from tests.vad_reference import oracle, to_pcm
from transformers_fireredasr.conversion.resolve import original_format_error, original_kind, resolve_model
from transformers_fireredasr.conversion.vad import convert_vad, is_vad_folder, vad_card_text
from transformers_fireredasr.vad import FireRedVadDetector, split_variant
from transformers_fireredasr.vad_postprocessing import VadPostprocessing
from transformers_fireredasr.vad_streaming import StreamingVadPostprocessing

RECORDINGS = ("speech", "silence", "noise")
SUBFOLDER = {"VAD": None, "Stream-VAD": "Stream-VAD", "AED": "AED"}


# FireRedVAD's models are small: on a shared CPU, threads' synchronisation costs more than it saves.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def detectors(converted_vad_dir):
    return {
        variant: FireRedVadDetector.from_pretrained(converted_vad_dir / sub if sub else converted_vad_dir)
        for variant, sub in SUBFOLDER.items()
    }


def _oracle_features(vad_release_dir, variant, pcm):
    return oracle().core.audio_feat.AudioFeat(str(vad_release_dir / variant / "cmvn.ark")).extract(pcm)[0]


def test_the_converter_reads_the_sizes_and_labels_of_each_variant(converted_vad_dir, vad_release_dir):
    configs = {
        variant: json.loads(((converted_vad_dir / sub if sub else converted_vad_dir) / "config.json").read_text())
        for variant, sub in SUBFOLDER.items()
    }
    assert {variant: config["lookahead_order"] for variant, config in configs.items()} == {
        "VAD": 20,
        "Stream-VAD": 0,
        "AED": 20,
    }
    assert configs["AED"]["id2label"] == {"0": "speech", "1": "singing", "2": "music"}
    assert configs["VAD"]["id2label"] == {"0": "speech"}
    assert configs["VAD"]["num_blocks"] == 8 and configs["VAD"]["projection_size"] == 128
    model = AutoModelForAudioFrameClassification.from_pretrained(converted_vad_dir, subfolder="AED")
    assert type(model).__name__ == "FireRedVadForAudioFrameClassification"
    assert sum(p.numel() for p in model.parameters()) == sum(
        t.numel()
        for t in torch.load(vad_release_dir / "AED" / "model.pth.tar", weights_only=False)["model_state_dict"].values()
    )
    assert type(AutoFeatureExtractor.from_pretrained(converted_vad_dir)).__name__ == "FireRedAsrFeatureExtractor"
    card = (converted_vad_dir / "AED" / "README.md").read_text("utf-8")
    assert card == vad_card_text() and card.startswith("---\n") and "# FireRedVAD\n" in card


def test_the_converter_names_a_weight_the_checkpoint_lacks(tmp_path, vad_release_dir):
    package = torch.load(vad_release_dir / "VAD" / "model.pth.tar", weights_only=False)
    del package["model_state_dict"]["dfsmn.fsmns.2.fc2.weight"]
    folder = tmp_path / "broken"
    folder.mkdir()
    torch.save(package, folder / "model.pth.tar")
    (folder / "cmvn.ark").write_bytes((vad_release_dir / "VAD" / "cmvn.ark").read_bytes())
    with pytest.raises(ValueError, match=r"missing \['blocks\.2\.project\.weight'\]"):
        convert_vad(folder, tmp_path / "out")


@pytest.mark.parametrize("variant", list(SUBFOLDER))
def test_frame_probabilities_equal_the_oracle(variant, detectors, vad_release_dir, vad_recordings):
    reference = oracle().core.detect_model.DetectModel.from_pretrained(str(vad_release_dir / variant))
    detector = detectors[variant]
    spread = []
    for name in RECORDINGS:
        pcm = to_pcm(vad_recordings[name])
        features = _oracle_features(vad_release_dir, variant, pcm)
        expected, _ = reference(features[None])
        with torch.inference_mode():
            ours = detector.model(features[None]).probabilities
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=0)
        assert detector.fbank_backend == "kaldi_native_fbank"  # upstream's features, to the last bit
        ours = detector.feature_extractor(
            pcm, sampling_rate=16000, return_tensors="pt", fbank_backend="kaldi_native_fbank"
        )
        assert torch.equal(ours["input_features"][0], features)
        end_to_end = detector.frame_probabilities([pcm])[0]
        torch.testing.assert_close(end_to_end.reshape(expected.shape[1:]), expected[0], atol=1e-5, rtol=0)
        spread.append(float(expected.max() - expected.min()))
    assert spread[0] > 0.9  # speech and its pauses get different probabilities: the decisions are not trivial


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"max_speech_frame": 150, "merge_silence_frame": 30, "extend_speech_frame": 5},
        {"smooth_window_size": 1, "speech_threshold": 0.6, "min_speech_frame": 5, "min_silence_frame": 8},
    ],
    ids=["defaults", "split-merge-extend", "unsmoothed"],
)
def test_offline_segments_equal_the_oracle(settings, detectors, vad_release_dir, vad_recordings):
    fireredvad = oracle()
    reference = fireredvad.FireRedVad.from_pretrained(
        str(vad_release_dir / "VAD"), fireredvad.FireRedVadConfig(**settings)
    )
    detector = FireRedVadDetector(
        detectors["VAD"].model, detectors["VAD"].feature_extractor, VadPostprocessing(**settings)
    )
    found = []
    for name in RECORDINGS if not settings else RECORDINGS[:1]:
        pcm = to_pcm(vad_recordings[name])
        expected, _ = reference.detect(pcm)
        result = detector.detect(pcm)
        assert result.segments == expected["timestamps"], name
        assert result.duration == expected["dur"]
        found.append(len(result.segments))
    assert found[0] >= 4 and not any(found[1:])


def test_long_recordings_are_scored_in_independent_pieces_as_upstream(detectors, vad_release_dir, vad_recordings):
    fireredvad = oracle()
    reference = fireredvad.FireRedVad.from_pretrained(
        str(vad_release_dir / "VAD"), fireredvad.FireRedVadConfig(chunk_max_frame=300)
    )
    detector = FireRedVadDetector(detectors["VAD"].model, detectors["VAD"].feature_extractor, chunk_max_frame=300)
    pcm = to_pcm(vad_recordings["speech"])
    expected, probabilities = reference.detect(pcm)
    result = detector.detect(pcm)
    np.testing.assert_allclose(result.probabilities, probabilities.numpy(), atol=1e-5, rtol=0)
    assert result.segments == expected["timestamps"]


def test_events_equal_the_oracle(detectors, vad_release_dir, vad_recordings):
    reference = oracle().FireRedAed.from_pretrained(str(vad_release_dir / "AED"))
    counts = []
    for name in RECORDINGS:
        pcm = to_pcm(vad_recordings[name])
        expected, _ = reference.detect(pcm)
        result = detectors["AED"].detect(pcm)
        assert result.events == expected["event2timestamps"], name
        assert result.event_ratios == expected["event2ratio"]
        assert result.segments == expected["event2timestamps"]["speech"]
        counts.append(sum(map(len, result.events.values())))
    assert counts[0] > 3


def _decisions(results):
    """Every field of each frame result but the rounded probabilities (the decisions, compared first)."""
    return [
        (r.frame_idx, int(r.is_speech), r.is_speech_start, r.is_speech_end, r.speech_start_frame, r.speech_end_frame)
        for r in results
    ]


@pytest.mark.parametrize("mode", [None, 0, 3])
def test_streaming_results_in_chunks_of_any_size_equal_the_oracle(mode, detectors, vad_release_dir, vad_recordings):
    fireredvad = oracle()
    reference = fireredvad.FireRedStreamVad.from_pretrained(
        str(vad_release_dir / "Stream-VAD"), fireredvad.FireRedStreamVadConfig()
    )
    settings = StreamingVadPostprocessing()
    if mode is not None:
        reference.set_mode(mode)
        settings = settings.with_mode(mode)
    stream = detectors["Stream-VAD"].stream(settings)
    # one frame a call and an odd size (for a second), another odd size, everything at once (the presets: the speech)
    sizes = (160, 399, 4321, None) if mode is None else (4321,)
    for name in RECORDINGS if mode is None else RECORDINGS[:1]:
        pcm = to_pcm(vad_recordings[name])
        expected, _ = reference.detect_full(pcm)
        for size in sizes if name == "speech" else sizes[-1:]:
            size = size or len(pcm)
            # a causal model and an online post-processor: a prefix's frames are the whole recording's first frames
            fed = pcm[:16000] if size < 1000 else pcm
            stream.reset()
            results = [r for at in range(0, len(fed), size) for r in stream.accept(fed[at : at + size])]
            assert _decisions(results) == _decisions(expected[: len(results)]), (name, size)
            assert [vars(r) for r in results] == [vars(r) for r in expected[: len(results)]], (name, size)
        assert len(results) == len(expected)
        starts = sum(r.is_speech_start for r in results)
        assert (starts > 2) == (name == "speech")


def test_batched_detection_equals_one_by_one(detectors, vad_recordings):
    audios = [vad_recordings[name] for name in RECORDINGS] + [vad_recordings["speech"][: 16000 * 5]]
    for detector in (detectors["VAD"], detectors["AED"]):
        together = detector.detect_many(audios)
        for audio, batched in zip(audios, together, strict=True):
            alone = detector.detect(audio)
            np.testing.assert_allclose(batched.probabilities, alone.probabilities, atol=1e-6, rtol=0)
            assert (batched.segments, batched.events) == (alone.segments, alone.events)


def test_without_kaldi_native_fbank_the_torch_fbank_finds_the_same_segments(detectors, vad_recordings, monkeypatch):
    import transformers_fireredasr.vad as vad_module

    real_find_spec = vad_module.importlib.util.find_spec
    monkeypatch.setattr(
        vad_module.importlib.util,
        "find_spec",
        lambda name: None if name == "kaldi_native_fbank" else real_find_spec(name),
    )
    assert vad_module.default_fbank_backend() == "torch"
    torch_fbank = FireRedVadDetector(detectors["VAD"].model, detectors["VAD"].feature_extractor)
    assert torch_fbank.fbank_backend == "torch"
    expected = detectors["VAD"].detect(vad_recordings["speech"])
    result = torch_fbank.detect(vad_recordings["speech"])
    assert result.segments == expected.segments
    np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="fbank_backend must be one of torch, kaldi_native_fbank"):
        FireRedVadDetector(detectors["VAD"].model, detectors["VAD"].feature_extractor, fbank_backend="kaldi")
    with pytest.raises(ValueError, match="fbank_backend must be one of"):
        detectors["VAD"].feature_extractor(vad_recordings["noise"], sampling_rate=16000, fbank_backend="knf")


def test_trim_silence_tail_ends_segments_where_the_silence_began(detectors, vad_recordings):
    upstream = detectors["VAD"].detect(vad_recordings["speech"])
    fixed = FireRedVadDetector(
        detectors["VAD"].model, detectors["VAD"].feature_extractor, VadPostprocessing(trim_silence_tail=True)
    ).detect(vad_recordings["speech"])
    assert [start for start, _ in fixed.segments] == [start for start, _ in upstream.segments]
    # every segment closed by a confirmed silence keeps min_silence_frame (20) frames less
    assert [round(a - b, 3) for (_, a), (_, b) in zip(upstream.segments, fixed.segments, strict=True)][:-1] == [
        0.2
    ] * (len(upstream.segments) - 1)
    settings = StreamingVadPostprocessing()
    pcm = to_pcm(vad_recordings["speech"])
    ends = [
        [
            r.speech_end_frame
            for r in detectors["Stream-VAD"].stream(replace(settings, trim_silence_tail=trim)).accept(pcm)
            if r.is_speech_end
        ]
        for trim in (False, True)
    ]
    assert ends[0] and [a - b for a, b in zip(*ends, strict=True)] == [19] * len(ends[0])


def test_bad_input_gets_a_clear_error(detectors):
    with pytest.raises(ValueError, match="cannot stream"):
        detectors["VAD"].stream()
    with pytest.raises(ValueError, match="16000 Hz"):
        detectors["VAD"].detect_many([np.zeros(8000, dtype=np.float32)], sampling_rate=8000)
    with pytest.raises(ValueError, match="int32"):
        detectors["VAD"].detect(np.zeros(8000, dtype=np.int32))
    with pytest.raises(ValueError, match="unknown events"):
        FireRedVadDetector(detectors["AED"].model, detectors["AED"].feature_extractor, event_thresholds={"noise": 0.5})
    short = detectors["VAD"].detect(np.zeros(300, dtype=np.float32))
    assert short.segments == [] and short.probabilities.shape == (0,)
    assert detectors["Stream-VAD"].stream().accept(np.zeros(100, dtype=np.int16)) == []


def test_original_folders_are_recognised_and_converted_once(tmp_path, monkeypatch, vad_release_dir):
    monkeypatch.setenv("FIREREDASR_CACHE", str(tmp_path / "cache"))
    assert original_kind(vad_release_dir) == "vad" and original_kind(vad_release_dir / "AED") == "vad"
    assert is_vad_folder(vad_release_dir / "Stream-VAD") and not is_vad_folder(vad_release_dir)
    assert "FireRedVadDetector" in str(original_format_error(str(vad_release_dir)))
    converted = resolve_model(str(vad_release_dir))
    assert converted.startswith(str(tmp_path / "cache"))
    assert json.loads((Path(converted) / "AED" / "config.json").read_text())["id2label"]["2"] == "music"
    assert resolve_model(str(vad_release_dir)) == converted
    detector = FireRedVadDetector.from_pretrained(str(vad_release_dir / "AED"))
    assert detector.is_event_model
    assert split_variant("FireRedTeam/FireRedVAD/AED") == ("FireRedTeam/FireRedVAD", "AED")
    assert split_variant("FireRedTeam/FireRedVAD") == ("FireRedTeam/FireRedVAD", None)
