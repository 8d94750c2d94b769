"""A reproducible synthetic Mandarin speech corpus: espeak-ng speaks generated Hanzi sentences in varied voices.

The text comes from the files in `tools/corpus_data/`: 400 frequent Hanzi that each have one reading and that
espeak-ng (`cmn-latn-pinyin`) pronounces differently from one another, so homophones cannot cap accuracy, and 3000
frequent words written only with them. Sentences are random runs of those words and characters; held-out (test)
sentences never appear in training. Each utterance gets its own speed, pitch, voice variant and light noise, and
(unless `plain`) 0-1 s of silence before and after, up to three pauses of 0.1-1.5 s between characters (each part
spoken separately), with the noise running through the silences: real recordings start and end with silence and
pause, and a model that never heard that returns nothing for a leading pause or stops at the first gap.
`word_by_word` speaks every word alone and joins the words by known pauses (dictation, slow speech), with each
word's bounds measured by energy: the speech of the word-timestamp benchmark, in training as well.

The output is a Hugging Face `audiofolder`: `train/` and `test/` folders of 16 kHz mono wavs, each with a
`metadata.csv` (`file_name,transcription,...`), so `datasets.load_dataset("audiofolder", data_dir=...)` loads it.
The same seed gives the same corpus, byte for byte (espeak-ng and `sox -D` are deterministic).

Command line, from a checkout (development tooling, not part of the installed package; it replaces the former
`fireredasr-make-corpus` command): `python -m tools.synthetic_corpus OUT_DIR --num-train 8000 --num-test 300`.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from transformers_fireredasr.audio_io import SAMPLING_RATE

CORPUS_DATA = Path(__file__).resolve().parent / "corpus_data"

VOICE_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
METADATA_FIELDS = ("file_name", "transcription", "speed", "pitch", "variant", "noise_std")
SILENCE_FIELDS = ("lead_s", "trail_s", "pauses")


def _data_lines(name: str) -> list[str]:
    text = (CORPUS_DATA / name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def hanzi_inventory() -> dict[str, str]:
    """The corpus characters, each with its pinyin (tone number last), in frequency order."""
    return dict(line.split("\t") for line in _data_lines("hanzi.tsv"))


def word_list() -> list[str]:
    """Frequent words written only with `hanzi_inventory()` characters."""
    return _data_lines("words.txt")


def make_sentences(
    count: int, seed: int, min_chars: int = 4, max_chars: int = 12, exclude: set[str] | frozenset = frozenset()
) -> list[str]:
    """`count` distinct sentences of `min_chars`..`max_chars` Hanzi: mostly words, with single characters mixed in
    so that every character of the inventory appears. Sentences in `exclude` (e.g. the training set) are skipped."""
    if not 1 <= min_chars <= max_chars:
        raise ValueError(f"need 1 <= min_chars <= max_chars, got {min_chars} and {max_chars}")
    rng = np.random.default_rng(seed)
    chars, words = list(hanzi_inventory()), word_list()
    sentences: list[str] = []
    seen = set(exclude)
    attempts = 0
    while len(sentences) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise RuntimeError(f"could not draw {count} new distinct sentences (got {len(sentences)})")
        target = int(rng.integers(min_chars, max_chars + 1))
        sentence = ""
        while len(sentence) < target:
            sentence += words[rng.integers(len(words))] if rng.random() < 0.7 else chars[rng.integers(len(chars))]
        sentence = sentence[:max_chars]
        if sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences


@dataclass(frozen=True)
class Voice:
    """How espeak-ng speaks one utterance."""

    speed: int  # words per minute
    pitch: int  # 0..99
    variant: str  # an espeak-ng voice variant, "" for the default
    noise_std: float  # standard deviation of the white noise added to the [-1, 1] waveform


def random_voice(rng: np.random.Generator) -> Voice:
    """A voice with speed 130-210 wpm, pitch 25-75, any variant, and no noise half the time."""
    return Voice(
        speed=int(rng.integers(130, 211)),
        pitch=int(rng.integers(25, 76)),
        variant=VOICE_VARIANTS[rng.integers(len(VOICE_VARIANTS))],
        noise_std=round(float(rng.uniform(0.0, 0.01)), 4) if rng.random() < 0.5 else 0.0,
    )


@dataclass(frozen=True)
class Silences:
    """Where an utterance is silent: before and after the speech, and pauses `(after character i, seconds)`."""

    lead_s: float = 0.0
    trail_s: float = 0.0
    pauses: tuple[tuple[int, float], ...] = ()

    def describe(self) -> str:
        """The pauses as `i:seconds;...` (metadata column)."""
        return ";".join(f"{index}:{seconds}" for index, seconds in self.pauses)


def random_silences(rng: np.random.Generator, text: str) -> Silences:
    """0-1 s of silence at each end and 0-3 pauses of 0.1-1.5 s at distinct character boundaries of `text`."""
    lead, trail = (round(float(rng.uniform(0.0, 1.0)), 3) for _ in range(2))
    boundaries = np.arange(1, len(text))
    count = min(int(rng.integers(0, 4)), len(boundaries))
    places = sorted(int(i) for i in rng.choice(boundaries, size=count, replace=False)) if count else []
    return Silences(lead, trail, tuple((i, round(float(rng.uniform(0.1, 1.5)), 3)) for i in places))


def _check_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{' and '.join(missing)} not found: install them (apt-get install espeak-ng sox)")


def _speak(text: str, voice: Voice, folder: Path) -> np.ndarray:
    """espeak-ng's float32 16 kHz rendering of `text` (no noise)."""
    name = "cmn-latn-pinyin" + (f"+{voice.variant}" if voice.variant else "")
    raw, resampled = folder / "espeak.wav", folder / "16k.wav"
    command = ["espeak-ng", "-v", name, "-s", str(voice.speed), "-p", str(voice.pitch), "-w", str(raw), text]
    subprocess.run(command, check=True, capture_output=True)
    subprocess.run(
        ["sox", "-D", "-G", str(raw), "-r", str(SAMPLING_RATE), "-c", "1", "-b", "16", str(resampled)],
        check=True,
        capture_output=True,
    )
    with wave.open(str(resampled), "rb") as f:
        samples = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return samples.astype(np.float32) / 32768.0


