"""The releases the project supports and tests, in one place: the transformers and torch ranges that pyproject.toml
declares, the newest transformers release tested, and the companion releases (torchao, torchcodec) that go with each
torch.

tests/run.sh and the benchmarks' scripts (check_newest_torch.sh, gpu_prepare.sh, gpu_check.sh) ask it from the shell:

    python3 -m tests.versions lowest-transformers        # 5.23.0 (the floor of pyproject.toml's range)
    python3 -m tests.versions newest-transformers        # 5.25.0 (the newest release tested)
    python3 -m tests.versions torch-floor                # 2.13.0
    python3 -m tests.versions constraints 2.14.1         # pip constraints: torch and its companions

tests/test_versions_agree.py checks that pyproject.toml, these, the scripts and the docs name the same releases.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# The newest transformers release the project is tested on (tests/run.sh installs the newest that pip offers; this is
# the one named where a release must be pinned: the wheel that benchmarks/gpu_prepare.sh brings to the GPU machine).
NEWEST_TESTED_TRANSFORMERS = "5.25.0"

# Per torch minor release, the torchao and torchcodec releases installed beside it. Why pins at all: torchcodec's
# native library must load with the installed torch build (the CPU wheel of 2.13 on local disk takes the CPU build
# of torchcodec 0.13 on local disk; the CUDA builds of 2.14 and 2.15 take PyPI's CUDA 13.0 builds), and torchao's
# int8 modes change between releases (0.18 is the one every row was measured with; it needs no compiled kernels).
TORCH_COMPANIONS = {
    "2.13": {"torchao": "0.18.0", "torchcodec": "0.13.0"},
    "2.14": {"torchao": "0.18.0", "torchcodec": "0.14.0"},
    "2.15": {"torchao": "0.18.0", "torchcodec": "0.17.0"},
}


def _requirement(package: str) -> str:
    """The version specifier pyproject.toml's dependencies give `package`, e.g. `>=5.23,<6`."""
    match = re.search(rf'"{package}\s*([<>=!~][^"]*)"', PYPROJECT.read_text())
    if match is None:
        raise ValueError(f"{PYPROJECT} declares no {package} requirement")
    return match.group(1).strip()


def _floor(package: str) -> str:
    """The `>=` floor of `package`'s requirement as a full release number (`>=5.23` -> `5.23.0`)."""
    match = re.search(r">=\s*([0-9.]+)", _requirement(package))
    if match is None:
        raise ValueError(f"the {package} requirement {_requirement(package)!r} has no >= floor")
    parts = match.group(1).split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def declared_range() -> str:
    """The transformers requirement of the project's dependencies, e.g. `>=5.23,<6`."""
    return _requirement("transformers")


def lowest_supported() -> str:
    """The lowest transformers release the project supports (`5.23.0`)."""
    return _floor("transformers")


def newest_transformers() -> str:
    """The newest transformers release the project is tested on (`5.25.0`), inside pyproject.toml's range."""
    return NEWEST_TESTED_TRANSFORMERS


def torch_floor() -> str:
    """The lowest torch release the project supports and tests (`2.13.0`)."""
    return _floor("torch")


def companions(torch_version: str) -> dict[str, str]:
    """`{package: release}` to install beside `torch_version` (a local build tag such as `+cpu` is ignored)."""
    minor = ".".join(torch_version.split("+")[0].split(".")[:2])
    if minor not in TORCH_COMPANIONS:
        raise ValueError(
            f"no companion releases are known for torch {torch_version}: add torch {minor} to TORCH_COMPANIONS in "
            f"{Path(__file__).name} (the torchao and torchcodec releases that work with it)"
        )
    return dict(TORCH_COMPANIONS[minor])


def constraints(torch_version: str) -> str:
    """pip constraint lines: torch at `torch_version` and its companions."""
    pins = {"torch": torch_version.split("+")[0], **companions(torch_version)}
    return "".join(f"{package}=={release}\n" for package, release in pins.items())


def main(argv: list[str]) -> int:
    commands = {
        "lowest-transformers": lambda: lowest_supported(),
        "newest-transformers": lambda: newest_transformers(),
        "torch-floor": lambda: torch_floor(),
        "constraints": lambda version: constraints(version).rstrip("\n"),
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python3 -m tests.versions {{{','.join(commands)}}} [TORCH_VERSION]", file=sys.stderr)
        return 2
    print(commands[argv[0]](*argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
