"""The docs site builds with `mkdocs build --strict` (mkdocs.yml), and the strict build fails on what it must catch:
a broken link, a page missing from the navigation, an API reference that names nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def copy_of_the_project(folder: Path) -> Path:
    """mkdocs.yml and docs/ copied (to be broken), src/ and benchmarks/ linked (the API reference, the results)."""
    folder.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", folder / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", folder / "docs")
    for name in ("src", "benchmarks"):
        (folder / name).symlink_to(ROOT / name, target_is_directory=True)
    return folder


def test_the_site_builds_strictly(tmp_path):
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "site" / "index.html").is_file()
    api = (tmp_path / "site" / "reference" / "engine" / "index.html").read_text("utf-8")
    assert "transcribe_many" in api  # the reference is generated from the docstrings
    results = (tmp_path / "site" / "results" / "index.html").read_text("utf-8")
    assert "fp32" in results  # the current results table, included from benchmarks/RESULTS.md


@pytest.mark.parametrize(
    ("page", "text", "complaint"),
    [
        ("usage.md", "\nSee [the options](no-such-page.md).\n", "no-such-page.md"),
        ("usage.md", "\nSee [the options](decoding.md#no-such-heading).\n", "no-such-heading"),
        ("reference/engine.md", "\n::: transformers_fireredasr.engine.NoSuchThing\n", "NoSuchThing"),
    ],
    ids=["missing page", "missing anchor", "unresolved reference"],
)
def test_a_broken_page_fails_the_build(tmp_path, page, text, complaint):
    project = copy_of_the_project(tmp_path / "project")
    with open(project / "docs" / page, "a", encoding="utf-8") as markdown:
        markdown.write(text)
    result = build(project, tmp_path / "site")
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_a_page_left_out_of_the_navigation_fails_the_build(tmp_path):
    project = copy_of_the_project(tmp_path / "project")
    (project / "docs" / "orphan.md").write_text("# An orphan\n", encoding="utf-8")
    result = build(project, tmp_path / "site")
    assert result.returncode != 0
    assert "orphan.md" in result.stdout + result.stderr
