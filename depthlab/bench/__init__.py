"""What the benchmarks share (scripts/benchmark.py, gpu_benchmark.py and gpu_check.py are thin command lines over it).

    rows       Row, make_row, skipped_row, the markdown and terminal tables
    timing     interleaved reps, a device-synchronising clock, run()'s logged windows
    nets       configs from overrides, run()'s batches, fresh models, run() timed
    reference  the baselines, written by hand: the tutorial loop, torchvision's models and loader
    results    the machine block (from depthlab.machine), the command, the markdown pages
    peak       the processor's peak FLOP/s and achieved training GFLOP/s
    cpu, probe_cost, feeding, memory, speed     the CPU benchmark's rows
    gpu        the GPU benchmark's rows
    fig6, check                                 the GPU check: Fig. 6's length and report, the phases

Nothing is imported here: `python -m depthlab.bench.memory` runs a module of this package as a
fresh process, and each script imports only what it uses.
"""
