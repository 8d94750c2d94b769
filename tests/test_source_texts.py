"""The package's own texts say what a switch does and why, never a measured figure or an issue number.

Measured figures (speed-ups, real-time factors, memory, bandwidth, accuracy, timings, throughput) live in
benchmarks/RESULTS.md, where they are dated and re-measured; a copy in a docstring or a help text goes stale and
contradicts it. Issue numbers mean nothing to a reader of the installed package. Scanned: every module, class and
function docstring and every comment under src/transformers_fireredasr/, every `help=` / `description=` string given
in the source (argparse, FastAPI), and the `--help` of each command as a user sees it. Structural constants stay
allowed: beam 3, 16 kHz, 25 ms frames, a 60 s limit, 2^19, int8, bf16, x4 subsampling, hex, defaults.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "transformers_fireredasr"

NUMBER = r"\d[\d,]*(?:\.\d+)?"
# A number that is not the tail of a name or another number: not int8, bf16, 2^19's 19 or the 5 of 0.5.
ALONE = r"(?<![\w.^])"
PATTERNS = {
    "speed-up": re.compile(
        rf"{ALONE}{NUMBER}[x×](?![\w×])"  # 7.2x, 1.9x the requests (not 3x3, 0xFF, x4)
        rf"|{ALONE}{NUMBER}\s*(?:x|×|times)\s+(?:faster|slower|quicker|as fast|as slow|as many|as much|the\s+"
        r"(?:speed|throughput|requests|original)|real[- ]?time|more|fewer|less)\b"
        r"|\b(?:twice|thrice|half)\s+as\s+(?:fast|slow|many|much)\b",
        re.IGNORECASE,
    ),
    "real-time factor": re.compile(
        rf"\b(?:RTFx?|real[- ]time factor)\s*(?:of|is|was|=|:|≈|~|about|around)?\s*~?{NUMBER}", re.IGNORECASE
    ),
    "memory or bandwidth": re.compile(rf"{ALONE}{NUMBER}\s*[kKMGTP]i?B(?:/s)?\b"),
    "percentage": re.compile(rf"{ALONE}{NUMBER}\s*(?:%|per\s?cent\b)", re.IGNORECASE),
    "duration": re.compile(
        # Any number of microseconds, minutes or hours, and of milliseconds except the frame constants (the 10 ms
        # hop, 25 ms window, 40 ms encoder frame, 80 ms speech vector); seconds only where they read as a timing.
        rf"{ALONE}(?!(?:10|25|40|80)\s*ms\b){NUMBER}\s*(?:ms|us|µs|μs|ns|minutes?|mins?|hours?|h)\b"
        rf"|(?:\b(?:about|around|roughly|nearly|almost|took|takes|taking|spent|costs?|saves?|saved)\s+|~\s*)"
        rf"{NUMBER}\s*(?:s|secs?|seconds?)\b",
        re.IGNORECASE,
    ),
    "throughput": re.compile(
        rf"{ALONE}{NUMBER}\s+(?:\w+\s+){{0,2}}?(?:requests?|req|tokens?|utterances?|files?|clips?|segments?)\s*"
        r"(?:per\s+(?:second|minute|hour)|/\s*s\b|a\s+second)"
        rf"|{ALONE}{NUMBER}[^.;()\n]{{0,40}}?\bagainst\s+~?{NUMBER}",  # "23 against 14", "5.4 ms ... against 2 ms"
        re.IGNORECASE,
    ),
    "issue number": re.compile(r"(?<![\w&/])#\d+\b|\b(?i:issue|pull request|PR)\s*#?\d+\b"),
}
# A default is a setting, not a measurement: "(default: 25 MB)" may name its unit.
DEFAULT_BEFORE = re.compile(r"(?:default:?|defaults to)\s*$", re.IGNORECASE)

# Per pattern: texts it must catch, and legitimate texts it must let through.
SAMPLES = {
    "speed-up": (
        [
            "runs 7.2x faster",
            "1.9x the requests",
            "a 15.3× speed-up",
            "7.2 x faster",
            "3 times faster",
            "twice as fast",
        ],
        [
            "int8 weights",
            "Conv2d subsampling (x4)",
            "two 3x3 convolutions",
            "0xFFFFFFFF",
            "4 x hidden",
            "frame x 40 ms",
            "pointwise conv (x2 for GLU)",
            "beam 3",
        ],
    ),
    "real-time factor": (
        ["RTF 0.26", "an RTF of 4.2", "real-time factor 0.3", "RTFx 120"],
        ["the summary's real-time factor", "reports the RTF of the run"],
    ),
    "memory or bandwidth": (
        ["38 GB/s", "about 2.8 GB", "4 MiB of packed weights", "10.3MB"],
        ["a 7B model", "4-bit and 8-bit", "bf16", "--max-upload-mb", "(default: 25 MB)"],
    ),
    "percentage": (
        ["5.2% CER", "6-17% of decoding time", "8 % faster", "98.3 percent"],
        ["CER: {cer:.2%}", "%(default)s", "16 kHz"],
    ),
    "duration": (
        [
            "took 5.4 ms",
            "about 50 ms of CPU",
            "about 4 us",
            "70 minutes on one core",
            "0.5 h of audio",
            "took 12 s",
            "~3 s per file",
        ],
        [
            "25 ms frames",
            "a 10 ms hop",
            "40 ms -> 80 ms",
            "a 60 s limit",
            "pauses of 0.3 s or more",
            "--max-wait-ms",
            "16 kHz",
            "2^19",
        ],
    ),
    "throughput": (
        [
            "23 against 14 requests per second",
            "0.80 requests per second",
            "120 tokens/s",
            "5.4 ms per product against 2 ms",
        ],
        [
            "requests per second with batching",
            "100 frames a second",
            "128 kbit/s, a common bitrate",
            "checked against the reference",
        ],
    ),
    "issue number": (
        ["issue #19", "(#14)", "see #35", "Issue 36"],
        ["# noqa: F401", "the 2nd issue", "`&#1234;`", "colour #fff", "https://x.org/#section"],
    ),
}


def figures(text: str) -> list[str]:
    """`"pattern: matched text"` for every measured figure or issue number in `text` (whitespace is normalised, so
    a figure broken over two lines is still found)."""
    flat = " ".join(text.split())
    found = []
    for name, pattern in PATTERNS.items():
        for match in pattern.finditer(flat):
            if not DEFAULT_BEFORE.search(flat[max(0, match.start() - 12) : match.start()]):
                found.append(f"{name}: {match.group(0)!r}")
    return found


HELP_KEYWORDS = {"help", "description", "epilog", "summary", "title", "usage"}


def _string_value(node: ast.AST) -> str | None:
    """A string constant, or an f-string's literal parts (its replacement fields left out)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return " ".join(part.value for part in node.values if isinstance(part, ast.Constant))
    return None


