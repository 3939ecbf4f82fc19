"""Checkpoints: exact resume (also after SIGTERM), keep-N, params-only loading, restore onto another mesh."""

import os
import signal

import jax
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec

import nemotron_jax.config as C
from nemotron_jax.checkpoint.manager import Checkpointer, load_params
from nemotron_jax.train.loop import run
from nemotron_jax.train.tasks import TokenRows

T = 16
COMPARED = ("loss", "grad_norm", "lr", "accum", "consumed_samples", "count")


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rows.npy"
    np.save(path, np.random.default_rng(0).integers(0, 128, (64, T + 1)))
    return str(path)


def experiment(rows_file, run_dir, **kw):
    """Same shapes/optimizer as tests/test_loop.py (shared compilation cache); a ramp so resume must restore it."""
    base = dict(name="ckpt-test", model=C.toy_tiny(), data=TokenRows(rows_file),
                batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=2, ramp="0:4 12:8"),
                optim=C.OptimConfig(lr=3e-2, warmup_steps=3), steps=24, run_dir=str(run_dir),
                logging=C.LoggingConfig(every=1, progress=False, tensorboard=False),
                checkpoint=C.CheckpointConfig(save_every=2, keep=2))
    return C.Experiment(**{**base, **kw})


def assert_same_run(a, b):
    """Bit-identical metrics per step and parameters."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert {k: ra[k] for k in COMPARED} == {k: rb[k] for k in COMPARED}, ra["step"]


@pytest.fixture(scope="module")
def uninterrupted(rows_file, tmp_path_factory):
    return run(experiment(rows_file, tmp_path_factory.mktemp("full")), stop_after=8)


def test_resume_after_a_crash_is_bit_identical(rows_file, tmp_path, uninterrupted):
    exp = experiment(rows_file, tmp_path)
    first = run(exp, stop_after=5)  # crash after step 5; the newest checkpoint is step 4
    assert first.status == "stopped"
    second = run(exp, stop_after=8)  # resumes from step 4: ramp position, LR position, data position
    assert second.records[0]["step"] == 5
    assert_same_run(first.records[:4] + second.records, uninterrupted.records)
    jax.tree.map(np.testing.assert_array_equal, second.state.params, uninterrupted.state.params)
    jax.tree.map(np.testing.assert_array_equal, second.state.opt_state, uninterrupted.state.opt_state)
    from nemotron_jax.train.metrics import read_jsonl

    # the crashed segment's step-5 line was dropped on resume: one line per step
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == list(range(1, 9))


def test_sigterm_saves_then_resume_is_bit_identical(rows_file, tmp_path, uninterrupted):
    exp = experiment(rows_file, tmp_path)
    handler_before = signal.getsignal(signal.SIGTERM)

    def preempt(step, record):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    first = run(exp, on_step=preempt)
    assert (first.status, first.step) == ("preempted", 3)
    assert 3 in Checkpointer(tmp_path / "checkpoints", read_only=True).all_steps()  # an off-schedule save
    second = run(exp, stop_after=8)
    assert_same_run(first.records + second.records, uninterrupted.records)
    jax.tree.map(np.testing.assert_array_equal, second.state.params, uninterrupted.state.params)
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the loop puts the old handler back


def test_keep_n_and_load_params(rows_file, tmp_path, uninterrupted):
    run(experiment(rows_file, tmp_path), stop_after=8)
    ckpt_dir = tmp_path / "checkpoints"
    assert Checkpointer(ckpt_dir, read_only=True).all_steps() == [6, 8]  # keep=2
    for where in (tmp_path, ckpt_dir, ckpt_dir / "8"):
        params = load_params(where)
        jax.tree.map(np.testing.assert_array_equal, params, uninterrupted.state.params)
    older = load_params(tmp_path, step=6)
    assert not np.array_equal(older["lm_head"]["kernel"], params["lm_head"]["kernel"])
    with pytest.raises(FileNotFoundError, match="no checkpoint 5"):
        load_params(tmp_path, step=5)
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        load_params(tmp_path / "nowhere")


def test_restore_onto_a_different_mesh(rows_file, tmp_path, uninterrupted):
    """A single-device checkpoint read onto a 4x2 mesh (and back) gives the same parameters, laid out as asked."""
    ckpt = Checkpointer(tmp_path, async_save=False)
    ckpt.save(1, uninterrupted.state, data_state={"epoch": 0}, meta={"consumed_samples": 1})
    ckpt.wait()
    mesh = jax.make_mesh((4, 2), ("a", "b"), axis_types=(AxisType.Auto,) * 2)

    def layout(x):  # shard the leading axis over "a" when it divides, else replicate
        spec = PartitionSpec("a") if x.ndim and x.shape[0] % 4 == 0 else PartitionSpec()
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec))

    target = jax.tree.map(layout, uninterrupted.state)
    state, data_state, meta = ckpt.restore(target)
    assert (data_state, meta) == ({"epoch": 0}, {"consumed_samples": 1})
    emb = state.params["embed"]["embedding"]
    assert emb.sharding == NamedSharding(mesh, PartitionSpec("a")) and len(emb.addressable_shards) == 8
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), state,
                 uninterrupted.state)
    # and the sharded state saved again, restored onto one device
    ckpt.save(2, state)
    ckpt.wait()
    back = ckpt.restore_params(2)
    assert back["embed"]["embedding"].sharding.device_set == {jax.local_devices()[0]}
    jax.tree.map(np.testing.assert_array_equal, back, uninterrupted.state.params)
    ckpt.close()


def test_sharded_run_resumes_on_one_device(rows_file, tmp_path, uninterrupted):
    """2 steps on a data=2 x tensor=2 mesh (loss == single device), then resumed on one device from its checkpoint."""
    sharded = run(experiment(rows_file, tmp_path, parallel=C.ParallelConfig(data=2, tensor=2)), stop_after=2)
    assert sharded.runtime.num_devices == 4 and sharded.runtime.data_parallel == 2
    resumed = run(experiment(rows_file, tmp_path), stop_after=4)  # checkpoint 2 read onto one device
    assert [r["step"] for r in resumed.records] == [3, 4]
    got = sharded.records + resumed.records
    want = uninterrupted.records[:4]
    assert [r["consumed_samples"] for r in got] == [r["consumed_samples"] for r in want]
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in want], rtol=1e-5)


def test_sharded_run_resumes_sharded(rows_file, tmp_path, uninterrupted):
    """Preempted on a data=2 x tensor=2 mesh, resumed on the same mesh: the run goes on as if never stopped."""
    layout = C.ParallelConfig(data=2, tensor=2)
    first = run(experiment(rows_file, tmp_path, parallel=layout), stop_after=2)
    resumed = run(experiment(rows_file, tmp_path, parallel=layout), stop_after=4)
    assert [r["step"] for r in resumed.records] == [3, 4] and resumed.runtime.num_devices == 4
    got = first.records + resumed.records
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in uninterrupted.records[:4]], rtol=1e-5)


@pytest.mark.slow
def test_resume_with_the_grain_pipeline_sees_the_same_batches(tmp_path):
    """TextData (toy-world blend -> tokenize -> pack -> grain): a crashed-and-resumed run == an uninterrupted one."""
    from nemotron_jax.data.tokenizer import Tokenizer
    from nemotron_jax.data.toyworld.export import pretrain_data, source_texts

    Tokenizer.train(source_texts("english", 30_000) + source_texts("code", 10_000), vocab_size=384).save(
        tmp_path / "tok.model")
    world = C.ToyWorldConfig(pretrain_chars=20_000)
    exp = C.Experiment(name="grain", model=C.toy_tiny(vocab_size=384),
                       data=pretrain_data(world, str(tmp_path / "tok.model")),
                       batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=4), steps=6,
                       optim=C.OptimConfig(lr=3e-2, warmup_steps=2),
                       logging=C.LoggingConfig(every=1, progress=False, tensorboard=False),
                       checkpoint=C.CheckpointConfig(save_every=3))
    full = run(exp.replace(run_dir=str(tmp_path / "full")))
    run(exp.replace(run_dir=str(tmp_path / "split")), stop_after=4)  # newest checkpoint: step 3
    resumed = run(exp.replace(run_dir=str(tmp_path / "split")))
    assert_same_run(full.records[3:], resumed.records)
    jax.tree.map(np.testing.assert_array_equal, resumed.state.params, full.state.params)


def test_init_from_loads_params_with_a_fresh_optimizer(rows_file, tmp_path, uninterrupted):
    from nemotron_jax.train.tasks import RowIterator, next_token_loss

    exp = experiment(rows_file, tmp_path, init_from=str(uninterrupted.run_dir))
    result = run(exp, stop_after=1)
    # step 1's loss is the loaded parameters' loss on the first 4 rows (2 microbatches of 2)
    it = RowIterator(np.load(rows_file), rows=4, seed=exp.seed)
    loss_sum, aux = next_token_loss(exp.model)(uninterrupted.state.params, next(it))
    assert result.records[0]["loss"] == pytest.approx(float(loss_sum / aux["count"]), rel=1e-5)
    assert result.records[0]["lr"] == pytest.approx(1e-2)  # warmup restarts: 3e-2 * 1/3


def test_data_states_are_kept_per_process():
    from nemotron_jax.checkpoint.manager import _gather_json, _own_data_state

    assert _gather_json({"index": 3}) == [{"index": 3}]  # one process here; several are all-gathered
    assert _own_data_state({"per_process": [{"index": 3}]}, step=7) == {"index": 3}
    with pytest.raises(ValueError, match="checkpoint 7 holds data-iterator states of 2 processes but this run has 1"):
        _own_data_state({"per_process": [{}, {}]}, step=7)
