"""RULES coverage, validation messages, actual array shardings (distributed optimizer), the pipeline schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from nemotron_jax import config as C
from nemotron_jax.config import ConfigError
from nemotron_jax.model import forward, init_params, logical_axes, param_shapes
from nemotron_jax.parallel.axes import RULES, mesh_specs, rules_for, unresolved_axes, unsharded_fraction
from nemotron_jax.parallel.mesh import axis_sizes, validate
from nemotron_jax.parallel.pipeline import bubble_fraction, pipelined_layers
from nemotron_jax.parallel.training import build_sharded_training
from nemotron_jax.train.optim import make_optimizer

CFG = C.toy_tiny(num_layers=8, num_heads=8, num_kv_heads=4, head_dim=8, ffn_dim=64, vocab_size=128)


def test_every_parameter_resolves_and_340b_is_sharded():
    cfg = C.nemotron4_340b()
    assert unresolved_axes(logical_axes(cfg), RULES) == set()
    pcfg = C.ParallelConfig(data=64, tensor=8, pipeline=12, virtual_stages=8, microbatches=12,
                            sequence_parallel=True)
    specs = mesh_specs(logical_axes(cfg), rules_for(True))
    frac = unsharded_fraction(param_shapes(cfg), specs, axis_sizes(pcfg, 6144))
    assert frac < 0.02, f"{100 * frac:.2f}% of 340B parameters are replicated on every device"


def test_rules_give_megatron_tensor_parallel_specs():
    specs = mesh_specs(logical_axes(CFG), rules_for(False))
    attn, mlp = specs["layers"]["attn"], specs["layers"]["mlp"]
    assert attn["wq"] == P("pipeline", "fsdp", "tensor", None)  # column-parallel over heads
    assert attn["wo"] == P("pipeline", "tensor", None, "fsdp")  # row-parallel: heads are its input side
    assert mlp["w_up"] == P("pipeline", "fsdp", "tensor") and mlp["w_down"] == P("pipeline", "tensor", "fsdp")
    assert specs["embed"]["embedding"] == P("tensor", "fsdp")  # vocab-parallel embedding
    assert specs["lm_head"]["kernel"] == P("fsdp", "tensor")  # vocab-parallel output


BAD_LAYOUTS = [
    (C.ParallelConfig(data=3), {}, "needs 3 devices but 8"),
    (C.ParallelConfig(data=-1, tensor=3), {}, "cannot infer data=-1"),
    (C.ParallelConfig(data=1, pipeline=8), {"num_layers": 12}, "num_layers=12 is not divisible by pipeline"),
    (C.ParallelConfig(data=1, tensor=8), {}, "num_heads=8|num_kv_heads=4 is not divisible by tensor=8"),
    (C.ParallelConfig(data=4, tensor=2), {"ffn_dim": 63}, "ffn_dim=63 is not divisible by tensor=2"),
    (C.ParallelConfig(data=4, tensor=2), {"vocab_size": 127}, "vocab_size=127"),
    (C.ParallelConfig(data=1, fsdp=8), {"d_model": 36}, "d_model=36 is not divisible by fsdp=8"),
    (C.ParallelConfig(data=8, microbatches=2), {}, "microbatches=2 only applies to pipeline"),
    (C.ParallelConfig(data=2, pipeline=4, virtual_stages=2, microbatches=2), {}, "microbatches >= pipeline"),
]


@pytest.mark.parametrize("pcfg,model_kw,message", BAD_LAYOUTS)
def test_validation_errors_name_the_fix(pcfg, model_kw, message):
    with pytest.raises(ConfigError, match=message):
        validate(CFG.replace(**model_kw), pcfg, num_devices=8)


def test_batch_and_sequence_checks():
    pcfg = C.ParallelConfig(data=2, pipeline=2, tensor=2, microbatches=2, sequence_parallel=True)
    with pytest.raises(ConfigError, match="data\\*fsdp\\*microbatches=4"):
        validate(CFG, pcfg, num_devices=8, batch=6)
    with pytest.raises(ConfigError, match="seq_len=15 is not divisible by tensor=2"):
        validate(CFG, pcfg, num_devices=8, batch=8, seq_len=15)
    with pytest.raises(ConfigError):  # the factory validates before building anything
        build_sharded_training(CFG, pcfg, make_optimizer(C.OptimConfig(), 1e-3), None, batch=6)


def test_compiled_state_has_rules_shardings_and_sharded_moments():
    pcfg = C.ParallelConfig(data=2, tensor=2, pipeline=2, microbatches=2)
    run = build_sharded_training(CFG, pcfg, make_optimizer(C.OptimConfig(), 1e-3), None)
    state = run.init_fn(jax.random.key(0))
    # Distributed optimizer: fp32 masters and moments get `data` on their first free dim, on top of RULES
    # (the forward reads the RULES layout, P("pipeline", "fsdp", "tensor", None), through an all-gather).
    wq = state.params["layers"]["attn"]["wq"]  # [L 8, D 32, N 8, H 8]
    assert wq.sharding.spec == P("pipeline", "fsdp", "tensor", "data")
    assert {s.data.shape for s in wq.addressable_shards} == {(4, 32, 4, 4)}
    adam = state.opt_state[1][0]  # chain(clip, adamw(...)) -> adamw's ScaleByAdamState
    mu_wq = adam.mu["layers"]["attn"]["wq"]
    assert mu_wq.sharding.spec == P("pipeline", "fsdp", "tensor", "data")
    assert {s.data.shape for s in mu_wq.addressable_shards} == {(4, 32, 4, 4)}
    nu_emb = adam.nu["embed"]["embedding"]
    assert {s.data.shape for s in nu_emb.addressable_shards} == {(32, 32)}  # [128/2 tensor/2 data, 32]
    np.testing.assert_allclose(wq, init_params(CFG, jax.random.key(0))["layers"]["attn"]["wq"])

    plain = build_sharded_training(CFG, pcfg.replace(shard_optimizer=False), make_optimizer(C.OptimConfig(), 1e-3),
                                   None).state_shardings
    assert plain.params["layers"]["attn"]["wq"].spec == P("pipeline", "fsdp", "tensor", None)
    assert plain.opt_state[1][0].mu["layers"]["attn"]["wq"].spec == P("pipeline", "fsdp", "tensor", None)


def test_pipeline_schedule_matches_plain_forward_on_one_device():
    # M=3 is not a multiple of P=2, V=2: the circular buffer must still hand every microbatch back in time.
    pcfg = C.ParallelConfig(data=1, pipeline=2, virtual_stages=2, microbatches=3)
    cfg = CFG.replace(num_layers=4)
    params = init_params(cfg, jax.random.key(1))
    toks = jax.random.randint(jax.random.key(2), (6, 8), 0, cfg.vocab_size)
    seg = jnp.asarray(np.repeat([[1] * 5 + [2] * 3], 6, 0), jnp.int32)
    pos = jnp.asarray(np.repeat([list(range(5)) + list(range(3))], 6, 0), jnp.int32)
    want = forward(params, toks, cfg, positions=pos, segment_ids=seg)
    got = jax.jit(lambda p: forward(p, toks, cfg, positions=pos, segment_ids=seg,
                                    layers_fn=pipelined_layers(cfg, pcfg)))(params)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_bubble_fraction():
    assert bubble_fraction(12, 8, 12) == pytest.approx(11 / 107)
    assert bubble_fraction(4, 1, 4) == pytest.approx(3 / 7)
    assert bubble_fraction(1, 1, 1) == 0.0


def test_other_parameter_trees_shard_through_the_same_rules():
    from nemotron_jax.model.heads import init_reward_params, reward_logical_axes

    pcfg = C.ParallelConfig(data=4, fsdp=2)
    run = build_sharded_training(CFG, pcfg, make_optimizer(C.OptimConfig(), 1e-3), None,
                                 init_params_fn=lambda rng: init_reward_params(CFG, rng),
                                 param_logical_axes=reward_logical_axes(CFG))
    state = run.init_fn(jax.random.key(0))
    # [D 32, attrs 5]: RULES put fsdp on D; the distributed optimizer stacks data there too (5 does not split).
    assert state.params["reward_head"]["kernel"].sharding.spec == P(("fsdp", "data"), None)
    assert "lm_head" not in state.params


@pytest.mark.parametrize("sp,want", [(True, P(("data", "fsdp"), "tensor", None)), (False, P(("data", "fsdp")))])
def test_sequence_parallel_shards_length_between_blocks(sp, want):
    from nemotron_jax.parallel.axes import ACT_EMBED, BATCH, LENGTH, shard
    from nemotron_jax.parallel.mesh import make_mesh
    from nemotron_jax.parallel.training import activate

    pcfg = C.ParallelConfig(data=2, tensor=4, sequence_parallel=sp)
    mesh = make_mesh(pcfg)
    with activate(mesh, pcfg):
        y = jax.jit(lambda x: shard(x * 2, (BATCH, LENGTH, ACT_EMBED)))(jnp.ones((4, 8, 16)))
    assert y.sharding.is_equivalent_to(jax.sharding.NamedSharding(mesh, want), 3), y.sharding


def test_a_parameter_axis_without_a_rule_is_refused():
    from jax.sharding import PartitionSpec

    logical = jax.tree.map(lambda s: PartitionSpec(*s), logical_axes(CFG),
                           is_leaf=lambda x: isinstance(x, PartitionSpec))
    logical["lm_head"]["kernel"] = PartitionSpec("embed", "my_new_axis")
    with pytest.raises(ConfigError, match="my_new_axis"):
        build_sharded_training(CFG, C.ParallelConfig(data=8), make_optimizer(C.OptimConfig(), 1e-3), None,
                               param_logical_axes=logical)
