"""Cluster launch: SLURM environment parsing, pre-flight failures, and a 2-process CPU dry run of a real launch."""

import subprocess
import sys
from pathlib import Path

import pytest

from nemotron_jax.cluster.preflight import check_plan, check_writable
from nemotron_jax.cluster.slurm import DistributedSpec, LaunchError, expand_hostlist

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_experiment.py"


def test_expand_hostlist():
    assert expand_hostlist("gpu[01-03,07],login1") == ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    assert expand_hostlist("n[8-10]") == ["n8", "n9", "n10"]
    assert expand_hostlist("a,b") == ["a", "b"]


def test_spec_one_process_per_gpu():
    env = {"SLURM_JOB_NODELIST": "node[001-004]", "SLURM_NTASKS": "32", "SLURM_PROCID": "13",
           "SLURM_LOCALID": "5", "SLURM_TASKS_PER_NODE": "8(x4)", "SLURM_JOB_ID": "1001"}
    spec = DistributedSpec.from_env(env)
    assert spec.coordinator == "node001:13001" and spec.num_processes == 32 and spec.process_id == 13
    assert spec.local_device_ids == (5,) and spec.nodes == 4


def test_spec_one_process_per_node():
    env = {"SLURM_JOB_NODELIST": "node[001-002]", "SLURM_NTASKS": "2", "SLURM_PROCID": "1",
           "SLURM_TASKS_PER_NODE": "1(x2)", "NEMOTRON_COORDINATOR_PORT": "5000"}
    spec = DistributedSpec.from_env(env)
    assert spec.local_device_ids is None and spec.coordinator == "node001:5000"


def test_spec_errors_say_what_to_do():
    with pytest.raises(LaunchError, match="run under srun"):
        DistributedSpec.from_env({})
    with pytest.raises(LaunchError, match="one task per GPU"):
        DistributedSpec.from_env({"SLURM_JOB_NODELIST": "a", "SLURM_NTASKS": "4", "SLURM_PROCID": "0",
                                  "SLURM_TASKS_PER_NODE": "4"})


def test_preflight_plan_rejects_a_layout_that_cannot_work():
    from nemotron_jax.train.cli import load_experiment_file

    exp = load_experiment_file(FIXTURE)
    mesh, memory = check_plan(exp, num_devices=8, memory_gb=80)
    assert mesh.ok and memory.ok
    bad = exp.replace(parallel=exp.parallel.replace(tensor=3))
    (mesh,) = check_plan(bad, num_devices=8, memory_gb=80)
    assert not mesh.ok and "tensor" in mesh.detail
    assert not check_plan(exp, num_devices=8, memory_gb=1e-6)[1].ok  # nothing fits in a kilobyte


def test_unwritable_run_folder_is_caught(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert not check_writable(str(blocker / "run")).ok


@pytest.mark.slow
def test_dry_run_two_simulated_processes():
    out = subprocess.run([sys.executable, "-m", "nemotron_jax.cluster.dryrun", str(FIXTURE), "--processes", "2",
                          "--devices-per-process", "4", "--timeout", "240"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("all-reduce over 8 devices ok") == 2
    assert "[preflight] mesh" in out.stdout


def test_train_cli_runs_every_rpo_iteration(monkeypatch):
    """`nemotron-jax train rpo.py` (and the cluster launcher) must run all RPO iterations, not one."""
    from nemotron_jax import config as C
    from nemotron_jax.train import alignment, cli, loop

    calls = []
    monkeypatch.setattr(alignment, "run_rpo", lambda exp: calls.append(("rpo", exp.loss.iterations)) or ["r1", "r3"])
    monkeypatch.setattr(loop, "run", lambda exp: calls.append(("run", type(exp.loss).__name__)) or "r")
    exp = cli.load_experiment_file(FIXTURE)
    assert cli.run_experiment(exp.replace(loss=C.RPO(iterations=3))) == "r3"
    assert cli.run_experiment(exp.replace(loss=C.RPO(iterations=1))) == "r"
    assert calls == [("rpo", 3), ("run", "RPO")]
