#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored) for scripts/gpu_check.sh on a bare GPU machine, here,
# where the package registry and ../shared are reachable. The device tool carries
# .gpu/ along when its call names it in `carry`:
#   .gpu/cifar10-jpeg.tar.gz   the project's CIFAR-10 JPEG copy (19 MB; ../shared does not travel)
#   .gpu/wheels/*.whl          what the GPU image lacks: hydra-core, omegaconf, antlr4 (built
#                              from its sdist), hydra-joblib-launcher; pure Python, any 3.x
#   .gpu/git-commit            the commit of the tree that travels (+dirty as depthlab.machine
#                              writes it): the copy there has no .git, and env.json wants it
#
#   bash scripts/gpu_bundle.sh [ARCHIVE]     # ARCHIVE default: ../shared/data/cifar10-jpeg.tar.gz
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
archive="${1:-$root/../shared/data/cifar10-jpeg.tar.gz}"
py="${PYTHON:-$(command -v python3 || command -v python)}"
mkdir -p "$root/.gpu/wheels"

# first, so that it is there (and fresh) even if the wheels fail below
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || true)"
if [ -n "$commit" ] && [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit+dirty"
fi
if [ -n "$commit" ]; then
    echo "$commit" > "$root/.gpu/git-commit"
else
    rm -f "$root/.gpu/git-commit"
    echo "gpu_bundle: no git here: the GPU run's env.json will have no commit" >&2
fi

if [ -f "$archive" ]; then
    install -m 0644 "$archive" "$root/.gpu/cifar10-jpeg.tar.gz"
else
    echo "gpu_bundle: no archive at $archive: the GPU run will have no CIFAR-10 (Fig. 6 skipped)" >&2
fi
# the versions installed here, which the tests pass with
pins=$("$py" - <<'PY'
from importlib.metadata import version
names = ["hydra-core", "omegaconf", "antlr4-python3-runtime", "hydra-joblib-launcher"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
rm -f "$root"/.gpu/wheels/*.whl
"$py" -m pip wheel -q --no-deps -w "$root/.gpu/wheels" $pins
echo "gpu_bundle: commit ${commit:-unknown}, $(ls "$root"/.gpu/wheels | wc -l) wheels ($pins) and $(ls "$root"/.gpu/*.tar.gz 2>/dev/null | wc -l) archive in .gpu/ ($(du -sh "$root/.gpu" | cut -f1))"
