#!/usr/bin/env bash
# Reproduce results/cifar10-degradation/, results/cifar10-gradflow/,
# results/cifar10-fulldata/, results/cifar10-init/, results/cifar10-normfree/,
# results/cifar10-bf16/, results/cifar10-blocks/ and results/cifar10-fig6/ from a clean
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
# Time:     from each sweep's first run start to its last run end, as the runs recorded it
#           (results/<folder>/summary.csv): 85 min for the degradation sweep (16 runs,
#           three sittings, the pauses included), 9 for the gradient-flow sweep (8 runs)
#           and 33 for the full-data comparison (4 runs) on a 2-core x86_64 CPU; 102 for
#           the start ablation (16 runs, Intel Xeon VM), 73 for the norm-free sweep
#           (12 runs, the same VM), 92 for the bf16 comparison (16 runs, its two arms one
#           after the other, AMD EPYC VM, the cores shared with other work), 42 for the
#           block ablation (12 runs, its two sweeps one after the other, the same VM, idle)
#           and 51 for the Fig. 6 recipe (16 runs, the same VM, idle): 487 min, about
#           8.1 h, in all.
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
# How the residual net starts (issue #17): residual nets with each start, then the plain
# control (warm-up only: a plain net has no residual branch to zero-initialise), into one sweep
# directory (two sweeps: the control is not a product of the residual grid).
init=(depthlab sweep experiment=cifar10_init arch=residual seed=0,1 start=paper,zero_init,warmup
      depth=20,56 sweep.name=cifar10-init)
init_plain=(depthlab sweep experiment=cifar10_init arch=plain seed=0,1 start=warmup depth=20,56
            sweep.name=cifar10-init)
# Norm-free residual nets (no batch norm), the same budget; compared with start=paper above.
normfree=(depthlab sweep experiment=cifar10_normfree arch=residual seed=0,1
          arch.branch=skipinit,rezero,fixup depth=20,56 sweep.name=cifar10-normfree)
# Does bf16 change the science (issue #25)? The degradation budget at 20 and 56, once in fp32
# (the reference) and once with the CPU fast path, into one sweep directory.
bf16_ref=(depthlab compare plain residual experiment=cifar10_bf16 depth=20,56 seed=0,1
          trainer.precision=fp32 trainer.channels_last=false sweep.name=cifar10-bf16)
bf16_fast=(depthlab compare plain residual experiment=cifar10_bf16 depth=20,56 seed=0,1
           trainer.precision=bf16 trainer.channels_last=true sweep.name=cifar10-bf16)
# The block ablation: the 2015 post-activation and 2016 pre-activation residual blocks at 20
# and 56 with the warm-up start, and the plain twins once (the two blocks' plain twins are one
# function), into one sweep directory.
blocks=(depthlab sweep experiment=cifar10_blocks arch=residual arch.preact=false,true depth=20,56
        seed=0,1 sweep.name=cifar10-blocks)
blocks_plain=(depthlab sweep experiment=cifar10_blocks arch=plain depth=20,56 seed=0,1
              sweep.name=cifar10-blocks)
# Both halves of the paper's Fig. 6 on this CPU (issue #24): plain and residual at 20, 32,
# 44, 56, 2 seeds, the recipe of conf/experiment/cifar10_fig6.yaml.
fig6=(depthlab compare plain residual experiment=cifar10_fig6 seed=0,1 sweep.name=cifar10-fig6)

"${degradation[@]}" "${launcher[@]}"
"${gradflow[@]}" "${launcher[@]}"
"${fulldata[@]}" "${launcher[@]}"
"${init[@]}" "${launcher[@]}"
"${init_plain[@]}" "${launcher[@]}"
"${normfree[@]}" "${launcher[@]}"
"${bf16_ref[@]}" "${launcher[@]}"
"${bf16_fast[@]}" "${launcher[@]}"
"${blocks[@]}" "${launcher[@]}"
"${blocks_plain[@]}" "${launcher[@]}"
"${fig6[@]}" "${launcher[@]}"

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
depthlab report "$runs/cifar10-init" --out results/cifar10-init \
    --title "Does the deeper residual net trail because of how it starts? Paper init, zero-init branches, lr warm-up; residual 20 and 56" \
    --command "${init[*]}" --command "${init_plain[*]}" --note "$note"
depthlab report "$runs/cifar10-normfree" "$runs"/cifar10-init/residual-*-paper-s* \
    --out results/cifar10-normfree \
    --title "Norm-free residual nets (SkipInit, ReZero, Fixup) vs batch norm, residual 20 and 56" \
    --command "${normfree[*]}" --command "${init[*]}" \
    --note "$note The batch-norm rows are the start=paper runs of results/cifar10-init."
depthlab report "$runs/cifar10-bf16" --out results/cifar10-bf16 \
    --title "Does bf16 change the science? fp32 vs bf16 + channels_last, plain and residual 20 and 56" \
    --command "${bf16_ref[*]}" --command "${bf16_fast[*]}" \
    --note "$note Both arms on the same machine; the processor and the numerics of each run are in summary.csv."
depthlab report "$runs/cifar10-blocks" --out results/cifar10-blocks \
    --title "Does the block decide whether depth helps? 2015 post-activation vs 2016 pre-activation residual blocks, 20 and 56, warm-up start" \
    --command "${blocks[*]}" --command "${blocks_plain[*]}" --note "$note"
depthlab report "$runs/cifar10-fig6" --out results/cifar10-fig6 \
    --title "Fig. 6 on a CPU, the best recipe found: plain and residual at 20, 32, 44, 56, 624 steps on 5,000 images without augmentation" \
    --command "${fig6[*]}" \
    --note "$note No augmentation, pre-activation residual blocks, a 1-epoch lr warm-up, bf16 autocast: every departure from the paper's recipe, the recipes tried before it and what they gave are in conf/experiment/cifar10_fig6.yaml's header."
