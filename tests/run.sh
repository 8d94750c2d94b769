#!/usr/bin/env bash
# The test command: sets up everything the tests need on a fresh machine, then runs pytest.
#
#   bash tests/run.sh                              # every test (slow ones too): newest transformers and torch
#   bash tests/run.sh --fast                       # the fast default suite (what plain `pytest` runs)
#   bash tests/run.sh --subset                     # only the version-sensitive tests (-m version_sensitive)
#   bash tests/run.sh --transformers lowest        # on a given transformers release (or `lowest`, pyproject's floor)
#   bash tests/run.sh --torch floor                # on a given torch release (or `floor`, pyproject's floor)
#   bash tests/run.sh -- -k pipeline -x            # anything after -- goes to pytest
#
# The newest releases go into this python (torch: the newest pip offers, never a downgrade of an installed newer
# one). Another transformers or torch goes into its own virtualenv on top of it (.venv-transformers-X-torch-Y), with
# only those packages and the companions of that torch (tests/versions.py) replaced. Also installed: the system tools
# (espeak-ng, sox, ffmpeg, chromium), the project with its `test` extra, and the reference packages `fireredasr==0.0.2`
# and `fireredvad==0.0.2` (the oracles, with --no-deps: fireredasr's declared modelscope and cn2an are not needed).
# Steps already satisfied are quick.
set -euo pipefail
cd "$(dirname "$0")/.."

transformers_version=""
torch_version=""
markers="slow or not slow"
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --transformers) transformers_version="${2:?--transformers needs a version (or 'lowest')}"; shift 2 ;;
    --torch) torch_version="${2:?--torch needs a version (or 'floor')}"; shift 2 ;;
    --fast) markers="not slow"; shift ;;
    --subset) markers="version_sensitive"; shift ;;
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

quiet_pip() {  # pip, without the lines that only say a local index has no such package
  "$@" 2>&1 | { grep -v -e "^WARNING: Location 'file:" -e "^WARNING: Running pip as the 'root' user" || true; }
  return "${PIPESTATUS[0]}"
}

# torch: the newest release pip offers, unless an installed one is at least as new (pip never downgrades it here).
# A stamp of what was installed for this pyproject.toml skips these steps (each pip resolution takes a while) when
# nothing changed since, as for the later stages of CI.
floor="$(python3 -m tests.versions torch-floor)"
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
stamp=".venv-stamp"
installed() {  # what the stamp records: this pyproject and version rules, and the torch installed now
  echo "$(cat pyproject.toml tests/versions.py | sha256sum | cut -c1-16) $(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
}
wanted="$(installed)"
# (The package must also be this checkout's: another clone's editable install points python3 elsewhere.)
here="$(python3 -c 'import pathlib, transformers_fireredasr as p; print(pathlib.Path(p.__file__).parents[2])' 2>/dev/null || true)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || [ "$here" != "$PWD" ]; then
  quiet_pip python3 -m pip install -q --upgrade --upgrade-strategy only-if-needed "torch>=$floor"
  # That torch and its companions stay as they are while the rest resolves.
  python3 -m tests.versions constraints "$(python3 -c 'import torch; print(torch.__version__)')" > "$constraints"
  quiet_pip python3 -m pip install -q -c "$constraints" -e ".[test]"
  quiet_pip python3 -m pip install -q --no-deps "fireredasr==0.0.2"
  # FireRedVAD's oracle: its kaldiio and kaldi-native-fbank come with the test extra; soundfile (for wav paths, which
  # the tests never give it) and textgrid (its command lines) are not needed.
  quiet_pip python3 -m pip install -q --no-deps "fireredvad==0.0.2"
  wanted="$(installed)"
  echo "$wanted" > "$stamp"
fi
installed_torch="$(python3 -c 'import torch; print(torch.__version__)')"
python3 -m tests.versions constraints "$installed_torch" > "$constraints"

# Each run leaves the token ids of every decoding mode in .test-ids/ for runs on other releases to compare with; a
# run on the newest releases starts that comparison afresh.
[ -n "$transformers_version$torch_version" ] || rm -rf .test-ids
python=python3
if [ "$transformers_version" = lowest ]; then transformers_version="$(python3 -m tests.versions lowest-transformers)"; fi
if [ "$torch_version" = floor ]; then torch_version="$floor"; fi
if [ -n "$transformers_version$torch_version" ]; then
  # A virtualenv on top of the packages above, with only the named releases replaced (and the project's scripts).
  venv=".venv-transformers-${transformers_version:-newest}-torch-${torch_version:-newest}"
  [ -x "$venv/bin/python" ] || python3 -m venv --system-site-packages "$venv"
  pins=("setuptools>=77")  # the venv's own setuptools (seeded by ensurepip) predates the SPDX license field
  [ -z "$transformers_version" ] || pins+=("transformers==$transformers_version")
  if [ -n "$torch_version" ]; then
    python3 -m tests.versions constraints "$torch_version" > "$constraints"
    pins+=(-c "$constraints" "torch==$torch_version" torchao torchcodec)
  else
    pins+=(-c "$constraints")
  fi
  venv_wanted="$wanted ${pins[*]} $(cat "$constraints" | tr '\n' ' ')"
  if [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$venv_wanted" ]; then
    quiet_pip "$venv/bin/python" -m pip install -q "${pins[@]}"
    quiet_pip "$venv/bin/python" -m pip install -q --no-deps -e .
    echo "$venv_wanted" > "$venv/.stamp"
  fi
  python="$venv/bin/python"
  export PATH="$PWD/$venv/bin:$PATH"
fi
"$python" -c 'import transformers, torch; print(f"transformers {transformers.__version__}, torch {torch.__version__}")'
# Tests run in parallel processes (pytest-xdist), one per core up to 4 (TEST_WORKERS overrides; 1 runs in this
# process): much of the suite waits on servers, subprocesses and real-time streams, or runs single-threaded Python,
# so a second process on the second core nearly halves the wall time. Each file stays on one worker (loadfile), so
# a file's module fixtures (servers, models) start once.
workers="${TEST_WORKERS:-$(python3 -c 'import os; print(min(len(os.sched_getaffinity(0)), 4))')}"
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadfile)
  # torch's OpenMP threads spin while they wait for work; with several processes on the same cores that spinning
  # takes the cores from the others (a test's training ran four times slower with two workers), so they sleep.
  export OMP_WAIT_POLICY=PASSIVE
fi
# No paths given: pytest runs testpaths (tests/, pyproject.toml); with -m, nothing is left out by default.
exec "$python" -m pytest -q -m "$markers" "${parallel[@]}" "${pytest_args[@]}"
