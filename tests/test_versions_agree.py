"""The supported releases are stated once and named the same everywhere: pyproject.toml's range (`transformers>=X,<Y`,
`torch>=Z`) is the source, tests/versions.py reads it and adds the newest transformers tested and each torch's
companions, the scripts ask tests/versions.py, and the docs (README, docs/, the model cards, benchmarks/README.md) and
the package's texts name the same floors. The docs are read when the test runs, as they are at that moment.

A named version is checked where it has one of these forms (whitespace, line breaks and backticks allowed):
`transformers >= X` (the floor, with `,<Y` the upper bound), `transformers == X` (the floor or the newest tested),
`torch >= X` (the floor), `torch == X` (a torch with known companions), and "transformers ... (tested on A and the
newest release, B)" (A the floor, B the newest tested; for torch, A its floor).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import versions

ROOT = Path(__file__).resolve().parent.parent
VERSION = r"\d+(?:\.\d+)*"
# `transformers >= 5.23, < 6`, "torch `>=2.13`", `"transformers==5.25.0"`; not torchao, torchcodec or transformers-...
NAMED = re.compile(
    rf"\b(?P<package>transformers|torch)\b[\"'`]?\s*[\"'`]?\s*(?P<op>>=|==)\s*(?P<version>{VERSION})"
    rf"(?:\s*,\s*<\s*(?P<upper>{VERSION}))?"
)
TESTED = re.compile(
    rf"\b(?P<package>transformers|torch)\b[^()]{{0,40}}\(tested on\s+`?(?P<version>{VERSION})`?"
    rf"(?:\s+and the newest release,?\s+`?(?P<newest>{VERSION})\b)?"
)
# Shell scripts that install or check releases: each asks tests/versions.py instead of naming a release.
SCRIPTS = ["benchmarks/gpu_prepare.sh", "benchmarks/gpu_check.sh", "benchmarks/check_newest_torch.sh", "tests/run.sh"]


def release(text: str) -> tuple[int, ...]:
    """`5.23` and `5.23.0` alike: the release numbers padded to three."""
    parts = tuple(int(part) for part in text.split("."))
    return parts + (0,) * (3 - len(parts))


def declared() -> dict[str, str]:
    """pyproject.toml's range, read from its dependencies (the source every other place must agree with)."""
    text = (ROOT / "pyproject.toml").read_text()
    transformers = re.search(rf'"transformers\s*>=\s*({VERSION})\s*,\s*<\s*({VERSION})"', text)
    torch = re.search(rf'"torch\s*>=\s*({VERSION})"', text)
    assert transformers and torch, "pyproject.toml's dependencies must declare transformers>=X,<Y and torch>=Z"
    return {
        "transformers_floor": transformers.group(1),
        "transformers_upper": transformers.group(2),
        "torch_floor": torch.group(1),
        "newest_transformers": versions.newest_transformers(),
    }


def disagreements(text: str, expected: dict[str, str], where: str = "text") -> list[str]:
    """Every version `text` names (in the forms of the module doc) that is not `expected`'s."""
    flat = " ".join(text.split())
    floors = {"transformers": expected["transformers_floor"], "torch": expected["torch_floor"]}
    found = []

    def differs(named: str, wanted: list[str], what: str, snippet: str) -> None:
        if release(named) not in {release(version) for version in wanted}:
            found.append(f"{where}: {snippet!r} names {named} as {what}, but it is {' or '.join(wanted)}")

    for match in NAMED.finditer(flat):
        package, op, named, upper = match.group("package", "op", "version", "upper")
        snippet = match.group(0)
        if op == ">=":
            differs(named, [floors[package]], f"the {package} floor", snippet)
            if upper is not None and package == "transformers":
                differs(upper, [expected["transformers_upper"]], "the transformers upper bound", snippet)
        elif package == "transformers":
            wanted = [expected["transformers_floor"], expected["newest_transformers"]]
            differs(named, wanted, "a tested transformers", snippet)
        elif ".".join(named.split(".")[:2]) not in versions.TORCH_COMPANIONS:
            found.append(f"{where}: {snippet!r} pins a torch without companions in tests/versions.py")
    for match in TESTED.finditer(flat):
        package, named, newest = match.group("package", "version", "newest")
        differs(named, [floors[package]], f"the lowest {package} tested", match.group(0))
        if newest is not None and package == "transformers":
            differs(newest, [expected["newest_transformers"]], "the newest transformers tested", match.group(0))
    return found


