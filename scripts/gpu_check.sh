#!/usr/bin/env bash
# All of depthlab's GPU work in one command (issue #16): the thin shell around
# scripts/gpu_check.py that makes a bare GPU machine ready for it first.
#
#   bash scripts/gpu_check.sh --pack "$OUT"        # on the GPU machine, one call, about 9 min
#   bash scripts/gpu_check.sh --cpu --out /tmp/gc  # CPU mode: tiny, synthetic (what CI runs)
#
# The GPU machine's image has torch but not hydra/omegaconf: when `import hydra` fails,
# the wheels in .gpu/wheels/ (made here by scripts/gpu_bundle.sh, carried with the run)
# are installed, then depthlab itself (editable, no dependencies, nothing downloaded).
# Every argument goes to scripts/gpu_check.py (--help there).
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-$(command -v python3 || command -v python)}"

if ! "$py" -c "import hydra, omegaconf" 2>/dev/null; then
    if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
        echo "gpu_check.sh: installing $(ls .gpu/wheels/*.whl | wc -l) carried wheels from .gpu/wheels"
        "$py" -m pip install -q --no-index --no-deps --no-compile .gpu/wheels/*.whl || exit 1
    else
        echo "gpu_check.sh: hydra is missing and there is no .gpu/wheels/ (run scripts/gpu_bundle.sh)" >&2
        exit 1
    fi
fi
if ! "$py" -c "import depthlab.conf, depthlab.cli" 2>/dev/null; then
    echo "gpu_check.sh: installing depthlab (editable, --no-deps)"
    "$py" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
fi
# the copied tree has no .git: every process (the runs' summaries too) reads the commit
# scripts/gpu_bundle.sh recorded, through DEPTHLAB_GIT (depthlab.machine.git_commit)
if [ ! -e .git ] && [ -z "${DEPTHLAB_GIT:-}" ] && [ -s .gpu/git-commit ]; then
    export DEPTHLAB_GIT="$(cat .gpu/git-commit)"
fi
exec "$py" scripts/gpu_check.py "$@"
