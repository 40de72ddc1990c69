#!/usr/bin/env bash
# Reproduce results/cifar10-degradation/, results/cifar10-gradflow/ and
# results/cifar10-fulldata/ from a clean
# checkout plus the CIFAR-10 data (see results/README.md for what each holds).
#
#   bash scripts/reproduce_cifar10.sh [RUNS_DIR]
#
# RUNS_DIR  where the run directories go (default: runs/ in the repository root, where
#           the script runs so that the commands the reports record read as in the README).
#           The sweeps resume: kill this script at any moment and run it again.
# Data:     data=cifar10 looks in $DEPTHLAB_DATA, else ~/.cache/depthlab/data; on this
#           project's machines `bash scripts/unpack_cifar.sh` puts the JPEG copy there,
#           elsewhere the official release is downloaded on first use.
# Threads:  JOBS runs at once (default 2), THREADS torch threads each (default 1): on a
#           2-core CPU two one-thread runs side by side beat one two-thread run.
# Time:     about 70 minutes for the degradation sweep (16 runs), 10 for the
#           gradient-flow sweep (8 runs) and 35 for the full-data comparison (4 runs)
#           on a 2-core x86_64 CPU.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
runs="runs"
if [ -n "${1:-}" ]; then
    runs="$(realpath -m "$1")"
fi
cd "$root"
jobs="${JOBS:-2}"
threads="${THREADS:-1}"
if [ -d "${DEPTHLAB_DATA:-$HOME/.cache/depthlab/data}/cifar10-jpeg" ]; then
    note="Real CIFAR-10 from depthlab's JPEG copy (every image re-encoded as JPEG quality 75, so errors run a little above those on the official release); class-balanced training subset as in the settings line."
else
    note="Real CIFAR-10 (the official release); class-balanced training subset as in the settings line."
fi
launcher=(trainer.threads="$threads" paths.runs_dir="$runs")
if [ "$jobs" -gt 1 ]; then
    launcher+=(hydra/launcher=joblib hydra.launcher.n_jobs="$jobs")
fi

degradation=(depthlab compare plain residual experiment=cifar10_degradation seed=0,1
             sweep.name=cifar10-degradation)
gradflow=(depthlab compare plain residual experiment=cifar10_gradflow sweep.name=cifar10-gradflow)
fulldata=(depthlab compare plain residual experiment=cifar10_degradation depth=20,56
          data.train_subset=null trainer.epochs=4 sweep.name=cifar10-degradation-fulldata)

"${degradation[@]}" "${launcher[@]}"
"${gradflow[@]}" "${launcher[@]}"
"${fulldata[@]}" "${launcher[@]}"

depthlab report "$runs/cifar10-degradation" --out results/cifar10-degradation \
    --title "Degradation on CIFAR-10: plain vs residual, depths 20-56" \
    --command "${degradation[*]}" --note "$note"
depthlab report "$runs/cifar10-gradflow" "$runs/cifar10-degradation" \
    --out results/cifar10-gradflow \
    --title "Gradient flow on CIFAR-10 with and without batch norm" \
    --heatmap-run "$runs/cifar10-gradflow/plain-56-s0" \
    --command "${gradflow[*]}" --command "${degradation[*]}" --note "$note"
depthlab report "$runs/cifar10-degradation-fulldata" --out results/cifar10-fulldata \
    --title "Degradation on CIFAR-10, all 50,000 training images, 4 epochs: plain vs residual at 20 and 56" \
    --command "${fulldata[*]}" --note "${note%%; class-balanced*}; all 50,000 training images, one seed."
