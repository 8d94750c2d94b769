"""What hotwords buy on the bundled demo model: recall and precision of listed phrases, B-CER / U-CER, decode time.

Workload (espeak-ng speech of the demo's own characters, fixed seeds, new random voices):
- (A) sentences with a rare three-character phrase (characters the demo knows, in an order no training sentence has)
  that the demo gets wrong without help, each decoded with a list of the true phrase plus N distractors (random
  phrases of the same characters), N in `--distractors`;
- (B) held-out corpus sentences that contain no listed phrase, decoded without and with a list of 100 phrases;
- (C) near misses: a phrase's first two characters followed by another character, decoded with the list of (A).

Reported: hotword recall on (A) (the phrase appears in the transcript), B-CER (character errors on the phrase's
characters) and U-CER (errors on the other characters, over (A) and over (B)), precision on (A)+(C) (transcripts
containing a listed phrase whose reference contains it) and (C)'s false alarms, and the median decode time of each
setting over `--repeats` runs, alternated with the no-hotword run in one process.

    python benchmarks/bench_hotwords.py                  # the full run recorded in benchmarks/RESULTS.md
    python benchmarks/bench_hotwords.py --tiny           # a quick check (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # the checkout's tools/ (the synthetic corpus; not part of the installed package)
    sys.path.insert(0, str(ROOT))

import transformers_fireredasr  # noqa: E402
from tools.synthetic_corpus import corpus_sentences, random_voice, synthesize, word_list  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="default: the bundled demo model")
    parser.add_argument("--phrases", type=int, default=60, help="candidate rare phrases to synthesize for (A)")
    parser.add_argument("--plain", type=int, default=60, help="held-out sentences for (B)")
    parser.add_argument("--distractors", type=int, nargs="+", default=[0, 10, 100, 1000])
    parser.add_argument("--score", type=float, default=2.0, help="hotword_score")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="a few utterances only (checks that it runs)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--audio", type=Path, default=None, help="read the workload's audio from this .npz (or write it)"
    )
    parser.add_argument("--prepare", action="store_true", help="only synthesize the workload into --audio")
    parser.add_argument("--long-list", type=int, default=10_000, help="also time one list of this many phrases")
    options = parser.parse_args(argv)
    if options.tiny:
        options.phrases, options.plain, options.distractors, options.repeats, options.long_list = 8, 4, [0, 10], 1, 0
    return options


def rare_phrases(characters: list[str], count: int, rng: np.random.Generator, banned: str) -> list[str]:
    """Three-character phrases of known characters that appear in no corpus sentence (nor in `banned`)."""
    phrases: list[str] = []
    while len(phrases) < count:
        phrase = "".join(rng.choice(characters, 3, replace=False))
        if phrase not in banned and phrase not in phrases:
            phrases.append(phrase)
    return phrases


def carrier(phrase: str, words: list[str], rng: np.random.Generator) -> str:
    """The phrase between two frequent words, as a name sits in a sentence."""
    return f"{rng.choice(words)}{phrase}{rng.choice(words)}"


def speak(sentences: list[str], folder: Path, rng: np.random.Generator, offset: int) -> list[np.ndarray]:
    return [
        synthesize(text, folder / f"{offset + i}.wav", random_voice(rng), seed=offset + i)
        for i, text in enumerate(sentences)
    ]


class Decoder:
    """The model and processor, decoding lists of waveforms in batches and timing each call."""

    def __init__(self, folder: str, batch: int, device: str = "cpu"):
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        import transformers_fireredasr  # noqa: F401
        from transformers_fireredasr.speed_paths import apply_speed_paths

        # The speed paths every entry point applies (the engine's), so the timings are a user's.
        self.model = apply_speed_paths(AutoModelForSpeechSeq2Seq.from_pretrained(folder).eval().to(device))
        self.processor = AutoProcessor.from_pretrained(folder)
        self.batch = batch

    @torch.no_grad()
    def __call__(self, audio: list[np.ndarray], hotwords=None, score: float = 2.0) -> tuple[list[str], float]:
        """Transcripts and seconds; `hotwords` is one list for every utterance, or one list per utterance."""
        texts, start = [], time.perf_counter()
        for first in range(0, len(audio), self.batch):
            inputs = self.processor(audio[first : first + self.batch], sampling_rate=16000, return_tensors="pt")
            inputs = inputs.to(self.model.device)
            extra = {}
            if hotwords:
                listed = hotwords[first : first + self.batch] if isinstance(hotwords[0], list) else hotwords
                extra = {"hotwords": listed, "hotword_score": score, "tokenizer": self.processor.tokenizer}
            ids = self.model.generate(**inputs, **extra)
            texts += self.processor.batch_decode(ids, skip_special_tokens=True)  # moves them to the host: synced
        return texts, time.perf_counter() - start


def split_errors(reference: str, hypothesis: str, phrase: str | None) -> tuple[int, int, int, int]:
    """(errors on the phrase's characters, its length, errors elsewhere, other reference characters), from jiwer's
    character alignment; an insertion counts where it lands (inside the phrase span or not)."""
    import jiwer

    start = reference.find(phrase) if phrase else -1
    inside = set(range(start, start + len(phrase))) if start >= 0 else set()
    biased = unbiased = 0
    for chunk in jiwer.process_characters(reference, hypothesis).alignments[0]:
        positions = range(chunk.ref_start_idx, max(chunk.ref_end_idx, chunk.ref_start_idx + 1))
        if chunk.type == "equal":
            continue
        count = max(chunk.ref_end_idx - chunk.ref_start_idx, chunk.hyp_end_idx - chunk.hyp_start_idx)
        if any(p in inside for p in positions):
            biased += count
        else:
            unbiased += count
    return biased, len(inside), unbiased, len(reference) - len(inside)


def summarize(references, hypotheses, phrases) -> dict:
    totals = np.sum([split_errors(r, h, p) for r, h, p in zip(references, hypotheses, phrases, strict=True)], axis=0)
    b_err, b_len, u_err, u_len = (int(x) for x in totals)
    return {"b_cer": b_err / b_len if b_len else None, "u_cer": u_err / u_len if u_len else None}


def load_or_speak(options, characters, words, held_out, banned, rng) -> dict:
    """The three sets' sentences and audio: synthesized (and saved to `--audio`), or read back from `--audio` (the
    GPU machine has no espeak-ng; `gpu_prepare.sh` makes the file here). Near misses exist for every candidate."""
    fields = ("candidates", "sentences", "plain_sentences", "near_sentences")
    if options.audio is not None and options.audio.is_file():
        stored = np.load(options.audio, allow_pickle=False)
        workload = {name: [str(x) for x in stored[name]] for name in fields}
        for name in ("audio", "plain_audio", "near_audio"):
            count = len(workload["sentences" if name == "audio" else name.replace("audio", "sentences")])
            workload[name] = [stored[f"{name}_{i}"].astype(np.float32) / 32768.0 for i in range(count)]
        return workload
    candidates = rare_phrases(characters, options.phrases, rng, banned)
    near = []
    for phrase in candidates:
        other = rng.choice([c for c in characters if c != phrase[2]])
        near.append(carrier(phrase[:2] + other, words, rng))
    workload = {
        "candidates": candidates,
        "sentences": [carrier(p, words, rng) for p in candidates],
        "plain_sentences": held_out[: options.plain],
        "near_sentences": near,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for offset, name in enumerate(("sentences", "plain_sentences", "near_sentences")):
            key = "audio" if name == "sentences" else name.replace("sentences", "audio")
            workload[key] = speak(workload[name], Path(tmp), rng, 10_000 * offset)
    if options.audio is not None:
        arrays = {name: np.array(workload[name]) for name in fields}
        for name in ("audio", "plain_audio", "near_audio"):
            for i, clip in enumerate(workload[name]):
                arrays[f"{name}_{i}"] = np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
        np.savez_compressed(options.audio, **arrays)
    return workload


def main(argv=None) -> int:
    options = parse_args(argv)
    rng = np.random.default_rng(options.seed)
    folder = options.model or str(transformers_fireredasr.demo_model_dir())
    decode = Decoder(folder, options.batch, options.device)
    vocabulary = decode.processor.tokenizer.get_vocab()
    characters = sorted(token for token in vocabulary if len(token) == 1 and "\u4e00" <= token <= "\u9fff")
    words = [w for w in word_list() if all(c in vocabulary for c in w) and len(w) == 2]
    train, held_out = corpus_sentences(8000, 300, seed=0)
    banned = "\n".join(train)

    workload = load_or_speak(options, characters, words, held_out, banned, rng)
    if options.prepare:
        return 0
    candidates, sentences, audio = workload["candidates"], workload["sentences"], workload["audio"]
    plain_texts, _ = decode(audio)
    wrong = [i for i, (p, t) in enumerate(zip(candidates, plain_texts, strict=True)) if p not in t]
    a_phrases = [candidates[i] for i in wrong]
    a_refs, a_audio = [sentences[i] for i in wrong], [audio[i] for i in wrong]
    b_refs, b_audio = workload["plain_sentences"], workload["plain_audio"]
    c_refs, c_audio = [workload["near_sentences"][i] for i in wrong], [workload["near_audio"][i] for i in wrong]

    pool = rare_phrases(characters, max(options.distractors) + 100 + len(a_phrases), rng, banned + "".join(a_phrases))
    distractor_pool = [p for p in pool if p not in a_phrases and all(p not in r for r in b_refs)]
    b_list = distractor_pool[:100]
    results = {
        "model": folder, "score": options.score, "A utterances": len(a_phrases), "A candidates": len(candidates),
        "B utterances": len(b_refs), "C utterances": len(c_refs), "settings": [],
    }  # fmt: skip

    def one_setting(name: str, distractors: int | None):
        """(A) and (C) with each utterance's own list (its phrase + the distractors), (B) with 100 phrases."""
        lists = None if distractors is None else [[p, *distractor_pool[:distractors]] for p in a_phrases]
        times_plain, times_biased = [], []
        for _ in range(options.repeats):  # alternated, so drifts of this shared machine hit both alike
            times_plain.append(decode(a_audio)[1] + decode(b_audio)[1])  # batched exactly as the biased runs
            (a_hyp, seconds_a) = decode(a_audio, lists, options.score)
            (b_hyp, seconds_b) = decode(b_audio, b_list if lists else None, options.score)
            times_biased.append(seconds_a + seconds_b)
        c_hyp, _ = decode(c_audio, lists, options.score)
        recall = np.mean([p in h for p, h in zip(a_phrases, a_hyp, strict=True)]) if a_phrases else None
        # A detection: a transcript with its utterance's listed phrase; correct when the reference has it too.
        detections = [p in r for p, h, r in zip(a_phrases * 2, a_hyp + c_hyp, a_refs + c_refs, strict=True) if p in h]
        precision = float(np.mean(detections)) if detections else None
        false_alarms = sum(p in h for p, h in zip(a_phrases, c_hyp, strict=True))
        a_summary = summarize(a_refs, a_hyp, a_phrases)
        b_summary = summarize(b_refs, b_hyp, [None] * len(b_refs))
        row = {
            "setting": name, "recall A": recall, "B-CER A": a_summary["b_cer"], "U-CER A": a_summary["u_cer"],
            "U-CER B": b_summary["u_cer"], "precision A+C": precision, "false alarms C": false_alarms,
            "decode s (median)": statistics.median(times_biased), "plain decode s (median)": statistics.median(times_plain),
        }  # fmt: skip
        row["slowdown"] = row["decode s (median)"] / row["plain decode s (median)"]
        results["settings"].append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)

    one_setting("no hotwords", None)
    for n in options.distractors:
        one_setting(f"phrase + {n} distractors", n)
    if options.long_list:
        results["long list"] = long_list_cost(decode, a_audio, a_phrases, characters, options, rng)
        print(json.dumps(results["long list"]), flush=True)

    print_table(results)
    if options.json:
        options.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))
    return 0