def source_texts(source: str) -> list[tuple[int, str, str]]:
    """`(line, kind, text)` of the docstrings, comments and help / description strings in Python `source`."""
    texts = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            docstring = ast.get_docstring(node, clean=False)
            if docstring:
                texts.append((getattr(node, "lineno", 1), "docstring", docstring))
        elif isinstance(node, ast.keyword) and node.arg in HELP_KEYWORDS:
            value = _string_value(node.value)
            if value:
                texts.append((node.value.lineno, f"{node.arg}=", value))
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            texts.append((token.start[0], "comment", token.string))
    return texts


@pytest.mark.parametrize("name", list(PATTERNS))
def test_each_pattern_catches_a_figure_and_passes_allowed_text(name):
    caught, allowed = SAMPLES[name]
    for text in caught:
        assert any(hit.startswith(f"{name}:") for hit in figures(text)), f"{name} misses {text!r}"
    for text in allowed:
        assert figures(text) == [], f"{text!r} is allowed, but matched {figures(text)}"


def test_a_figure_added_to_a_docstring_is_found():
    source = 'def decode():\n    """Decodes the batch, 7.2x faster\n    than the original."""\n'
    assert [(line, kind) for line, kind, text in source_texts(source) if figures(text)] == [(1, "docstring")]
    source = 'parser.add_argument("--compile", help=f"{NAME}: 23 against 14 requests per second")\n# see #35\n'
    assert [kind for _, kind, text in source_texts(source) if figures(text)] == ["help=", "comment"]


@pytest.mark.parametrize("path", sorted(SOURCE.rglob("*.py")), ids=lambda path: str(path.relative_to(SOURCE)))
def test_source_docstrings_comments_and_help_strings_hold_no_figures(path):
    findings = [
        f"{path.relative_to(SOURCE)}:{line} ({kind}) {hit}"
        for line, kind, text in source_texts(path.read_text(encoding="utf-8"))
        for hit in figures(text)
    ]
    assert not findings, "measured figures belong in benchmarks/RESULTS.md:\n" + "\n".join(findings)


@pytest.mark.parametrize("command", ["fireredasr-transcribe", "fireredasr-serve", "fireredasr-live"])
def test_command_help_holds_no_figures(command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option, as the scan reads it
    if command == "fireredasr-transcribe":
        from transformers_fireredasr.cli import build_parser
    elif command == "fireredasr-live":
        from transformers_fireredasr.serving.realtime.live_cli import build_parser
    else:
        from transformers_fireredasr.serving.cli import build_parser
    text = build_parser().format_help()
    assert text.startswith(f"usage: {command}")
    assert figures(text) == [], f"`{command} --help` quotes measured figures or issues: {figures(text)}"


DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda path: str(path.relative_to(ROOT)))
def test_docs_pages_link_to_the_results_instead_of_copying_figures(page):
    """The pages describe; the results table (docs/results.md, included from benchmarks/RESULTS.md) holds every
    measured figure, so a page never quotes one that goes stale."""
    text = page.read_text(encoding="utf-8")
    findings = [f"line {number}: {hit}" for number, line in enumerate(text.splitlines(), 1) for hit in figures(line)]
    assert not findings, f"{page.name} quotes measured figures; link to results.md instead:\n" + "\n".join(findings)