def synthesize(
    text: str, path: str | Path, voice: Voice, seed: int = 0, silences: Silences | None = None
) -> np.ndarray:
    """Speaks Hanzi `text` with espeak-ng, writes a 16 kHz mono 16-bit wav to `path`, returns float32 audio.

    With `silences`, the parts between pauses are spoken separately and joined by digital silence of the given
    lengths, with silence before and after; the voice's noise then runs through the whole clip, silences included.
    """
    _check_tools()
    with tempfile.TemporaryDirectory() as tmp:
        if silences is None:
            audio = _speak(text, voice, Path(tmp))
        else:
            cuts = [0, *(index for index, _ in silences.pauses), len(text)]
            gaps = [silences.lead_s, *(seconds for _, seconds in silences.pauses), silences.trail_s]
            pieces = [np.zeros(round(gaps[0] * SAMPLING_RATE), np.float32)]
            for start, end, gap in zip(cuts[:-1], cuts[1:], gaps[1:], strict=True):
                pieces += [_speak(text[start:end], voice, Path(tmp)), np.zeros(round(gap * SAMPLING_RATE), np.float32)]
            audio = np.concatenate(pieces)
    if voice.noise_std > 0:
        audio = audio + np.random.default_rng(seed).normal(0.0, voice.noise_std, audio.shape).astype(np.float32)
    write_wav(path, audio)
    return audio


def energy_bounds(audio: np.ndarray, threshold: float = 0.05) -> tuple[float, float]:
    """First and last 10 ms frame whose RMS is above `threshold` x the clip's peak frame RMS, in seconds."""
    hop = SAMPLING_RATE // 100
    frames = len(audio) // hop
    rms = np.sqrt((audio[: frames * hop].reshape(frames, hop).astype(np.float64) ** 2).mean(1))
    loud = np.nonzero(rms > threshold * rms.max())[0]
    return loud[0] / 100, (loud[-1] + 1) / 100


