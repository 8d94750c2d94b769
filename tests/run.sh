#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh machine, then runs pytest.
#
#   bash tests/run.sh                                  # the newest transformers that pip picks
#   bash tests/run.sh --transformers 5.23.0            # a given release, in its own virtualenv (.venv-transformers-5.23.0)
#   bash tests/run.sh --transformers lowest            # the lowest release pyproject.toml supports
#   bash tests/run.sh -- -k pipeline -x                # anything after -- goes to pytest
#
# Installs the system tools (espeak-ng, sox, ffmpeg, chromium), the pinned CPU torch, the project with its `test`
# extra, and the reference package `fireredasr==0.0.2` (the oracle, with --no-deps: its declared modelscope and
# cn2an are not needed). Steps that are already satisfied are quick.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_PIN="torch==2.13.0"
transformers_version=""
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --transformers) transformers_version="${2:?--transformers needs a version (or 'lowest')}"; shift 2 ;;
    --) shift; pytest_args+=("$@"); break ;;
    *) echo "tests/run.sh: unknown option $1 (see the header of tests/run.sh)" >&2; exit 2 ;;
  esac
done

# System tools: speech synthesis and audio conversion for the synthetic test audio, ffmpeg for decoding files,
# chromium for the browser test of the server's page.
apt_packages=(espeak-ng sox ffmpeg chromium fonts-wqy-zenhei)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The pinned CPU torch first, and kept pinned while the rest resolves (an unpinned torch pulls a CUDA build).
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "$TORCH_PIN" > "$constraints"
python3 -m pip install -q "$TORCH_PIN"
python3 -m pip install -q -c "$constraints" -e ".[test]"
python3 -m pip install -q --no-deps "fireredasr==0.0.2"

# Each run leaves the token ids of every decoding mode in .test-ids/<release>.json for a run on another release to
# compare with; a run on the newest release starts that comparison afresh.
python=python3
[ -n "$transformers_version" ] || rm -rf .test-ids
if [ -n "$transformers_version" ]; then
  if [ "$transformers_version" = lowest ]; then
    transformers_version="$(python3 -c 'import tests.transformers_range as r; print(r.lowest_supported())')"
  fi
  # A virtualenv on top of the packages above, with only transformers replaced (and the project's own scripts).
  venv=".venv-transformers-$transformers_version"
  [ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
  # The venv's own setuptools (seeded by ensurepip) predates the SPDX license field; tests build wheels with it.
  "$venv/bin/python" -m pip install -q -c "$constraints" "transformers==$transformers_version" "setuptools>=77"
  "$venv/bin/python" -m pip install -q --no-deps -e .
  python="$venv/bin/python"
  export PATH="$PWD/$venv/bin:$PATH"
fi
"$python" -c 'import transformers, torch; print(f"transformers {transformers.__version__}, torch {torch.__version__}")'
# No paths given: pytest runs testpaths (tests/, pyproject.toml).
exec "$python" -m pytest -q "${pytest_args[@]}"