def long_list_cost(decode, a_audio, a_phrases, characters, options, rng) -> dict:
    """What one list of `--long-list` phrases (the (A) phrases and random ones) costs: building its trie, and decoding
    (A) with it, against decoding (A) without."""
    from transformers_fireredasr.hotwords import _token_trie, parse_hotwords

    extra = rare_phrases(characters, options.long_list - len(a_phrases), rng, "".join(a_phrases))
    listing = parse_hotwords(a_phrases + extra, options.score)
    start = time.perf_counter()
    _token_trie(decode.processor.tokenizer, tuple(listing))  # cached: the decode below reuses it
    build = time.perf_counter() - start
    plain = statistics.median(decode(a_audio)[1] for _ in range(options.repeats))
    biased = statistics.median(
        decode(a_audio, [h.phrase for h in listing], options.score)[1] for _ in range(options.repeats)
    )
    return {"phrases": len(listing), "trie build s": build, "decode A s": biased, "plain decode A s": plain}


def print_table(results: dict) -> None:
    columns = ["setting", "recall A", "B-CER A", "U-CER A", "U-CER B", "precision A+C", "false alarms C", "slowdown"]
    print(f"\nA: {results['A utterances']} of {results['A candidates']} rare-phrase sentences the demo gets wrong; "
          f"B: {results['B utterances']} held-out sentences; C: {results['C utterances']} near misses")  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in results["settings"]:
        cells = [row[c] if isinstance(row[c], str) else ("-" if row[c] is None else f"{row[c]:.3f}") for c in columns]
        print("| " + " | ".join(cells) + " |")
    if "long list" in results:
        cost = results["long list"]
        print(f"\none list of {cost['phrases']} phrases: trie built in {cost['trie build s']:.2f} s; (A) decoded in "
              f"{cost['decode A s']:.2f} s with it, {cost['plain decode A s']:.2f} s without")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
