"""One training run, in the parts `depthlab.train.run` puts together:

    setup.py        device, precision, data, model, optimizer, gradient-flow probe
    state.py        what a checkpoint holds (TrainState), saved and restored as one
    step.py         one SGD step: forward, backward, gradient-flow record, optimizer step
    loop.py         epochs: the step loop, metric windows, evaluation, stopping
    distributed.py  one run on several processes: DistributedDataParallel, started by
                    PyTorch's elastic launcher (torchrun's code) or adopted from
                    torchrun / SLURM (submitit)

Nothing here knows of Hydra or Typer; the run directory's files are rundir's.
"""
