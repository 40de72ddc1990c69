#!/usr/bin/env bash
# Prepare .gpu/ (git-ignored) for scripts/gpu_check.sh on a bare GPU machine, here,
# where the package registry and ../shared are reachable. The device tool carries
# .gpu/ along when its call names it in `carry`:
#   .gpu/cifar10-jpeg.tar.gz   the project's CIFAR-10 JPEG copy (19 MB; ../shared does not travel)
#   .gpu/wheels/*.whl          what the GPU image lacks: hydra-core, omegaconf, antlr4 (built
#                              from its sdist), hydra-joblib-launcher; pure Python, any 3.x
#
#   bash scripts/gpu_bundle.sh [ARCHIVE]     # ARCHIVE default: ../shared/data/cifar10-jpeg.tar.gz
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
archive="${1:-$root/../shared/data/cifar10-jpeg.tar.gz}"
py="${PYTHON:-$(command -v python3 || command -v python)}"
mkdir -p "$root/.gpu/wheels"

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
echo "gpu_bundle: $(ls "$root"/.gpu/wheels | wc -l) wheels ($pins) and $(ls "$root"/.gpu/*.tar.gz 2>/dev/null | wc -l) archive in .gpu/ ($(du -sh "$root/.gpu" | cut -f1))"
