"""Simulate a SLURM launch on one CPU machine: N local processes, fake SLURM_* variables, CPU devices.

    python -m nemotron_jax.cluster.dryrun EXPERIMENT.py --processes 2 --devices-per-process 4 [overrides]

Each process runs `nemotron_jax.cluster.launch --dry-run` exactly as srun would on a node (one task per node,
`--gpus-per-node` = devices per process), with gloo for CPU collectives. The experiment's layout must fit
processes x devices_per_process devices (override mesh sizes, e.g. parallel.tensor=2, to match).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from typing import Optional, Sequence


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def simulated_env(proc: int, processes: int, devices: int, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": ",".join(["localhost"] * processes),
        "SLURM_NTASKS": str(processes), "SLURM_PROCID": str(proc), "SLURM_LOCALID": "0",
        "SLURM_TASKS_PER_NODE": f"1(x{processes})", "NEMOTRON_COORDINATOR_PORT": str(port),
        "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    })
    return env


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nemotron_jax.cluster.dryrun")
    ap.add_argument("experiment")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--devices-per-process", type=int, default=4)
    ap.add_argument("--memory-gb", type=float, default=80.0)
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    port = _free_port()
    cmd = [sys.executable, "-m", "nemotron_jax.cluster.launch", args.experiment, *args.overrides, "--dry-run",
           "--gpus-per-node", str(args.devices_per_process), "--memory-gb", str(args.memory_gb)]
    procs = [subprocess.Popen(cmd, env=simulated_env(i, args.processes, args.devices_per_process, port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(args.processes)]
    codes = []
    for i, p in enumerate(procs):
        try:
            out, _ = p.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        codes.append(p.returncode)
        print(f"--- process {i} (exit {p.returncode})\n{out.strip()}")
    ok = all(c == 0 for c in codes)
    print(f"dry run {'passed' if ok else 'FAILED'}: {args.processes} processes x {args.devices_per_process} devices")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
