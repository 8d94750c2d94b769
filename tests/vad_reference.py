"""FireRedVAD's oracle (`fireredvad==0.0.2`) and upstream-format folders of its three variants with random weights.

The package imports `soundfile` at module level only to read wav paths; the tests hand it arrays, so a stand-in module
is enough while it is imported. The folders are upstream's `DetectModel` with random weights whose output layer is fitted (least squares on
the DFSMN's last hidden layer) to a frame-energy target, so that speech and pauses get different probabilities and the
post-processing has segments to find; the audio-event variant's singing and music outputs follow other bands.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

VARIANT_ARGS = {  # upstream's published sizes
    "VAD": {"N2": 20, "odim": 1},
    "Stream-VAD": {"N2": 0, "odim": 1},
    "AED": {"N2": 20, "odim": 3},
}


def oracle():
    """The `fireredvad` package. Without soundfile installed, a stand-in module satisfies its import and is taken
    out of `sys.modules` again at once, so that nothing else (transformers checks for soundfile) ever sees it."""
    stand_in = "soundfile" not in sys.modules and importlib.util.find_spec("soundfile") is None
    if stand_in:
        sys.modules["soundfile"] = types.ModuleType("soundfile")
    try:
        import fireredvad
        import fireredvad.core.audio_feat
        import fireredvad.core.detect_model
    finally:
        if stand_in:
            del sys.modules["soundfile"]
    return fireredvad


def _args(variant: str) -> argparse.Namespace:
    sizes = dict(idim=80, R=8, M=1, H=256, P=128, N1=20, S1=1, S2=1, dropout=0.1)
    return argparse.Namespace(**sizes, **VARIANT_ARGS[variant])


def _fbank(audio_int16: np.ndarray) -> np.ndarray:
    return oracle().core.audio_feat.KaldifeatFbank()((16000, audio_int16))


def _write_cmvn(path: Path, frames: np.ndarray, seed: int) -> None:
    import kaldiio

    rng = np.random.default_rng(seed)
    frames = frames + rng.normal(0, 0.5, frames.shape[1])  # each variant its own statistics
    stats = np.zeros((2, frames.shape[1] + 1))
    stats[0, :-1], stats[0, -1], stats[1, :-1] = frames.sum(0), len(frames), (frames**2).sum(0)
    kaldiio.save_mat(str(path), stats)


def make_upstream_vad_folder(folder: Path, variant: str, calibration: list[np.ndarray], seed: int = 0) -> Path:
    """An original `variant` folder (`model.pth.tar`, `cmvn.ark`) made with the oracle's own model class; `calibration`
    is float audio the output layer is fitted on."""
    fireredvad = oracle()
    folder.mkdir(parents=True, exist_ok=True)
    pcm = [to_pcm(audio) for audio in calibration]
    frames = [_fbank(audio) for audio in pcm]
    _write_cmvn(folder / "cmvn.ark", np.concatenate(frames), seed)
    torch.manual_seed(seed)
    args = _args(variant)
    model = fireredvad.core.detect_model.DetectModel(args).eval()
    cmvn = fireredvad.core.audio_feat.CMVN(str(folder / "cmvn.ark"))
    hidden, targets = [], []
    with torch.no_grad():
        for raw in frames:
            features = torch.from_numpy(cmvn(raw)).float()[None]
            hidden.append(model.dfsmn(features)[0][0])
            energy = raw.mean(1)
            bands = [energy, raw[:, 40:].mean(1), raw[:, :20].mean(1)][: args.odim]
            targets.append(torch.tensor(np.stack([4.0 * np.sign(b - np.median(b) - 0.5) for b in bands], 1)))
        hidden, targets = torch.cat(hidden), torch.cat(targets).float()
        design = torch.cat([hidden, torch.ones(len(hidden), 1)], 1)
        solution = torch.linalg.lstsq(design, targets, driver="gelsd").solution
        model.out.weight.copy_(solution[:-1].T)
        model.out.bias.copy_(solution[-1])
    torch.save({"args": args, "model_state_dict": model.state_dict()}, folder / "model.pth.tar")
    return folder


def make_upstream_release(folder: Path, calibration: list[np.ndarray]) -> Path:
    """The FireRedVAD release folder: `VAD/`, `Stream-VAD/` and `AED/` side by side."""
    for seed, variant in enumerate(VARIANT_ARGS):
        make_upstream_vad_folder(folder / variant, variant, calibration, seed=seed)
    return folder


def to_pcm(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as int16 PCM (what upstream reads from a wav)."""
    return np.round(np.asarray(audio) * 32768).clip(-32768, 32767).astype(np.int16)
