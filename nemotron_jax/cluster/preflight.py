"""Pre-flight: checks that fail a cluster job in seconds, before it burns node-hours compiling or loading.

    devices      every process sees the devices it was given; the job sees nodes x GPUs-per-node in all
    mesh         the experiment's layout forms a mesh on that many devices (divisibility, -1 inference)
    memory       `plan` says params + grads + optimizer + activations fit the device memory
    checkpoint   the run folder is writable (resume after requeue needs it)
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any, Optional

from nemotron_jax.config import ConfigError


class PreflightError(RuntimeError):
    """One or more checks failed; the message lists each with what to change."""


@dataclasses.dataclass
class Check:
    name: str
    ok: bool
    detail: str


def check_devices(expected_total: int, expected_local: Optional[int]) -> Check:
    import jax

    total, local = jax.device_count(), jax.local_device_count()
    problems = []
    if total != expected_total:
        problems.append(f"the job sees {total} devices, the allocation promises {expected_total}")
    if expected_local is not None and local != expected_local:
        problems.append(f"process {jax.process_index()} sees {local} local devices, expected {expected_local} "
                        f"(check CUDA_VISIBLE_DEVICES / --gpus-per-task)")
    return Check("devices", not problems, "; ".join(problems) or f"{total} devices, {local} per process")


def check_plan(exp: Any, num_devices: int, memory_gb: float) -> list[Check]:
    from nemotron_jax.parallel.plan import plan

    try:
        p = plan(exp.model, exp.parallel, num_devices=num_devices, global_batch=exp.batch.global_batch,
                 seq_len=exp.batch.seq_len, micro_batch=exp.batch.micro_batch, device_memory_gb=memory_gb)
    except ConfigError as e:
        return [Check("mesh", False, str(e))]
    mesh = Check("mesh", True, ", ".join(f"{k}={v}" for k, v in p.layout.items()))
    need = p.params + p.grads + p.optimizer + p.activations
    memory = Check("memory", p.fits, f"{need / 2**30:.1f} GiB of {memory_gb:.0f} GB per device"
                   + ("" if p.fits else ": shard more (fsdp/tensor/pipeline), raise remat, or lower micro_batch"))
    return [mesh, memory]


def check_writable(path: str) -> Check:
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as e:
        return Check("checkpoint", False, f"{path} is not writable: {e}")
    return Check("checkpoint", True, f"{path} writable")


def run_preflight(exp: Any, *, num_devices: int, local_devices: Optional[int], memory_gb: float,
                  check_live_devices: bool = True) -> list[Check]:
    """All checks; raises PreflightError listing the failures."""
    checks = [check_devices(num_devices, local_devices)] if check_live_devices else []
    checks += check_plan(exp, num_devices, memory_gb)
    checks.append(check_writable(exp.out_dir))
    failed = [c for c in checks if not c.ok]
    if failed:
        raise PreflightError("pre-flight failed:\n" + "\n".join(f"  {c.name}: {c.detail}" for c in failed))
    return checks
