"""The wheel holds what a user runs, and no development tooling (issue #35).

What a user runs: the models, the engine, the entry points, the converters, the bundled demo model and the Hub cards.
Development tooling (the synthetic corpus and its word lists, the pinyin CTC units, the vocabulary and CMVN of a new
model) lives in the checkout's `tools/` and must stay out of the wheel; README's main command must still work from
the wheel alone, with no checkout on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "transformers_fireredasr"
HELD_OUT = {"held_out_1.wav": "时人目飞快网产", "held_out_2.wav": "老妈妈旅用手工"}  # the demo's transcripts
TOOLING = ("synthetic_corpus", "corpus_data", "pinyin_units", "new_model", "hanzi.tsv", "words.txt")


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of this checkout's project files, `tools/` included beside `src/`, so that a
    packaging rule that swept it in would show. The copy keeps the build's `build/` and egg-info out of the checkout.
    Built with the installed setuptools (`--no-build-isolation --no-index`): offline, nothing downloaded."""
    work = tmp_path_factory.mktemp("wheel")
    project = work / "project"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    shutil.copytree(PACKAGE, project / "src" / PACKAGE.name, ignore=skip)
    shutil.copytree(ROOT / "tools", project / "tools", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    dist = work / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    run([*pip_wheel, "-w", dist, project])
    (built,) = dist.glob("transformers_fireredasr-*.whl")
    return built


def test_the_wheel_holds_the_package_and_no_development_tooling(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        training = archive.read("transformers_fireredasr/training.py").decode()
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    # Only the package and its metadata at the top: no tools/ (nor tests/, examples/, benchmarks/).
    assert {name.split("/")[0] for name in names} == {
        "transformers_fireredasr",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for word in TOOLING:
        assert not [name for name in names if word in name], word
    # training.py keeps what fine-tuning on your own data needs; building a model from nothing moved to tools/.
    for kept in ("class FireRedAedDataCollator", "class FireRedLlmDataCollator", "def character_error_rate",
                 "def make_compute_metrics", "def ctc_loss", "class CtcAuxiliaryHead"):  # fmt: skip
        assert kept in training, kept
    for moved in ("def write_char_vocab", "def fit_cmvn", "pinyin_units import", "encode_units("):
        assert moved not in training, moved
    assert "fireredasr-make-corpus" not in scripts
    assert "fireredasr-transcribe = transformers_fireredasr.cli:main" in scripts
    assert "fireredasr-serve = transformers_fireredasr.serving.cli:main" in scripts

    # Every module of the package in the checkout (the engine, entry points and converters included) is in it...
    modules = {f"transformers_fireredasr/{path.relative_to(PACKAGE).as_posix()}" for path in PACKAGE.rglob("*.py")}
    missing = sorted(modules - names)
    assert len(modules) > 20 and not missing, missing
    for module in ("cli.py", "serving/cli.py", "pipeline_fireredasr.py", "conversion/aed.py", "training.py"):
        assert f"transformers_fireredasr/{module}" in names, module
    # ... and so are the demo models, the Hub cards, the server's page and the typing marker.
    demo = {"model.safetensors", "config.json", "generation_config.json", "processor_config.json", "dict.txt"}
    demo |= {"tokenizer_config.json", "README.md"}
    assert {f"transformers_fireredasr/demo/{name}" for name in demo} <= names
    punctuation = {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "README.md"}
    assert {f"transformers_fireredasr/demo_punctuation/{name}" for name in punctuation} <= names
    cards = sorted(path.parent.name for path in (PACKAGE / "model_cards").glob("*/README.md"))
    assert len(cards) >= 4 and {f"transformers_fireredasr/model_cards/{card}/README.md" for card in cards} <= names
    assert {"transformers_fireredasr/serving/static/index.html", "transformers_fireredasr/py.typed"} <= names


def test_installed_wheel_transcribes_without_the_checkout(wheel, tmp_path):
    """README's main command, its transcription part, from the wheel installed in a fresh virtualenv, in a folder
    outside the checkout: the package comes from the venv's site-packages, never /work/main/src, and `tools` is not
    importable.

    The virtualenv is made with `--system-site-packages` so that torch, transformers and the other dependencies come
    from the interpreter running the tests: installing them afresh would download gigabytes and take minutes in CI.
    The wheel itself goes in with `--no-deps --ignore-installed`, into the venv, even though the outer interpreter
    has the checkout installed in editable mode; the venv's site-packages come before the system's on its path.
    """
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip takes seconds): the outer pip, seen through the system site-packages, installs
    # into the interpreter that runs it, the venv's.
    run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv])
    python = venv / "bin" / "python"
    outside = tmp_path / "outside"  # the working folder: no checkout in it or above it
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], env=env)

    def venv_python(code: str, check: bool = True) -> subprocess.CompletedProcess:
        if check:
            return run([python, "-c", code], cwd=outside, env=env)
        return subprocess.run([python, "-c", code], cwd=outside, env=env, capture_output=True, text=True, timeout=120)

    site = Path(venv_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()).resolve()
    code = "import pathlib, transformers_fireredasr as p; print(pathlib.Path(p.__file__).resolve())"
    package = Path(venv_python(code).stdout.strip())
    assert package == site / "transformers_fireredasr" / "__init__.py"
    assert not package.is_relative_to(ROOT)
    code = "import pathlib, transformers_fireredasr as p; print(pathlib.Path(p.demo_model_dir()).resolve())"
    assert Path(venv_python(code).stdout.strip()) == site / "transformers_fireredasr" / "demo"
    no_tools = venv_python("import tools", check=False)
    assert no_tools.returncode != 0 and "No module named 'tools'" in no_tools.stderr

    command = shutil.which("fireredasr-transcribe", path=env["PATH"])
    assert command == str(venv / "bin" / "fireredasr-transcribe")
    for name in HELD_OUT:
        shutil.copy2(ROOT / "examples" / "audio" / name, outside / name)
    result = run([command, *HELD_OUT], cwd=outside, env=env)
    assert result.stdout.splitlines() == [f"{name}\t{text}" for name, text in HELD_OUT.items()]