def split_words(sentence: str, words: set[str] | frozenset[str]) -> list[str]:
    """The sentence cut into corpus words (longest match first) and single characters."""
    out, index = [], 0
    while index < len(sentence):
        for size in (4, 3, 2, 1):
            piece = sentence[index : index + size]
            if size == 1 or piece in words:
                out.append(piece)
                index += size
                break
    return out


def speak_word_by_word(sentence: str, seed: int) -> tuple[np.ndarray, Voice, list[tuple[str, float, float]]]:
    """`sentence` with each word spoken alone and the words joined by known pauses: audio, voice, word bounds.

    Each word (`split_words`) is cut to its energy bounds, so its span in the recording is where its sound is;
    pauses are 0.1-1.5 s (a quarter of them 0: the words run into each other), with 0-1 s of silence before and
    after and, half the time, light noise throughout. Returns the float32 audio, the voice (its `noise_std` the
    noise added) and `(word, start_s, end_s)` per word. The same `seed` gives the same recording.
    This is how dictation and slow speech sound, and the word-timestamp benchmark's recordings.
    """
    _check_tools()
    rng = np.random.default_rng(seed)
    voice = random_voice(rng)
    voice = Voice(voice.speed, voice.pitch, voice.variant, 0.0)
    pieces, bounds = [np.zeros(round(rng.uniform(0.0, 1.0) * SAMPLING_RATE), np.float32)], []
    offset = len(pieces[0]) / SAMPLING_RATE
    words = split_words(sentence, frozenset(word_list()))
    with tempfile.TemporaryDirectory() as tmp:
        for index, word in enumerate(words):
            clip = _speak(word, voice, Path(tmp))
            onset, end = energy_bounds(clip)
            clip = clip[int(onset * SAMPLING_RATE) : int(end * SAMPLING_RATE)]  # the word alone
            bounds.append((word, offset, offset + len(clip) / SAMPLING_RATE))
            pause = 0.0 if rng.random() < 0.25 else rng.uniform(0.1, 1.5)
            if index == len(words) - 1:
                pause = rng.uniform(0.0, 1.0)
            pieces += [clip, np.zeros(round(pause * SAMPLING_RATE), np.float32)]
            offset += len(clip) / SAMPLING_RATE + round(pause * SAMPLING_RATE) / SAMPLING_RATE
    audio = np.concatenate(pieces)
    if rng.random() < 0.5:
        noise_std = rng.uniform(0.001, 0.005)
        audio = audio + rng.normal(0.0, noise_std, audio.shape).astype(np.float32)
        voice = Voice(voice.speed, voice.pitch, voice.variant, round(float(noise_std), 4))
    return audio, voice, bounds


def describe_word_times(bounds: Sequence[tuple[str, float, float]]) -> str:
    """Word bounds as `word:start-end;...` in seconds (metadata column)."""
    return ";".join(f"{word}:{start:.3f}-{end:.3f}" for word, start, end in bounds)


def write_wav(path: str | Path, audio: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> None:
    """Writes float audio in [-1, 1] as 16-bit mono PCM (clipped, rounded)."""
    samples = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sampling_rate)
        f.writeframes(samples.tobytes())


WORD_TIME_FIELDS = ("word_times",)


