"""Read a SLURM allocation from the environment and start multi-host JAX on it.

    srun (one task per GPU or per node)  ->  DistributedSpec.from_env()  ->  jax.distributed.initialize(...)

The coordinator is process 0 on the first node of the step's node list; its port comes from
`NEMOTRON_COORDINATOR_PORT` or is derived from the job id so concurrent jobs on a node do not collide.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping, Optional


class LaunchError(RuntimeError):
    """The allocation does not match what the launch asked for; the message says what to change."""


def expand_hostlist(spec: str) -> list[str]:
    """SLURM's compressed host list -> hosts: "gpu[01-03,07],login1" -> [gpu01, gpu02, gpu03, gpu07, login1]."""
    hosts: list[str] = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", spec):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            lo, _, hi = part.partition("-")
            width = len(lo)
            for i in range(int(lo), int(hi or lo) + 1):
                hosts.append(f"{prefix}{i:0{width}d}")
    return hosts


def _tasks_per_node(value: str) -> int:
    """"8(x4)" or "8,8" -> 8 (mixed counts per node are rejected: every node must look the same)."""
    counts = set()
    for part in value.split(","):
        m = re.fullmatch(r"(\d+)(?:\(x\d+\))?", part.strip())
        if not m:
            raise LaunchError(f"cannot read SLURM_TASKS_PER_NODE={value!r}")
        counts.add(int(m.group(1)))
    if len(counts) != 1:
        raise LaunchError(f"SLURM_TASKS_PER_NODE={value!r}: every node must run the same number of tasks")
    return counts.pop()


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
    coordinator: str  # host:port of process 0
    num_processes: int
    process_id: int
    local_device_ids: Optional[tuple[int, ...]]  # None: all of the node's devices (one process per node)
    nodes: int
    tasks_per_node: int

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, *, gpus_per_node: int = 8) -> "DistributedSpec":
        env = os.environ if env is None else env
        try:
            nodelist = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
            ntasks, procid = int(env["SLURM_NTASKS"]), int(env["SLURM_PROCID"])
        except KeyError as e:
            raise LaunchError(f"{e.args[0]} is not set: run under srun inside an sbatch allocation "
                              f"(or use `python -m nemotron_jax.cluster.dryrun` to simulate one)") from None
        hosts = expand_hostlist(nodelist)
        per_node = _tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
                                   or str(ntasks // len(hosts)))
        if per_node * len(hosts) != ntasks:
            raise LaunchError(f"{ntasks} tasks over {len(hosts)} nodes is not {per_node} per node")
        if per_node == 1:
            local = None
        elif per_node == gpus_per_node:
            local = (int(env.get("SLURM_LOCALID", procid % per_node)),)
        else:
            raise LaunchError(f"{per_node} tasks per node with {gpus_per_node} GPUs per node: use one task per "
                              f"GPU (--ntasks-per-node={gpus_per_node}) or one per node (--ntasks-per-node=1)")
        port = int(env.get("NEMOTRON_COORDINATOR_PORT", 12000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        return cls(coordinator=f"{hosts[0]}:{port}", num_processes=ntasks, process_id=procid,
                   local_device_ids=local, nodes=len(hosts), tasks_per_node=per_node)

    @property
    def devices_per_process(self) -> Optional[int]:
        return None if self.local_device_ids is None else len(self.local_device_ids)


def initialize(spec: DistributedSpec) -> None:
    """jax.distributed.initialize for this process (a no-op for a single process)."""
    import jax

    if spec.num_processes == 1:
        return
    kw = {} if spec.local_device_ids is None else {"local_device_ids": list(spec.local_device_ids)}
    jax.distributed.initialize(coordinator_address=spec.coordinator, num_processes=spec.num_processes,
                               process_id=spec.process_id, **kw)
