#!/usr/bin/env python3
"""Sweep a small Python package on this machine (lxr's ``local`` cluster).

    lxr launch examples/xm/launch_local.py -- --lrs=0.1,0.03 --seeds=2

The launch writes one lxr Experiment (one work unit per point) and returns; ``lxr launch
--wait`` (or a running ``lxr controller run``) runs it. The structure is plain XManager: only
the two import lines differ from an lxm3 script.
"""

from absl import app, flags
from xmanager import xm

from lxr import xm_cluster

_LRS = flags.DEFINE_list("lrs", ["0.1", "0.03"], "Learning rates to sweep.")
_SEEDS = flags.DEFINE_integer("seeds", 2, "Seeds per learning rate.")
_TITLE = flags.DEFINE_string("title", "sweep-demo", "Experiment title.")


def main(_: list[str]) -> None:
    with xm_cluster.create_experiment(experiment_title=_TITLE.value) as experiment:
        executor = xm_cluster.Local(requirements=xm.JobRequirements(cpu=1, ram=512 * xm.MiB))
        spec = xm_cluster.PythonPackage(
            path="py_package", entrypoint=xm_cluster.ModuleName("sweep_demo.train")
        )
        [executable] = experiment.package([xm.Packageable(spec, executor_spec=executor.Spec())])
        for lr in _LRS.value:
            for seed in range(_SEEDS.value):
                experiment.add(xm.Job(executable, executor, args={"lr": float(lr), "seed": seed}))


if __name__ == "__main__":
    app.run(main)
