"""The per-task entry point that `launch/slurm.sbatch` runs under srun on every node.

    python -m nemotron_jax.cluster.launch EXPERIMENT.py [key=value ...] [--gpus-per-node 8] [--memory-gb 80]
                                          [--dry-run]

    spec = DistributedSpec.from_env()          # SLURM_* -> coordinator, process id, local devices
    jax.distributed.initialize(spec)
    preflight(experiment at nodes x gpus_per_node devices)   # fail fast, before any compile
    --dry-run: one cross-process all-reduce, print the checks, exit 0
    else:      train (resumes from the run folder's last checkpoint after a requeue)
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from nemotron_jax.cluster.preflight import PreflightError, run_preflight
from nemotron_jax.cluster.slurm import DistributedSpec, LaunchError, initialize


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m nemotron_jax.cluster.launch")
    ap.add_argument("experiment")
    ap.add_argument("overrides", nargs="*", help="dotted key=value overrides, as for `nemotron-jax train`")
    ap.add_argument("--gpus-per-node", type=int, default=8)
    ap.add_argument("--memory-gb", type=float, default=80.0)
    ap.add_argument("--dry-run", action="store_true", help="validate the launch, then exit without training")
    return ap


def _collective_check() -> float:
    """psum of ones over every device of every process: proves the processes really formed one job."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((jax.device_count(),), ("all",), axis_types=(jax.sharding.AxisType.Auto,))
    sharding = NamedSharding(mesh, PartitionSpec("all"))
    local = [jax.device_put(np.ones((1,), np.float32), d) for d in jax.local_devices()]
    x = jax.make_array_from_single_device_arrays((jax.device_count(),), sharding, local)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, PartitionSpec()))(x)
    return float(np.asarray(total.addressable_data(0)))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    from nemotron_jax.train.cli import apply_overrides, load_experiment_file

    try:
        spec = DistributedSpec.from_env(gpus_per_node=args.gpus_per_node)
        exp = apply_overrides(load_experiment_file(args.experiment), args.overrides)
        initialize(spec)
        import jax

        checks = run_preflight(exp, num_devices=spec.nodes * args.gpus_per_node,
                               local_devices=spec.devices_per_process or args.gpus_per_node,
                               memory_gb=args.memory_gb)
    except (LaunchError, PreflightError) as e:
        print(f"[launch] {e}", file=sys.stderr)
        return 3
    if jax.process_index() == 0:
        for c in checks:
            print(f"[preflight] {c.name:<10} ok  {c.detail}")
    if args.dry_run:
        total = _collective_check()
        if total != jax.device_count():
            print(f"[launch] all-reduce over {jax.device_count()} devices gave {total}", file=sys.stderr)
            return 4
        print(f"[dry-run] process {jax.process_index()}/{jax.process_count()}: all-reduce over {int(total)} "
              f"devices ok")
        return 0
    from nemotron_jax.train.cli import run_experiment

    result = run_experiment(exp)
    return 0 if result.status == "finished" else 3  # 3: preempted, the sbatch script requeues


if __name__ == "__main__":
    sys.exit(main())
