#!/usr/bin/env python
"""Word-timestamp accuracy of a FireRedASR model with a CTC head, ours against FireRedASR2's rule on the same CTC
posteriors.

Workload: recordings with known word boundaries (`tools.synthetic_corpus.speak_word_by_word`, the corpus' word-by-word
style, whose training split has other sentences). Each word of a held-out sentence (the synthetic corpus' words
and characters) is spoken alone by espeak-ng (`cmn-latn-pinyin`, a random voice per recording), its onset and end
measured by energy (first / last 10 ms frame above 5 % of the clip's peak RMS), and the clips are joined by pauses
drawn from 0-1.5 s (a quarter of them 0: words run into each other), with 0-1 s of silence before and after and,
for half the recordings, light noise throughout. Each recording is decoded once (`generate` with the model's
decoding settings, `output_ctc_log_probs=True`); the 1-best tokens are force-aligned on the CTC log-probs; word
times come from our rule (`alignment.TimingRule` with the model's `ctc_onset_offset_s` / `ctc_end_padding_s`,
or those fitted by `--calibrate` on a separate set of recordings) and from the upstream rule
(`alignment.upstream_times`).

Reported, over the words whose characters the transcript got right (matched with difflib): mean and median absolute
onset and end error, the share within 50 and 100 ms, pause recall (pauses of 300 ms or more that show as a gap
between the two words' times), the transcript check (asking for timestamps through the pipeline must not change
the text) and the cost of the timestamp pass (CTC head + alignment + timing) against the decode.

    python benchmarks/bench_timestamps.py --recordings 60 --calibrate 40
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # this checkout's package, benchmarks and tests, whichever copy is installed
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks.bench_speed import source_revision  # noqa: E402
from tools.synthetic_corpus import corpus_sentences, speak_word_by_word  # noqa: E402
from transformers_fireredasr.alignment import (  # noqa: E402
    FRAME_SECONDS,
    TimingRule,
    align_or_spread,
    upstream_times,
)

RATE = 16000
PAUSE_FOR_RECALL = 0.3


def make_recording(sentence: str, seed: int) -> dict:
    """One recording: its words spoken one by one and joined by known pauses; boundaries in seconds."""
    audio, _, bounds = speak_word_by_word(sentence, seed)
    return {"text": sentence, "audio": audio, "words": bounds}


def decode(model, processor, audio: np.ndarray) -> dict:
    """Decode time, tokens and CTC log-probs of one recording, and the timestamp pass's time."""
    inputs = processor([audio], sampling_rate=RATE, return_tensors="pt")
    with torch.inference_mode():
        started = time.perf_counter()
        out = model.generate(**inputs, return_dict_in_generate=True)
        decode_s = time.perf_counter() - started
        started = time.perf_counter()
        encoder = model.get_encoder()(inputs["input_features"], attention_mask=inputs["attention_mask"])
        encoder_s = time.perf_counter() - started
        started = time.perf_counter()
        log_probs = model.ctc_log_probs(encoder[0])[0]
        special = set(processor.tokenizer.all_special_ids)
        ids = [t for t in out.sequences[0, 1:].tolist() if t not in special]
        spans, aligned = align_or_spread(log_probs, ids, model.config.blank_token_id)
        align_s = time.perf_counter() - started
    text = processor.tokenizer.decode(out.sequences[0], skip_special_tokens=True)
    chars = processor.tokenizer.convert_ids_to_tokens(ids)
    return {"text": text, "chars": chars, "spans": spans, "aligned": aligned, "frames": log_probs.shape[0],
            "decode_s": decode_s, "encoder_s": encoder_s, "align_s": align_s}  # fmt: skip


