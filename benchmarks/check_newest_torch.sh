#!/usr/bin/env bash
# The newest torch on the package index, checked outside CI (CI tests the torch floor and the newest torch that pip
# installs quickly here; on these machines pip is capped below the index's newest, a CUDA build of several GB).
#
#   bash benchmarks/check_newest_torch.sh                 # the newest torch on the index
#   TORCH=2.15.0 bash benchmarks/check_newest_torch.sh    # a given release
#
# In its own virtualenv (.venv-newest-torch, kept for the next run), with pip's local cap lifted for this script only:
#   1. installs that torch first, as a user who already has it would have it;
#   2. runs README's main command there (`pip install -e ".[vad]"` and a transcription of the sample audio with the
#      bundled demo model) and checks that it left that torch installed;
#   3. installs the test requirements with that torch's companions (tests/versions.py) and runs the version-sensitive
#      tests, which also compare every decoding mode's token ids with the torch floor's run when .test-ids/ has one
#      (`bash tests/run.sh --subset --torch floor` writes it);
#   4. appends the result, dated, to benchmarks/newest_torch.md.
# Run tests/run.sh once first: the system tools and the reference package come from there.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_CONSTRAINT=/dev/null  # lifts the machine's cap (/etc/xdg/pip/constraints.txt) for this script's pips

quiet_pip() {  # pip, without the lines that only say a local index has no such package
  "$@" 2>&1 | { grep -v -e "^WARNING: Location 'file:" -e "^WARNING: Running pip as the 'root' user" || true; }
  return "${PIPESTATUS[0]}"
}

venv=.venv-newest-torch
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
python="$venv/bin/python"
quiet_pip "$python" -m pip install -q --upgrade pip "setuptools>=77"
torch_spec="torch${TORCH:+==$TORCH}"
start=$SECONDS
quiet_pip "$python" -m pip install -q --upgrade "$torch_spec"
torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
echo "== torch $torch_version installed in $((SECONDS - start)) s"

# 2. README's main command, as a user with this torch runs it.
main_command="$(sed -n '/^## The two commands/,/^## /p' README.md | sed -n '/^```bash$/,/^```$/p' | sed -n '2p')"
echo "== README's main command: $main_command"
transcript="$(PATH="$PWD/$venv/bin:$PATH" bash -c "$main_command")"
echo "$transcript"
after="$("$python" -c 'import torch; print(torch.__version__)')"
[ "$after" = "$torch_version" ] || { echo "README's main command replaced torch $torch_version by $after" >&2; exit 1; }
[ -n "$transcript" ] || { echo "README's main command printed no transcript" >&2; exit 1; }

# 3. The version-sensitive tests on this torch.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
python3 -m tests.versions constraints "$torch_version" > "$constraints"
quiet_pip "$python" -m pip install -q -c "$constraints" -e ".[test]"
quiet_pip "$python" -m pip install -q --no-deps "fireredasr==0.0.2"
transformers_version="$("$python" -c 'import transformers; print(transformers.__version__)')"
set +e
PATH="$PWD/$venv/bin:$PATH" "$python" -m pytest -q -m version_sensitive -p no:cacheprovider | tee /tmp/newest_torch_tests.log
status=${PIPESTATUS[0]}
set -e

# 4. The record.
{
  echo
  echo "## torch $torch_version ($(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD))"
  echo
  echo "- transformers $transformers_version, Python $("$python" -c 'import platform; print(platform.python_version())')"
  echo "- README's main command left torch $after installed and printed: $(echo "$transcript" | tail -n 2 | tr '\n' ' ')"
  echo "- version-sensitive tests: $(tail -n 1 /tmp/newest_torch_tests.log) (exit $status)"
} >> benchmarks/newest_torch.md
echo "== recorded in benchmarks/newest_torch.md"
exit "$status"
