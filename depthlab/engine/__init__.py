"""One training run, in the parts `depthlab.train.run` puts together:

    build.py        the device and the network a config names
    precision.py    fp32 / bf16 / fp16 autocast, and what trainer.precision=auto resolves to
    errors.py       the settings a device or launch cannot run, one error class per kind
    setup.py        device, precision, data, model, optimizer, gradient-flow probe, the step
    state.py        what a checkpoint holds (TrainState), saved and restored as one
    step.py         one SGD step: forward, loss, backward, gradient-flow record, optimizer
                    step (the one body the CUDA graph, the timer, the probe and the
                    benchmarks run)
    graphs.py       that step captured as a CUDA graph (trainer.cuda_graphs)
    timing.py       seconds of one step as the run will train (the plan, and `auto`)
    loop.py         epochs: the step loop, metric windows, evaluation, stopping
    distributed.py  one run on several processes: DistributedDataParallel, started by
                    PyTorch's elastic launcher (torchrun's code) or adopted from
                    torchrun / SLURM (submitit)

Nothing here knows of Hydra or Typer; the run directory's files are rundir's.
"""
