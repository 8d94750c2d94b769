"""The layers (entry points -> engine -> models) are contracts that `lint-imports` checks (`[tool.importlinter]` in
pyproject.toml): they hold for the package, an upward import or an import circle breaks them, and no module of the
package escapes them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "transformers_fireredasr"
LINT = shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="needs import-linter (the test extra)")
# Modules outside the layers: the package's glue, which registers the classes with transformers at import.
GLUE = {"__init__", "_torchao_notices", "registration"}


def lint(source_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [LINT, "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(
        PACKAGE, tmp_path / "transformers_fireredasr", ignore=shutil.ignore_patterns("demo", "__pycache__")
    )
    return tmp_path / "transformers_fireredasr"


def test_the_package_keeps_its_layers():
    result = lint(REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_them(tmp_path):
    package = copy_package(tmp_path)
    options = package / "engine" / "options.py"
    options.write_text(options.read_text() + "\nfrom ..batch import run  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout
    assert "transformers_fireredasr.engine.options -> transformers_fireredasr.batch.run" in result.stdout


def test_a_model_importing_the_engine_breaks_them(tmp_path):
    package = copy_package(tmp_path)
    modeling = package / "modeling_conformer.py"
    modeling.write_text(modeling.read_text() + "\nfrom .engine import options  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "import no engine and no entry point BROKEN" in " ".join(result.stdout.split())


def test_an_import_circle_breaks_them(tmp_path):
    """The circle the CLI once had: cli -> batch.command -> batch.run -> cli."""
    package = copy_package(tmp_path)
    run = package / "batch" / "run.py"
    run.write_text(run.read_text() + "\nfrom ..cli import read_audio  # noqa\n")
    result = lint(tmp_path)
    assert (
        result.returncode != 0 and "transformers_fireredasr.batch.run -> transformers_fireredasr.cli" in result.stdout
    )


def test_every_module_is_in_a_contract():
    try:
        import tomllib
    except ImportError:  # Python 3.10: tomllib came with 3.11
        tomllib = pytest.importorskip("tomli")
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    named = " ".join(
        " ".join(contract.get(key, []))
        for contract in contracts
        for key in ("layers", "source_modules", "forbidden_modules")
    )
    listed = {
        name.split(".")[1] for name in named.replace("|", " ").split() if name.startswith("transformers_fireredasr.")
    }
    modules = {path.stem for path in PACKAGE.glob("*.py")} | {
        path.parent.name for path in PACKAGE.glob("*/__init__.py")
    }
    assert modules - listed - GLUE == set(), "add these modules to a contract in pyproject.toml's [tool.importlinter]"