def word_pairs(recording: dict, result: dict, times: list[tuple[float, float]]) -> list[tuple[tuple, tuple]]:
    """(reference (start, end), predicted (start, end)) for each reference word whose characters all matched."""
    reference_chars, owner = [], []
    for index, (word, _, _) in enumerate(recording["words"]):
        reference_chars += list(word)
        owner += [index] * len(word)
    matcher = difflib.SequenceMatcher(a=reference_chars, b=result["chars"], autojunk=False)
    predicted_of = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            predicted_of[block.a + k] = block.b + k
    pairs = []
    position = 0
    for index, (word, start, end) in enumerate(recording["words"]):
        chars = range(position, position + len(word))
        position += len(word)
        if all(c in predicted_of for c in chars) and all(owner[c] == index for c in chars):
            first, last = predicted_of[chars[0]], predicted_of[chars[-1]]
            pairs.append(((start, end), (times[first][0], times[last][1]), index))
    return pairs


def score(recordings: list[dict], results: list[dict], rule_times) -> dict:
    """Onset/end errors, shares within 50/100 ms and pause recall of one timing rule."""
    onset, end, pauses, shown = [], [], 0, 0
    for recording, result in zip(recordings, results, strict=True):
        times = rule_times(result)
        pairs = word_pairs(recording, result, times)
        for ref, pred, _ in pairs:
            onset.append(abs(pred[0] - ref[0]))
            end.append(abs(pred[1] - ref[1]))
        by_index = {index: pred for _, pred, index in pairs}
        words = recording["words"]
        for i in range(len(words) - 1):
            if words[i + 1][1] - words[i][2] >= PAUSE_FOR_RECALL and i in by_index and i + 1 in by_index:
                pauses += 1
                shown += by_index[i + 1][0] - by_index[i][1] > 0
    if not onset:
        return {"words": 0, "pauses_300ms": pauses, "pause_recall": None}
    onset_ms, end_ms = np.array(onset) * 1000, np.array(end) * 1000
    return {
        "words": len(onset),
        "onset_mean_ms": round(float(onset_ms.mean()), 1),
        "onset_median_ms": round(float(np.median(onset_ms)), 1),
        "onset_within_50ms": round(float((onset_ms <= 50).mean()), 3),
        "onset_within_100ms": round(float((onset_ms <= 100).mean()), 3),
        "end_mean_ms": round(float(end_ms.mean()), 1),
        "end_median_ms": round(float(np.median(end_ms)), 1),
        "end_within_50ms": round(float((end_ms <= 50).mean()), 3),
        "end_within_100ms": round(float((end_ms <= 100).mean()), 3),
        "pauses_300ms": pauses,
        "pause_recall": round(shown / pauses, 3) if pauses else None,
    }


def calibrate(recordings: list[dict], results: list[dict]) -> TimingRule:
    """The onset offset and end padding that make the median onset / end error zero on these recordings."""
    starts, ends = [], []
    for recording, result in zip(recordings, results, strict=True):
        frames = [(a * FRAME_SECONDS, b * FRAME_SECONDS) for a, b in result["spans"]]
        for ref, pred, _ in word_pairs(recording, result, frames):
            starts.append(ref[0] - pred[0])
            ends.append(ref[1] - pred[1])
    if not starts:
        raise ValueError("no calibration word was transcribed correctly: nothing to calibrate on")
    return TimingRule(round(statistics.median(starts), 3), round(statistics.median(ends), 3))


def build(count: int, seed: int, sentences: list[str] | None = None) -> list[dict]:
    """`count` recordings of distinct sentences (default: the demo corpus' held-out sentences)."""
    sentences = sentences or corpus_sentences(8000, 300, seed=0)[1]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(sentences), size=min(count, len(sentences)), replace=False)
    return [make_recording(sentences[i], seed * 100_000 + int(i)) for i in chosen]


