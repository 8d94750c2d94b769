"""FireRedVAD's speed against silero-vad's on the same recording, side by side in one process.

The recording is `--minutes` of the repository's held-out clips (examples/audio) in a row, separated by pauses of
faint noise (0.3 to 2 s, seeded), at 16 kHz. Each segmenter gets the whole recording as float audio and returns its
speech segments:

- FireRedVAD: `FireRedVadDetector.detect` (fbank, CMVN, the DFSMN in pieces of five minutes, upstream's
  post-processing), with a converted or original folder (`--vad-model`) or, without one, random weights at the
  published sizes (the speed does not depend on the weights), on `--device`;
- silero-vad: `segmentation.vad_segments`, the project's default segmenter (silero's `get_speech_timestamps`, on the
  CPU, as the engine runs it).

Each is timed `--repeats` times after one warm-up, alternately, and the median is reported with the real-time
factor (seconds per second of audio), the speed against real time, the speed-up of FireRedVAD over silero, and the
segments found. One markdown row per segmenter.

    python benchmarks/bench_vad.py --minutes 60 --repeats 3 --threads 2
    python benchmarks/bench_vad.py --minutes 60 --repeats 3 --device cuda --vad-model FireRedTeam/FireRedVAD
    python benchmarks/bench_vad.py --minutes 0.2 --repeats 1                   # the tests' smoke size
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package and benchmarks, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import source_revision, synchronize  # noqa: E402

SAMPLING_RATE = 16000
CLIPS = sorted((ROOT / "examples" / "audio").glob("held_out_*.wav"))
COLUMNS = ["segmenter", "device", "audio s", "median s", "RTF", "x real time", "speed-up", "segments"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the recording")
    parser.add_argument("--vad-model", default=None, help="a FireRedVAD folder or Hub id (default: random weights)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="FireRedVAD's device (silero runs on the CPU)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return parser.parse_args(argv)


def make_recording(minutes: float, seed: int) -> np.ndarray:
    """The held-out clips over and over, with pauses of faint noise, cut to `minutes`."""
    from transformers_fireredasr.audio_io import load_waveform

    clips = [load_waveform(str(path)) for path in CLIPS]
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * SAMPLING_RATE)
    pieces, length = [], 0
    while length < total:
        clip = clips[len(pieces) % (2 * len(clips)) // 2]
        pause = rng.normal(0.0, 0.001, int(rng.uniform(0.3, 2.0) * SAMPLING_RATE)).astype(np.float32)
        pieces += [clip, pause]
        length += len(clip) + len(pause)
    return np.concatenate(pieces)[:total]


def random_detector():
    """FireRedVAD at the published sizes (offline variant) with random weights and a unit CMVN."""
    from transformers_fireredasr.configuration_fireredvad import FireRedVadConfig
    from transformers_fireredasr.feature_extraction_fireredasr import FireRedAsrFeatureExtractor
    from transformers_fireredasr.modeling_fireredvad import FireRedVadForAudioFrameClassification
    from transformers_fireredasr.vad import FireRedVadDetector

    model = FireRedVadForAudioFrameClassification(FireRedVadConfig())
    features = FireRedAsrFeatureExtractor(cmvn_mean=[10.0] * 80, cmvn_istd=[0.3] * 80)
    return FireRedVadDetector(model, features)


def timed(call, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    import transformers

    from transformers_fireredasr.segmentation import vad_segments
    from transformers_fireredasr.vad import FireRedVadDetector

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    detector = (
        random_detector() if options.vad_model is None else FireRedVadDetector.from_pretrained(options.vad_model)
    )
    detector.model.to(device)
    audio = make_recording(options.minutes, options.seed)
    seconds = len(audio) / SAMPLING_RATE
    cpu = torch.device("cpu")
    segmenters = {
        "FireRedVAD": (lambda: detector.detect(audio).segments, device),
        "silero-vad": (lambda: vad_segments(audio, SAMPLING_RATE), cpu),
    }
    found = {name: len(call()) for name, (call, _) in segmenters.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in segmenters}
    for _ in range(options.repeats):
        for name, (call, where) in segmenters.items():
            times[name].append(timed(call, where))
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, threads {torch.get_num_threads()}; "
        f"transformers_fireredasr {source_revision()}; FireRedVAD weights: {options.vad_model or 'random'}"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    rows = []
    for name, (_, where) in segmenters.items():
        row = {
            "segmenter": name,
            "device": where.type,
            "audio s": round(seconds, 1),
            "median s": round(medians[name], 3),
            "RTF": round(medians[name] / seconds, 5),
            "x real time": round(seconds / medians[name], 1),
            "speed-up": round(medians["silero-vad"] / medians[name], 2),
            "segments": found[name],
        }
        rows.append(row)
        print("| " + " | ".join(str(row[column]) for column in COLUMNS) + " |", flush=True)
    if options.json:
        Path(options.json).write_text(json.dumps({"rows": rows, "times": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
