"""The rules CI runs by (tests/markers.py, tests/versions.py): every marker pattern still names a test, plain pytest
leaves the slow tests out, and every torch the project tests has its companion releases."""

from __future__ import annotations

import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import torch
from packaging import version

from tests import markers, versions

ROOT = Path(__file__).resolve().parents[1]


def collected(*args: str) -> list[str]:
    """Node ids (relative to tests/) that `pytest --collect-only` selects with `args`."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line.removeprefix("tests/") for line in result.stdout.splitlines() if line.startswith("tests/")]


@pytest.fixture(scope="module")
def every_test() -> list[str]:
    return collected("--slow")


def test_every_pattern_names_a_test(every_test):
    """A renamed or removed test would otherwise drop out of the slow or the version-sensitive set unnoticed."""
    for rule in (markers.SLOW, markers.VERSION_SENSITIVE):
        for pattern in rule:
            assert any(fnmatchcase(nodeid, pattern) for nodeid in every_test), f"{pattern!r} names no test"


def test_plain_pytest_leaves_out_the_slow_tests_and_the_markers_select(every_test):
    default = collected()
    slow = [nodeid for nodeid in every_test if "slow" in markers.markers_for(nodeid)]
    assert slow and "test_ray_data.py::test_recipe_resumes_a_killed_run_and_gives_the_cli_texts" in slow
    assert sorted(default) == sorted(set(every_test) - set(slow))
    sensitive = collected("-m", "version_sensitive")
    assert sorted(sensitive) == sorted(n for n in every_test if "version_sensitive" in markers.markers_for(n))
    assert "test_transformers_range.py::test_every_mode_gives_the_same_ids_on_every_release" in sensitive
    # Naming a slow test runs it.
    assert collected("tests/test_ray_data.py") == [n for n in every_test if n.startswith("test_ray_data.py::")]


def test_every_tested_torch_has_its_companions():
    floor = versions.torch_floor()
    assert versions.constraints(floor).startswith(f"torch=={floor}\n")
    assert set(versions.companions(floor)) == {"torchao", "torchcodec"}
    assert versions.companions(torch.__version__)  # the installed one, with its build tag
    assert version.parse(torch.__version__).release >= version.parse(floor).release  # the floor is a floor
    with pytest.raises(ValueError, match="add torch 9.9 to TORCH_COMPANIONS"):
        versions.companions("9.9.0")


def test_the_ranges_are_pyprojects():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"transformers>={versions.lowest_supported().removesuffix(".0")},<6"' in text
    assert f'"torch>={versions.torch_floor().removesuffix(".0")}"' in text
