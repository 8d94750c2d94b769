"""Segmentation's side effects on the process: finding speech with silero-vad leaves torch's thread count alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transformers_fireredasr.segmentation import vad_available

SEGMENT_THEN_COUNT_THREADS = """
import numpy as np, torch
torch.set_num_threads(2)
from transformers_fireredasr.segmentation import vad_segments
vad_segments(np.random.default_rng(0).normal(0.0, 0.1, 16000).astype(np.float32))
print(torch.get_num_threads())
"""


@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_vad_keeps_the_thread_count():
    """Importing silero-vad sets torch to one thread for the whole process (its model module calls
    `torch.set_num_threads(1)`); the model would then decode long audio, archive runs and the server's batches on one
    core. A fresh process, as the first VAD call happens in one."""
    result = subprocess.run([sys.executable, "-c", SEGMENT_THEN_COUNT_THREADS], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2"]


@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_vad_shows_no_torchscript_deprecation():
    """silero-vad ships TorchScript, which torch deprecates (a FutureWarning from torch 2.14, which the suite turns
    into an error and users would see on every command): loading it is silenced for exactly those notices."""
    command = [
        sys.executable,
        "-W",
        "error::FutureWarning",
        "-W",
        "error::DeprecationWarning",
        "-c",
        SEGMENT_THEN_COUNT_THREADS,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2"]
