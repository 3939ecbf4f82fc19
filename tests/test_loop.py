"""The training loop: ramp compiles, accumulation == big batch, length in samples, non-finite stop, metrics files."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nemotron_jax.config as C
from nemotron_jax.train.loop import NonFiniteError, run
from nemotron_jax.train.tasks import RowIterator, Task, TokenRows, make_task, next_token_loss

T = 16


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rows.npy"
    np.save(path, np.random.default_rng(0).integers(0, 128, (64, T + 1)))
    return str(path)


def experiment(rows_file, run_dir, **kw):
    """Tests share shapes, length and optimizer so the persistent compilation cache serves most compiles;
    shorter runs use run(..., stop_after=k)."""
    base = dict(name="loop-test", model=C.toy_tiny(), data=TokenRows(rows_file),
                batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=2, ramp="0:4 12:8"),
                optim=C.OptimConfig(lr=3e-2, warmup_steps=3), steps=24, run_dir=str(run_dir),
                logging=C.LoggingConfig(every=1, progress=False, tensorboard=False),
                checkpoint=C.CheckpointConfig(save_every=100))
    return C.Experiment(**{**base, **kw})


def test_ramp_compiles_once_per_accumulation_count_and_consumes_samples(rows_file, tmp_path):
    result = run(experiment(rows_file, tmp_path), stop_after=6)
    assert [r["accum"] for r in result.records] == [2, 2, 2, 4, 4, 4]
    assert [r["consumed_samples"] for r in result.records] == [4, 8, 12, 20, 28, 36]
    assert result.runtime.compiled_steps() == 2


def test_length_in_samples_and_tokens_goes_through_the_ramp(rows_file, tmp_path):
    by_samples = experiment(rows_file, tmp_path, steps=None, train_samples=36)
    from nemotron_jax.train.loop import total_steps
    from nemotron_jax.train.ramp import make_ramp

    ramp = make_ramp(by_samples.batch, data_parallel=1, seq_len=T)
    assert total_steps(by_samples, ramp) == 6  # 4 + 4 + 4 + 8 + 8 + 8
    assert total_steps(experiment(rows_file, tmp_path, steps=None, train_tokens=37 * T), ramp) == 7


def test_accumulation_equals_one_big_batch(rows_file, tmp_path):
    """Four microbatches of 2 rows and one of 8 rows give the same updates (same rows, same order)."""
    small = run(experiment(rows_file, tmp_path / "a", batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=2)),
                stop_after=3)
    big = run(experiment(rows_file, tmp_path / "b", batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=8)),
              stop_after=3)
    assert [r["accum"] for r in small.records] == [4, 4, 4] and [r["accum"] for r in big.records] == [1, 1, 1]
    for key in ("loss", "grad_norm", "count"):
        np.testing.assert_allclose([r[key] for r in small.records], [r[key] for r in big.records], rtol=1e-5)
    # Adam divides by sqrt(v): near-zero gradient entries amplify fp32 summation-order noise, so the parameters
    # are compared to 1e-4 absolute against 3 steps that each move weights by up to lr = 3e-2.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), small.state.params,
                 big.state.params)


def test_loss_falls_on_a_learnable_sequence(tmp_path):
    # every row counts up modulo 128 from a random start: next token = this token + 1
    starts = np.random.default_rng(1).integers(0, 128, (64, 1))
    path = tmp_path / "count.npy"
    np.save(path, (starts + np.arange(T + 1)) % 128)
    exp = experiment(str(path), tmp_path / "run", batch=C.BatchConfig(global_batch=8, seq_len=T, micro_batch=8))
    losses = [r["loss"] for r in run(exp).records]
    assert losses[-1] < 0.5 * losses[0], losses


def test_nonfinite_steps_are_skipped_then_stop_the_run(rows_file, tmp_path):
    exp = experiment(rows_file, tmp_path, optim=C.OptimConfig(lr=3e-2, warmup_steps=3, max_nonfinite_in_a_row=3))
    base = make_task(exp)

    def nan_loss(params, batch):
        loss, aux = next_token_loss(exp.model)(params, batch)
        return loss * jnp.nan, aux

    task = Task(init_params=base.init_params, loss_fn=nan_loss, data_iterator=base.data_iterator)
    seen = []
    with pytest.raises(NonFiniteError, match="3 non-finite steps in a row .* at step 3"):
        run(exp, task=task, on_step=lambda s, r: seen.append(r["skipped"]))
    assert seen == [1.0, 1.0, 1.0]


def test_metrics_jsonl_and_mfu(rows_file, tmp_path):
    exp = experiment(rows_file, tmp_path,
                     logging=C.LoggingConfig(every=1, progress=True, tensorboard=True, peak_flops=1e12))
    run(exp, stop_after=2)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    for key in ("loss", "grad_norm", "lr", "batch_size", "tokens_per_s", "step_time_s", "mfu"):
        assert key in lines[0], key
    assert lines[0]["tokens_per_s"] == pytest.approx(4 * T / lines[0]["step_time_s"])
    assert 0 < lines[1]["mfu"] < 1


def test_row_iterator_state_round_trip():
    data = np.arange(40 * 5).reshape(40, 5)
    a = RowIterator(data, rows=4, seed=3)
    [next(a) for _ in range(12)]  # crosses an epoch boundary
    b = RowIterator(data, rows=4, seed=3)
    b.set_state(json.loads(json.dumps(a.get_state())))
    np.testing.assert_array_equal(next(a)["inputs"], next(b)["inputs"])


def test_row_iterator_shards_processes_disjointly():
    data = np.arange(16 * 3).reshape(16, 3)
    p0, p1 = (RowIterator(data, rows=2, seed=0, process_index=i, process_count=2) for i in range(2))
    seen = np.concatenate([np.concatenate([next(p0)["inputs"], next(p1)["inputs"]]) for _ in range(4)])
    assert sorted(seen[:, 0].tolist()) == sorted(data[:, 0].tolist())


def test_tokenizer_bigger_than_the_model_vocab_fails_before_compiling(tmp_path):
    from nemotron_jax.data.tokenizer import Tokenizer
    from nemotron_jax.data.toyworld.export import pretrain_data, source_texts

    Tokenizer.train(source_texts("english", 30_000), vocab_size=384).save(tmp_path / "tok.model")
    data = pretrain_data(C.ToyWorldConfig(), str(tmp_path / "tok.model"))
    exp = C.Experiment(name="v", model=C.toy_tiny(), data=data,
                       batch=C.BatchConfig(global_batch=8, seq_len=T), steps=1)
    with pytest.raises(C.ConfigError, match="has 384 pieces but model.vocab_size=128; set model.vocab_size >= 384"):
        make_task(exp)