def _write_split(folder: Path, sentences: Sequence[str], seed: int, workers: int, plain: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    voices = [random_voice(rng) for _ in sentences]
    # Silences come from their own stream, so the voices (and a plain corpus) are those of earlier releases.
    silence_rng = np.random.default_rng(seed + 7919)
    silences = [None if plain else random_silences(silence_rng, sentence) for sentence in sentences]
    names = [f"{index:06d}.wav" for index in range(len(sentences))]

    def one(index: int) -> None:
        synthesize(
            sentences[index],
            folder / names[index],
            voices[index],
            seed=seed * 1_000_003 + index,
            silences=silences[index],
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, range(len(sentences))))
    fields = METADATA_FIELDS if plain else METADATA_FIELDS + SILENCE_FIELDS
    with open(folder / "metadata.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for name, sentence, voice, silence in zip(names, sentences, voices, silences, strict=True):
            row = {"file_name": name, "transcription": sentence, **asdict(voice)}
            if silence is not None:
                row.update(lead_s=silence.lead_s, trail_s=silence.trail_s, pauses=silence.describe())
            writer.writerow(row)


def _write_word_by_word_split(folder: Path, sentences: Sequence[str], seed: int, workers: int) -> None:
    """A split of `speak_word_by_word` recordings, with each word's bounds in the `word_times` column."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{index:06d}.wav" for index in range(len(sentences))]

    def one(index: int) -> tuple[Voice, str]:
        audio, voice, bounds = speak_word_by_word(sentences[index], seed * 1_000_003 + index)
        write_wav(folder / names[index], audio)
        return voice, describe_word_times(bounds)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(one, range(len(sentences))))
    with open(folder / "metadata.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_FIELDS + WORD_TIME_FIELDS)
        writer.writeheader()
        for name, sentence, (voice, times) in zip(names, sentences, rows, strict=True):
            writer.writerow({"file_name": name, "transcription": sentence, **asdict(voice), "word_times": times})


def corpus_sentences(
    num_train: int, num_test: int, seed: int = 0, min_chars: int = 4, max_chars: int = 12
) -> tuple[list[str], list[str]]:
    """The training and test sentences of `build_corpus` with these settings: test sentences are drawn after, and
    never equal to, the training sentences."""
    train = make_sentences(num_train, seed, min_chars, max_chars)
    return train, make_sentences(num_test, seed + 1, min_chars, max_chars, exclude=set(train))


def build_corpus(
    output_dir: str | Path,
    num_train: int = 8000,
    num_test: int = 300,
    seed: int = 0,
    min_chars: int = 4,
    max_chars: int = 12,
    workers: int = 2,
    plain: bool = False,
    splits: Sequence[str] = ("train", "test"),
    word_by_word: bool = False,
) -> Path:
    """Writes the `train/` and `test/` audiofolder splits under `output_dir` and returns it.

    Test sentences are drawn after, and never equal to, the training sentences; voices differ per utterance.
    `plain=True` leaves out the silences and pauses (the corpus the first demo model was trained on, byte for byte);
    `word_by_word=True` speaks each word alone instead (`speak_word_by_word`: dictation-like speech with a pause or
    none between every two words) and records the word bounds; `splits` picks which of the two folders to write
    (the sentences are the same whatever the style).
    """
    _check_tools()
    unknown = set(splits) - {"train", "test"}
    if unknown or not splits:
        raise ValueError(f"splits must be a non-empty subset of ('train', 'test'), got {tuple(splits)}")
    if plain and word_by_word:
        raise ValueError("plain and word_by_word are two different styles: choose one")
    output_dir = Path(output_dir)
    train, test = corpus_sentences(num_train, num_test, seed, min_chars, max_chars)
    for split, sentences, split_seed in (("train", train, 2 * seed + 10), ("test", test, 2 * seed + 11)):
        if split not in splits:
            continue
        if word_by_word:
            _write_word_by_word_split(output_dir / split, sentences, seed=split_seed, workers=workers)
        else:
            _write_split(output_dir / split, sentences, seed=split_seed, workers=workers, plain=plain)
    return output_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.synthetic_corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="folder to write train/ and test/ into")
    parser.add_argument("--num-train", type=int, default=8000, help="training utterances (default 8000)")
    parser.add_argument("--num-test", type=int, default=300, help="held-out utterances (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-chars", type=int, default=4)
    parser.add_argument("--max-chars", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2, help="parallel espeak-ng processes")
    style = parser.add_mutually_exclusive_group()
    style.add_argument(
        "--plain", action="store_true", help="no leading/trailing silence or pauses (the corpus before issue #14)"
    )
    style.add_argument(
        "--word-by-word", action="store_true", help="each word spoken alone, joined by pauses (with word times)"
    )
    parser.add_argument(
        "--splits", nargs="+", choices=["train", "test"], default=["train", "test"], help="folders to write"
    )
    args = parser.parse_args(argv)
    out = build_corpus(
        args.output_dir,
        args.num_train,
        args.num_test,
        args.seed,
        args.min_chars,
        args.max_chars,
        args.workers,
        plain=args.plain,
        splits=args.splits,
        word_by_word=args.word_by_word,
    )
    counts = {"train": f"{args.num_train} training", "test": f"{args.num_test} test"}
    print(f"wrote {' and '.join(counts[split] for split in args.splits)} utterances to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