def docs() -> list[Path]:
    """The pages that may name the supported releases, as they are now (other work may be writing them)."""
    pages = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    source = ROOT / "src" / "transformers_fireredasr"
    pages += sorted(source.glob("model_cards/*/README.md")) + [source / "demo" / "README.md"]
    return [page for page in pages if page.is_file()]


EXPECTED_SAMPLE = {
    "transformers_floor": "5.23",
    "transformers_upper": "6",
    "torch_floor": "2.13",
    "newest_transformers": "5.25.0",
}


def test_the_comparison_finds_a_mismatch_and_passes_agreement():
    agreeing = (
        "Python >= 3.10, transformers `>=5.23,<6` (tested on 5.23.0 and the newest release, 5.25.0), torch\n"
        "`>=2.13` (tested on 2.13.0 and ...); pip install 'torch>=2.13.0' \"transformers==5.25.0\" torch==2.14.1;\n"
        "torchao>=0.18, transformers-fireredasr>=0.1, transformers 5.24 renamed the cache"
    )
    assert disagreements(agreeing, EXPECTED_SAMPLE) == []
    for wrong, what in [
        ("needs torch >= 2.12", "the torch floor"),
        ("transformers\n`>=5.23,<7`", "the transformers upper bound"),
        ("transformers >= 5.24", "the transformers floor"),
        ('pip download "transformers==5.24.0"', "a tested transformers"),
        ("transformers `>=5.23,<6` (tested on 5.23.0 and the newest release, 5.24.0)", "the newest transformers"),
        ("torch `>=2.13` (tested on 2.12.0 and", "the lowest torch tested"),
        ("torch==2.9.0", "companions"),
    ]:
        found = disagreements(wrong, EXPECTED_SAMPLE)
        assert len(found) == 1 and what in found[0], (wrong, found)


def test_tests_versions_reads_pyprojects_range():
    expected = declared()
    assert release(versions.lowest_supported()) == release(expected["transformers_floor"])
    assert release(versions.torch_floor()) == release(expected["torch_floor"])
    assert versions.declared_range().replace(" ", "") == (
        f">={expected['transformers_floor']},<{expected['transformers_upper']}"
    )
    newest = release(versions.newest_transformers())
    assert release(expected["transformers_floor"]) <= newest < release(expected["transformers_upper"])
    assert ".".join(expected["torch_floor"].split(".")[:2]) in versions.TORCH_COMPANIONS


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_ask_tests_versions_and_name_no_release(script):
    text = (ROOT / script).read_text()
    assert disagreements(text, declared(), script) == []
    pinned = re.findall(rf"\b(?:transformers|torch)\s*==\s*{VERSION}", text)
    assert not pinned, f"{script} pins {pinned}: take the release from tests/versions.py"
    if script == "benchmarks/gpu_prepare.sh":
        assert "tests.versions newest-transformers" in text and '"transformers==$TRANSFORMERS"' in text


def test_the_docs_and_the_package_name_pyprojects_releases():
    expected = declared()
    places = docs() + [ROOT / "pyproject.toml", *sorted((ROOT / "src").rglob("*.py"))]
    found = [
        problem
        for place in places
        for problem in disagreements(place.read_text(encoding="utf-8"), expected, str(place.relative_to(ROOT)))
    ]
    assert not found, "\n".join(found)
    assert any(NAMED.search(" ".join(page.read_text().split())) for page in docs()), "no page names the range"
