"""The code blocks of README.md, the docs pages and the model cards, and how the tests run each one offline.

Every fenced block in those files is either run or named: a ```python block runs as a script, a ```bash block runs
as a shell script, both in a scratch folder; a block marked by `<!-- not-tested: REASON -->` on the line before its
fence is skipped with that reason (tests/test_docs.py pins how many each file has). Fences in `SHOWN_LANGUAGES`
(synopses, output, config) are text to read, not code to run.

Before a block runs:
- the Hub ids in `HUB_IDS` become tiny converted transformers folders, and the local folder names in `LOCAL_NAMES`
  links to them;
- the bare original-release folder names in `ORIGINAL_NAMES` (`--model FireRedASR-AED-L`, `--input_dir ...`) become
  links to tiny folders in the original format;
- every audio file the block names is made in the scratch folder: a copy of the repository's file where the path
  names one (`examples/audio/...`), else a synthetic Mandarin utterance, or several with pauses when the name
  contains "long";
- the repository's `REPOSITORY_FOLDERS` are linked into the scratch folder, so `python examples/...` and
  `python -m tools....` run as from a checkout.

A shell block whose lines are plain commands runs in one Python process (`bash_as_python`): our console scripts,
`python -m MODULE` and `python SCRIPT` run in-process, anything else as a subprocess. That process is forked from
one that imported torch and transformers once (tests/forked_scripts.py), which saves a fresh interpreter per
command. A block with shell syntax (pipes, redirections, `&&`, variables, heredocs) runs under `bash -euo pipefail`.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^```\s*([\w+-]*)")
MARKER = re.compile(r"^<!--\s*not-tested:\s*(.+?)\s*-->$")
PYTHON_LANGUAGES = {"python", "py"}
SHELL_LANGUAGES = {"bash", "sh", "shell"}
# Read, never run: command synopses with [optional] parts, diagrams, output, file contents.
SHOWN_LANGUAGES = {"text", "bibtex", "console", "json", "jsonl", "yaml", "toml", "srt", "vtt", "ini", "csv"}

HUB_IDS = {
    "FireRedTeam/FireRedASR-AED-L": "aed",
    "FireRedTeam/FireRedASR-LLM-L": "llm",
    "FireRedTeam/FireRedASR2-AED": "aed2",
    "FireRedTeam/FireRedASR2-LLM": "llm",  # the same code as v1; the tiny v1 fixture stands in
    "FireRedTeam/FireRedPunc": "punc",  # a tiny random BERT in FireRedPunc's layout: it punctuates at random
    "FireRedTeam/FireRedLID": "lid",  # the tiny test AED's encoder and a label decoder trained a little
    "FireRedTeam/FireRedVAD": "vad",  # upstream's DFSMN, random weights fitted to frame energy; its variants as subfolders
}
LOCAL_NAMES = {"fireredasr-aed-l": "aed", "fireredasr-llm-l": "llm"}
ORIGINAL_NAMES = {
    "FireRedASR-AED-L": "original_aed",
    "FireRedASR-LLM-L": "original_llm",
    "FireRedASR2-AED": "original_aed2",
    "FireRedASR2-LLM": "original_llm",  # the v1 LLM folder stands in: the converter reads both the same way
    "FireRedLID": "original_lid",
    "FireRedVAD": "original_vad",  # the release: VAD/, Stream-VAD/ and AED/
}
MODEL_FIXTURES = {
    "aed": "converted_aed_dir",
    "llm": "converted_llm_dir",
    "aed2": "converted_aed2_dir",
    "original_aed": "trained_aed_dir",
    "original_llm": "llm_dir",
    "original_aed2": "aed2_dir",
    "punc": "converted_punc_dir",
    "lid": "converted_lid_dir",
    "original_lid": "lid_dir",
    "vad": "converted_vad_dir",
    "original_vad": "vad_release_dir",
}
REPOSITORY_FOLDERS = ("examples", "tools", "conversion", "benchmarks", "notebooks")
AUDIO_EXTENSIONS = r"(?:wav|flac|mp3|ogg|m4a)"
QUOTED_AUDIO = re.compile(rf"""["']([\w\-./]+\.{AUDIO_EXTENSIONS})["']""")
SHELL_AUDIO = re.compile(rf"""(?:^|(?<=[\s"'=]))([\w\-./]+\.{AUDIO_EXTENSIONS})(?=$|[\s"';])""", re.MULTILINE)


def doc_files() -> dict[str, Path]:
    """Every markdown file whose blocks the tests run, by its path relative to the repository."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    package = ROOT / "src" / "transformers_fireredasr"
    files += [*sorted((package / "model_cards").glob("*/README.md")), package / "demo" / "README.md"]
    return {path.relative_to(ROOT).as_posix(): path for path in files if path.is_file()}


def code_blocks(markdown: str) -> list[dict]:
    """Every fenced block: `language`, `code`, `line` (1-based, of the opening fence) and `not_tested` (the reason
    from a `<!-- not-tested: ... -->` comment on the closest non-blank line before the fence, or None)."""
    blocks, lines, index = [], markdown.splitlines(), 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.match(previous)
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), len(lines))
        blocks.append(
            {
                "language": match.group(1).lower(),
                "code": "\n".join(lines[index + 1 : end]) + "\n",
                "line": index + 1,
                "not_tested": marker.group(1) if marker else None,
            }
        )
        index = end + 1
    return blocks


# The harness never installs anything: a block that does is marked not-tested (tests/test_docs.py checks it).
INSTALLS = re.compile(r"(^|[\s;&|(])(pip3?|python3? -m pip|uv pip|apt(-get)?|conda)\s+install\b", re.MULTILINE)


def installs(code: str) -> bool:
    return bool(INSTALLS.search(code))


def runnable(block: dict) -> bool:
    return block["language"] in PYTHON_LANGUAGES | SHELL_LANGUAGES


def models_named(code: str) -> set[str]:
    """The fixtures (keys of `MODEL_FIXTURES`) a block's code needs."""
    kinds = {kind for hub_id, kind in HUB_IDS.items() if hub_id in code}
    kinds |= {kind for local, kind in LOCAL_NAMES.items() if re.search(rf"""["']{re.escape(local)}["']""", code)}
    kinds |= {kind for name, kind in ORIGINAL_NAMES.items() if original_name_pattern(name).search(code)}
    return kinds


def original_name_pattern(name: str) -> re.Pattern:
    """A bare folder name: not part of a Hub id (`FireRedTeam/...`) or of a longer name (`...-hf`)."""
    return re.compile(rf"(?<![\w/.-]){re.escape(name)}(?![\w-])")


def substitute(code: str, models: dict[str, Path]) -> str:
    """The code with the Hub ids of the fixtures it got replaced by their folders."""
    for hub_id, kind in HUB_IDS.items():
        if kind in models:
            code = code.replace(hub_id, str(models[kind]))
    return code


def link_models(folder: Path, models: dict[str, Path]) -> None:
    """Links the local and original folder names to the fixtures' folders, inside the scratch folder."""
    for names in (LOCAL_NAMES, ORIGINAL_NAMES):
        for name, kind in names.items():
            if kind in models:
                (folder / name).symlink_to(models[kind], target_is_directory=True)


def link_repository(folder: Path) -> None:
    for name in REPOSITORY_FOLDERS:
        if (ROOT / name).is_dir():
            (folder / name).symlink_to(ROOT / name, target_is_directory=True)


def audio_names(code: str, language: str) -> list[str]:
    pattern = SHELL_AUDIO if language in SHELL_LANGUAGES else QUOTED_AUDIO
    return sorted(set(pattern.findall(code)))


# Shell syntax that only bash can run: pipes, redirections, chains, substitutions, variables, heredocs, globs.
SHELL_SYNTAX = re.compile(r"[|<>;&`$*?~]|^\s*\w+=")
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def join_continuations(code: str) -> list[str]:
    lines, current = [], ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


def shell_commands(code: str) -> list[list[str]] | None:
    """The block as a list of argv lists, or None when it needs bash (see `SHELL_SYNTAX`)."""
    commands = []
    for line in join_continuations(code):
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if SHELL_SYNTAX.search(QUOTED.sub("", line.split(" #")[0])):
            return None
        commands.append(words)
    return commands


# The child's side: runs each command in this process where it can (see the module docstring).
RUNNER = r"""
import os, runpy, shutil, subprocess, sys
from importlib.metadata import entry_points

SCRIPTS = {ep.name: ep for ep in entry_points(group="console_scripts") if ep.value.startswith("transformers_fireredasr")}


def run(argv):
    sys.argv = list(argv)
    try:
        if argv[0] in SCRIPTS:
            sys.argv[0] = shutil.which(argv[0]) or argv[0]
            code = SCRIPTS[argv[0]].load()()
        elif argv[0] in ("python", "python3") and argv[1:2] == ["-m"]:
            sys.argv = [argv[2], *argv[3:]]
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            code = 0
        elif argv[0] in ("python", "python3") and len(argv) > 1 and not argv[1].startswith("-"):
            sys.argv = argv[1:]
            sys.path.insert(0, os.path.dirname(os.path.abspath(argv[1])))
            runpy.run_path(argv[1], run_name="__main__")
            code = 0
        else:
            code = subprocess.run(argv).returncode
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    if code:
        sys.stdout.flush()
        print(f"command failed with exit {code}: {' '.join(argv)}", file=sys.stderr)
        raise SystemExit(code)


for argv in COMMANDS:
    run(argv)
"""

BASH_RUNNER = r"""
import subprocess, sys
sys.stdout.flush()
code = subprocess.run(["bash", "-euo", "pipefail", "-c", SCRIPT]).returncode
if code:
    print(f"the shell block failed with exit {code}", file=sys.stderr)
raise SystemExit(code)
"""


def bash_as_python(code: str) -> str:
    """A Python script that runs the shell block `code` (see the module docstring)."""
    commands = shell_commands(code)
    if commands is None:
        return f"SCRIPT = {code!r}\n" + BASH_RUNNER
    return f"COMMANDS = {commands!r}\n" + RUNNER


__all__ = [
    "HUB_IDS",
    "MODEL_FIXTURES",
    "SHOWN_LANGUAGES",
    "audio_names",
    "bash_as_python",
    "code_blocks",
    "doc_files",
    "link_models",
    "link_repository",
    "models_named",
    "runnable",
    "shell_commands",
    "substitute",
]