def check_pipeline(model_dir: str, recordings: list[dict]) -> tuple[int, int]:
    """How many recordings the pipeline transcribes identically with and without `return_timestamps="word"`."""
    from transformers import pipeline

    asr = pipeline("automatic-speech-recognition", model=model_dir)
    same = 0
    for recording in recordings:
        plain = asr(recording["audio"])["text"]
        timed = asr(recording["audio"], return_timestamps="word")
        same += plain == timed["text"]
    return same, len(recordings)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the bundled demo)")
    parser.add_argument("--recordings", type=int, default=60, help="test recordings (held-out sentences)")
    parser.add_argument("--calibrate", type=int, default=0, metavar="N", help="fit the timing on N other recordings")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--texts", default=None, help="comma-separated Hanzi sentences instead of the held-out ones")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    import transformers_fireredasr  # noqa: F401 - registers the classes
    from transformers_fireredasr import FireRedAedForConditionalGeneration, FireRedAsrProcessor, demo_model_dir

    model_dir = options.model or str(demo_model_dir())
    from transformers_fireredasr.speed_paths import apply_speed_paths

    model = apply_speed_paths(FireRedAedForConditionalGeneration.from_pretrained(model_dir).eval())
    processor = FireRedAsrProcessor.from_pretrained(model_dir)
    if model.ctc_head is None:
        print(f"error: {model_dir} has no CTC head; word timestamps need one", file=sys.stderr)
        return 2
    config_rule = TimingRule(model.config.ctc_onset_offset_s, model.config.ctc_end_padding_s)
    texts = options.texts.split(",") if options.texts else None
    test = build(options.recordings, options.seed, texts)
    calibration = build(options.calibrate, options.seed + 1000, texts) if options.calibrate else []
    test_results = [decode(model, processor, r["audio"]) for r in test]
    calibration_results = [decode(model, processor, r["audio"]) for r in calibration]
    rules = {"ours (config)": config_rule}
    if calibration:
        rules["ours (calibrated)"] = calibrate(calibration, calibration_results)

    def ours(rule):
        return lambda result: rule.times(result["spans"], result["frames"] * FRAME_SECONDS + 0.025)

    scores = {name: score(test, test_results, ours(rule)) for name, rule in rules.items()}
    scores["upstream rule"] = score(test, test_results, lambda r: upstream_times(r["spans"], r["frames"]))
    same, total = check_pipeline(model_dir, test[: min(10, len(test))])
    decode_s = sum(r["decode_s"] for r in test_results)
    align_s = sum(r["align_s"] for r in test_results)
    cer = __import__("transformers_fireredasr.training", fromlist=["x"]).character_error_rate(
        [r["text"] for r in test_results], [r["text"] for r in test]
    )
    report = {
        "model": model_dir,
        "source": source_revision(),
        "recordings": len(test),
        "calibration_recordings": len(calibration),
        "cer": round(cer, 4),
        "aligned": sum(r["aligned"] for r in test_results),
        "timing": {
            name: {"onset_offset_s": r.onset_offset_s, "end_padding_s": r.end_padding_s} for name, r in rules.items()
        },  # fmt: skip
        "scores": scores,
        "transcripts_unchanged": f"{same}/{total}",
        "decode_s": round(decode_s, 3),
        "timestamp_pass_s": round(align_s, 3),
        "timestamp_pass_share": round(align_s / decode_s, 4),
        "torch_threads": torch.get_num_threads(),
    }
    columns = ["rule", "words", "onset mean / median ms", "onset <=50 / <=100 ms", "end mean / median ms",
               "end <=50 / <=100 ms", "pause recall (>=300 ms)"]  # fmt: skip
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for name, s in scores.items():
        if not s["words"]:
            print(f"| {name} | 0 | - | - | - | - | - |")
            continue
        recall = "n/a" if s["pause_recall"] is None else f"{s['pause_recall']:.1%} of {s['pauses_300ms']}"
        print(f"| {name} | {s['words']} | {s['onset_mean_ms']} / {s['onset_median_ms']} | "
              f"{s['onset_within_50ms']:.1%} / {s['onset_within_100ms']:.1%} | {s['end_mean_ms']} / {s['end_median_ms']} | "
              f"{s['end_within_50ms']:.1%} / {s['end_within_100ms']:.1%} | {recall} |")  # fmt: skip
    summary = {k: v for k, v in report.items() if k != "scores"}
    print(json.dumps(summary, ensure_ascii=False))
    if options.json:
        Path(options.json).write_text(json.dumps(report, ensure_ascii=False, indent=1))
    return 0 if same == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
