"""Every code block of README.md, the docs pages and the model cards runs offline (tests/doc_blocks.py says how),
except a pinned, named list; and the harness itself does what it says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.audio import noise, write_wav
from tests.doc_blocks import MODEL_FIXTURES as FIXTURES
from tests.doc_blocks import (
    ROOT,
    SHOWN_LANGUAGES,
    audio_names,
    bash_as_python,
    code_blocks,
    doc_files,
    installs,
    link_models,
    link_repository,
    models_named,
    runnable,
    shell_commands,
    substitute,
)

# The blocks that cannot run offline, per file: each is marked `<!-- not-tested: REASON -->` in the markdown, and
# adding one means changing this list.
NOT_TESTED = {
    "README.md": 2,  # the install and the test suite: tests/test_wheel_contents.py runs the first in a fresh venv
    "docs/quickstart.md": 1,  # pip install from the network
    "docs/usage.md": 1,  # FireRedASR-LLM in 4-bit on a CUDA GPU
    "docs/speed.md": 1,  # the GPU modes
    "docs/archives.md": 2,  # a Slurm array job, a running Ray cluster
    "docs/contributing.md": 3,  # the test suite itself, the GPU scripts, the docs build (installs, serves)
    "src/transformers_fireredasr/demo/README.md": 1,  # trains the demo from scratch
    # the cards: pip installs, and fine-tuning on the user's own corpus
    "src/transformers_fireredasr/model_cards/FireRedASR-AED-L/README.md": 3,
    "src/transformers_fireredasr/model_cards/FireRedASR-LLM-L/README.md": 3,
    "src/transformers_fireredasr/model_cards/FireRedASR2-AED/README.md": 2,
    "src/transformers_fireredasr/model_cards/FireRedASR2-LLM/README.md": 1,
}

# What every block runs with; read at import time (threads, offline switches), so the forking parent starts with it.
BLOCK_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def all_blocks() -> list[tuple[str, int, dict]]:
    return [
        (name, number, block)
        for name, path in doc_files().items()
        for number, block in enumerate(code_blocks(path.read_text("utf-8")), start=1)
    ]


# --- the harness ----------------------------------------------------------------------------------------------------


def test_code_block_extraction_and_markers():
    markdown = (
        "text\n```python\nprint(1)\n```\n\n<!-- not-tested: needs a GPU -->\n\n```python\nprint(2)\n```\n"
        "```bash\nls\n```\n<!-- not-tested: x -->\nprose\n```py\nprint(3)\n```\n"
    )
    blocks = code_blocks(markdown)
    assert [(b["language"], b["code"], b["not_tested"]) for b in blocks] == [
        ("python", "print(1)\n", None),
        ("python", "print(2)\n", "needs a GPU"),
        ("bash", "ls\n", None),
        ("py", "print(3)\n", None),  # a marker counts only right before the fence
    ]


def test_plain_shell_lines_become_commands_and_shell_syntax_goes_to_bash():
    assert shell_commands('fireredasr-transcribe "a b.wav" \\\n    --num-beams 1  # greedy\n\npython -m x y\n') == [
        ["fireredasr-transcribe", "a b.wav", "--num-beams", "1"],
        ["python", "-m", "x", "y"],
    ]
    assert shell_commands('fireredasr-transcribe --files "audio/*.wav"\n') == [
        ["fireredasr-transcribe", "--files", "audio/*.wav"]
    ]
    for code in ("a | b\n", "a > out\n", "a && b\n", "X=1 a\n", "cat <<EOF\nx\nEOF\n", "a $HOME\n", "ls *.wav\n"):
        assert shell_commands(code) is None, code
        assert "bash" in bash_as_python(code)


def test_models_and_audio_a_block_names():
    code = 'asr("speech.wav"); resolve_model("FireRedTeam/FireRedASR2-AED")\n'
    assert models_named(code) == {"aed2"} and audio_names(code, "python") == ["speech.wav"]
    shell = "fireredasr-transcribe a.wav examples/audio/x.wav --model FireRedASR-AED-L --output-dir out\n"
    assert models_named(shell) == {"original_aed"}
    assert audio_names(shell, "bash") == ["a.wav", "examples/audio/x.wav"]
    assert models_named("--model FireRedTeam/FireRedASR-AED-L --output_dir FireRedASR-AED-L-hf") == {"aed"}
    assert substitute('m = "FireRedTeam/FireRedASR-AED-L"', {"aed": Path("/m")}) == 'm = "/m"'


def test_shell_block_runner_stops_at_the_first_failing_command(tmp_path):
    script = tmp_path / "block.py"
    script.write_text(bash_as_python("python -c 'print(1)'\nfalse\npython -c 'print(2)'\n"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "command failed with exit 1: false" in result.stderr


def test_every_fence_names_a_language_that_runs_or_is_shown():
    unknown = [
        f"{name} line {block['line']}: ```{block['language']}"
        for name, _, block in all_blocks()
        if not runnable(block) and block["language"] not in SHOWN_LANGUAGES
    ]
    assert not unknown, "name each block's language (python, bash, or text for a synopsis):\n" + "\n".join(unknown)


def test_no_block_that_runs_installs_anything():
    assert installs('pip install "x[y]"\n') and installs("cd a && python -m pip install -e .\n")
    assert not installs("fireredasr-transcribe a.wav  # after pip installing\n")
    running = [
        f"{name} line {block['line']}"
        for name, _, block in all_blocks()
        if runnable(block) and block["not_tested"] is None and installs(block["code"])
    ]
    assert not running, "mark these not-tested (the tests never install packages):\n" + "\n".join(running)


def test_the_blocks_that_do_not_run_are_the_named_ones():
    skipped: dict[str, int] = {}
    for name, _, block in all_blocks():
        if runnable(block) and block["not_tested"] is not None:
            skipped[name] = skipped.get(name, 0) + 1
    assert {name: count for name, count in skipped.items() if count} == {
        name: count for name, count in NOT_TESTED.items() if count
    }


# --- every block ----------------------------------------------------------------------------------------------------


def block_params() -> list:
    params = []
    for name, number, block in all_blocks():
        if not runnable(block):
            continue
        marks = [pytest.mark.skip(reason=f"not-tested: {block['not_tested']}")] if block["not_tested"] else []
        params.append(pytest.param(name, block, id=f"{name}-block{number}-line{block['line']}", marks=marks))
    return params


def make_audio(folder: Path, names: list[str], speech) -> None:
    """Writes each audio file a block names (see tests/doc_blocks.py)."""
    voiced = [utterance for utterance in speech if utterance.text][::2]  # each sentence once
    for index, name in enumerate(names):
        path = folder / name
        if path.exists():  # the repository's own file, through a linked folder
            continue
        if path.resolve().is_relative_to(ROOT):
            pytest.fail(f"{name} names a file that is not in the repository")
        path.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, path)
            continue
        if "long" in Path(name).stem:
            pauses = [noise(0.8, seed) * 0.02 for seed in range(len(voiced))]
            audio = np.concatenate([piece for u, p in zip(voiced, pauses, strict=True) for piece in (u.audio, p)])
        else:
            audio = voiced[index % len(voiced)].audio
        wav = path if path.suffix == ".wav" else path.with_suffix(".tmp.wav")
        write_wav(wav, audio)
        if wav != path:
            if shutil.which("ffmpeg") is None:
                pytest.skip(f"ffmpeg is needed to write {name}")
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(path)], check=True)
            wav.unlink()


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    """Runs each block in a process of its own, forked from one that imported torch and transformers once."""
    from tests.forked_scripts import ForkedScripts

    bin_folder = os.path.dirname(sys.executable)
    env = {**os.environ, **BLOCK_ENV, "PATH": f"{bin_folder}{os.pathsep}{os.environ.get('PATH', '')}"}
    runner = ForkedScripts(env)
    yield runner
    runner.close()


@pytest.mark.parametrize(("name", "block"), block_params())
def test_code_block_runs(name, block, request, speech, tmp_path, forked):
    folder = tmp_path / "run"
    folder.mkdir()
    models = {kind: request.getfixturevalue(FIXTURES[kind]) for kind in sorted(models_named(block["code"]))}
    code = substitute(block["code"], models)
    link_models(folder, models)
    link_repository(folder)
    make_audio(folder, audio_names(code, block["language"]), speech)
    python = code if block["language"] in ("python", "py") else bash_as_python(code)
    script = tmp_path / "block.py"
    script.write_text(python, encoding="utf-8")
    env = {
        **forked.env,
        "HF_HOME": str(tmp_path / "hf_home"),
        "FIREREDASR_CACHE": str(tmp_path / "converted"),
        "MPLBACKEND": "Agg",
    }
    result = forked.run(script, folder, env, timeout=900)
    assert result.returncode == 0, (
        f"{name} line {block['line']} failed (exit {result.returncode}):\n--- code ---\n{code}"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
    )
