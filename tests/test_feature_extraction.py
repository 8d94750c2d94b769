"""FireRedAsrFeatureExtractor: parity with the original kaldi_native_fbank + CMVN front end, batching, I/O, errors."""

import json

import kaldiio
import numpy as np
import pytest
import torch
from fireredasr.data.asr_feat import CMVN, ASRFeatExtractor

from tests.audio import noise, synthesize_mandarin, write_wav
from transformers_fireredasr.feature_extraction_fireredasr import FireRedAsrFeatureExtractor

# Max abs difference allowed against the reference features after CMVN (observed up to ~5e-4). kaldi_native_fbank's FFT
# has float32 round-off, which shows in low-energy bins of loud frames: up to ~5e-3 on the raw log-mel scale.
TOLERANCE = 1e-3
# Mean abs difference allowed (observed ~1e-6 after CMVN, ~6e-6 raw): catches any systematic deviation.
MEAN_TOLERANCE = 1e-5
UTTERANCES = [  # (Hanzi, espeak speed, pitch)
    ("你好", 170, 55),
    ("今天天气很好，我们去公园散步吧", 160, 50),
    ("北京是中华人民共和国的首都，语音识别模型需要大量数据", 140, 40),
]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Wav files (odd sample counts) of synthesized Mandarin and noise, with their float audio."""
    tmp = tmp_path_factory.mktemp("audio")
    clips = []
    for i, (text, speed, pitch) in enumerate(UTTERANCES):
        audio = synthesize_mandarin(text, tmp / f"speech{i}.wav", speed=speed, pitch=pitch)
        clips.append(audio[: len(audio) - 1 + len(audio) % 2])  # make the length odd
    clips.append(noise(1.25, seed=0)[:19753])
    clips.append(noise(0.04, seed=1)[:481])  # two frames
    paths = []
    for i, audio in enumerate(clips):
        path = tmp / f"clip{i}.wav"
        write_wav(path, audio)
        paths.append(str(path))
    assert len({len(a) for a in clips}) == len(clips) and all(len(a) % 2 for a in clips)
    return {"audio": clips, "paths": paths, "dir": tmp}


@pytest.fixture(scope="module")
def cmvn_path(clips):
    """
    A Kaldi global CMVN stats file (sums + count, sums of squares) from the reference fbank of the clips. Frames of
    digital silence (every bin at the log floor) are left out, as a real corpus has hardly any: they would inflate the
    variance and shrink every difference by ~3x.
    """
    feats = np.concatenate([f[:n].numpy() for f, n in zip(*ASRFeatExtractor("")(clips["paths"])[:2], strict=True)])
    feats = feats[feats.min(axis=1) > np.log(np.finfo(np.float32).eps) + 1].astype(np.float64)
    stats = np.zeros((2, feats.shape[1] + 1))
    stats[0, :-1] = feats.sum(0)
    stats[0, -1] = len(feats)
    stats[1, :-1] = (feats**2).sum(0)
    path = clips["dir"] / "cmvn.ark"
    kaldiio.save_mat(str(path), stats)
    return str(path)


@pytest.fixture(scope="module")
def feature_extractor(cmvn_path):
    return FireRedAsrFeatureExtractor.from_kaldi_cmvn(cmvn_path)


@pytest.fixture(scope="module")
def reference(cmvn_path):
    return ASRFeatExtractor(cmvn_path)


def test_cmvn_matches_reference(feature_extractor, cmvn_path):
    ref = CMVN(cmvn_path)
    assert feature_extractor.feature_size == ref.dim == 80
    np.testing.assert_allclose(feature_extractor.cmvn_mean, ref.means, rtol=1e-12)
    np.testing.assert_allclose(feature_extractor.cmvn_istd, ref.inverse_std_variences, rtol=1e-12)


@pytest.mark.parametrize("index", range(len(UTTERANCES) + 2))
def test_single_utterance_matches_reference(feature_extractor, reference, clips, index):
    ref_feats, ref_lens, _ = reference([clips["paths"][index]])
    out = feature_extractor(clips["audio"][index], sampling_rate=16000, return_tensors="pt")
    assert out.input_features.dtype == torch.float32 and out.attention_mask.dtype == torch.int32
    assert out.input_features.shape == ref_feats.shape
    assert out.attention_mask.sum().item() == ref_lens.item()
    assert (out.input_features - ref_feats).abs().max().item() <= TOLERANCE
    assert (out.input_features - ref_feats).abs().mean().item() <= MEAN_TOLERANCE


def test_batch_of_mixed_lengths_matches_reference(feature_extractor, reference, clips):
    ref_feats, ref_lens, _ = reference(clips["paths"])
    out = feature_extractor(clips["audio"], sampling_rate=16000, return_tensors="pt")
    assert out.input_features.shape == ref_feats.shape
    assert out.attention_mask.sum(-1).tolist() == ref_lens.tolist()
    expected_mask = torch.arange(ref_feats.shape[1])[None, :] < ref_lens[:, None]
    assert torch.equal(out.attention_mask.bool(), expected_mask)
    assert (out.input_features - ref_feats).abs().max().item() <= TOLERANCE
    assert torch.all(out.input_features[~expected_mask] == 0.0)
    # Batching does not change any utterance's features.
    for i, audio in enumerate(clips["audio"]):
        single = feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features[0]
        torch.testing.assert_close(out.input_features[i, : len(single)], single, rtol=0, atol=1e-5)


def test_without_cmvn_matches_reference_fbank(clips):
    ref_feats, _, _ = ASRFeatExtractor("")(clips["paths"][:2])
    out = FireRedAsrFeatureExtractor()(clips["audio"][:2], sampling_rate=16000, return_tensors="pt")
    diff = (out.input_features - ref_feats).abs()
    assert diff.max().item() <= 1e-2 and diff.mean().item() <= 2 * MEAN_TOLERANCE  # raw log-mel: larger values


def test_input_types_agree(feature_extractor, clips):
    audio = clips["audio"][1]
    expected = feature_extractor(audio, sampling_rate=16000).input_features
    as_int16 = (audio * 32768).astype(np.int16)
    assert isinstance(expected, np.ndarray) and expected.dtype == np.float32
    for variant in [as_int16, torch.from_numpy(audio), audio.astype(np.float64), audio.tolist(), [audio]]:
        np.testing.assert_array_equal(feature_extractor(variant, sampling_rate=16000).input_features, expected)


def test_two_dimensional_input_is_a_batch(feature_extractor, clips):
    stacked = np.stack([clips["audio"][3][:16000], clips["audio"][3][-16000:]])
    out = feature_extractor(stacked, sampling_rate=16000)
    assert out.input_features.shape == (2, 98, 80)
    assert out.attention_mask.tolist() == [[1] * 98] * 2


def test_frame_count():
    fe = FireRedAsrFeatureExtractor()
    assert (fe.win_length, fe.hop_length, fe.n_fft) == (400, 160, 512)
    assert [fe._get_frame_count(n) for n in (399, 400, 559, 560, 16000)] == [0, 1, 1, 2, 98]


def test_padding_options(feature_extractor, clips):
    audio = clips["audio"][:2]
    longest = feature_extractor(audio, sampling_rate=16000)
    frames = longest.input_features.shape[1]
    padded = feature_extractor(audio, sampling_rate=16000, padding="max_length", max_length=frames + 7)
    assert padded.input_features.shape == (2, frames + 7, 80)
    np.testing.assert_array_equal(padded.input_features[:, :frames], longest.input_features)
    np.testing.assert_array_equal(padded.attention_mask[:, :frames], longest.attention_mask)
    assert not padded.attention_mask[:, frames:].any()
    multiple = feature_extractor(audio, sampling_rate=16000, pad_to_multiple_of=64)
    assert multiple.input_features.shape[1] % 64 == 0
    custom = FireRedAsrFeatureExtractor(padding_value=-1.0)(audio, sampling_rate=16000)
    assert np.all(custom.input_features[custom.attention_mask == 0] == -1.0)
    no_mask = feature_extractor(audio, sampling_rate=16000, return_attention_mask=False)
    assert set(no_mask.keys()) == {"input_features"}


def test_dither_adds_small_noise(clips):
    audio = clips["audio"][1]
    plain = FireRedAsrFeatureExtractor()(audio, sampling_rate=16000).input_features
    torch.manual_seed(0)
    dithered = FireRedAsrFeatureExtractor(dither=1.0)(audio, sampling_rate=16000).input_features
    assert not np.array_equal(plain, dithered)
    assert np.median(np.abs(plain - dithered)) < 0.05


def test_save_and_load_round_trip(feature_extractor, clips, tmp_path):
    feature_extractor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert config["cmvn_mean"] == feature_extractor.cmvn_mean and len(config["cmvn_istd"]) == 80
    assert "mel_filters" not in config and "window" not in config and "n_fft" not in config
    loaded = FireRedAsrFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == feature_extractor.to_dict()
    np.testing.assert_array_equal(
        loaded(clips["audio"], sampling_rate=16000).input_features,
        feature_extractor(clips["audio"], sampling_rate=16000).input_features,
    )


def test_missing_sampling_rate_warns(feature_extractor, clips, caplog):
    feature_extractor(clips["audio"][0], sampling_rate=16000)
    assert "sampling_rate" not in caplog.text
    feature_extractor(clips["audio"][0])
    assert "sampling_rate" in caplog.text


@pytest.mark.parametrize(
    "audio, kwargs, message",
    [
        (np.zeros(0, dtype=np.float32), {}, "empty"),
        (np.zeros(399, dtype=np.float32), {}, "shorter than one 25 ms frame"),
        ([np.zeros(800), np.zeros(100)], {}, "Audio 1 has 100 samples"),
        (np.array([0.1, np.nan] * 400), {}, "NaN or infinite"),
        (np.array([0.1, np.inf] * 400), {}, "NaN or infinite"),
        (np.zeros(16000), {"sampling_rate": 8000}, "expects audio sampled at 16000 Hz, got 8000 Hz"),
        (np.zeros((2, 2, 16000)), {}, "1-D .* or 2-D"),
        ([np.zeros((16000, 2))], {}, "must be 1-D"),
        ([], {}, "empty batch"),
        (np.full(1000, 40000, dtype=np.int32), {}, "int16"),
        # Only int16 is the original's PCM input; the scale of other integer types would be a guess.
        (np.full(1000, 100, dtype=np.int32), {}, "is int32; pass int16 PCM samples or float"),
        (np.full(1000, 128, dtype=np.uint8), {}, "is uint8; pass int16 PCM samples or float"),
        (np.zeros(1000, dtype=np.int8), {}, "is int8; pass int16 PCM samples or float"),
        (np.zeros(1000, dtype=np.int64), {}, "is int64; pass int16 PCM samples or float"),
        (np.zeros(1000, dtype=bool), {}, "unsupported dtype"),
        (np.zeros(1000), {"padding": "max_length", "max_length": 1}, "max_length"),
        (np.zeros(1000), {"padding": False}, "Unsupported padding"),
    ],
)
def test_bad_input_raises(feature_extractor, audio, kwargs, message):
    kwargs.setdefault("sampling_rate", 16000)
    with pytest.raises(ValueError, match=message):
        feature_extractor(audio, **kwargs)


def test_bad_cmvn(tmp_path):
    with pytest.raises(ValueError, match="feature_size=80"):
        FireRedAsrFeatureExtractor(cmvn_mean=[0.0] * 40, cmvn_istd=[1.0] * 40)
    with pytest.raises(ValueError, match="together"):
        FireRedAsrFeatureExtractor(cmvn_mean=[0.0] * 80)
    with pytest.raises(FileNotFoundError):
        FireRedAsrFeatureExtractor.from_kaldi_cmvn(tmp_path / "missing.ark")
    kaldiio.save_mat(str(tmp_path / "shape.ark"), np.ones((3, 81)))
    with pytest.raises(ValueError, match="shape"):
        FireRedAsrFeatureExtractor.from_kaldi_cmvn(tmp_path / "shape.ark")
    kaldiio.save_mat(str(tmp_path / "count.ark"), np.zeros((2, 81)))
    with pytest.raises(ValueError, match="count"):
        FireRedAsrFeatureExtractor.from_kaldi_cmvn(tmp_path / "count.ark")
    stats = np.ones((2, 41))
    stats[1] = 0.5  # negative variance: floored like the original
    kaldiio.save_mat(str(tmp_path / "small.ark"), stats)
    fe = FireRedAsrFeatureExtractor.from_kaldi_cmvn(tmp_path / "small.ark")
    assert fe.feature_size == 40 and fe.cmvn_istd[0] == pytest.approx(1e10)
