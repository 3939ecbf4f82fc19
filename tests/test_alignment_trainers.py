"""Alignment trainers through the one loop: SFT, DPO, RPO (+ iterations), reward regression and Bradley-Terry."""

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nemotron_jax import config as C
from nemotron_jax.data import chat
from nemotron_jax.data.tokenizer import Tokenizer
from nemotron_jax.model import heads
from nemotron_jax.train import alignment as A
from nemotron_jax.train.loop import run
from nemotron_jax.train.tasks import make_task

WORDS = ["sun", "moon", "star", "tree", "rock", "fish", "bird", "leaf", "rain", "snow", "wind", "fire"]
MODEL = C.toy_tiny(vocab_size=320, max_seq_len=128)
SEQ = 64


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("align")
    rng = np.random.default_rng(0)
    text = [" ".join(rng.choice(WORDS, 12)) + " good bad yes no repeat say" for _ in range(200)]
    tok = Tokenizer.train(text, vocab_size=300)
    tok.save(d / "tok.model")
    sft = [{"messages": [{"role": "user", "content": f"repeat {w}"}, {"role": "assistant", "content": f"{w} {w}"}]}
           for w in WORDS]
    pairs = [{"prompt": f"say {w}", "chosen": f"yes {w}", "rejected": f"no {v}", "chosen_reward": 3.0 + i % 2,
              "rejected_reward": 1.0} for i, (w, v) in enumerate(zip(WORDS, WORDS[::-1]))]
    rated = []
    for _ in range(64):  # helpfulness = 4 when the reply says "yes", else 0; one attribute often missing
        words = list(rng.choice(WORDS, 3))
        good = bool(rng.integers(2))
        rated.append({"prompt": "say something", "response": " ".join((["yes"] if good else ["no"]) + words),
                      "helpfulness": 4.0 if good else 0.0, "correctness": 3.0 if good else 1.0,
                      "coherence": 2.0, "complexity": None if rng.integers(2) else 1.0, "verbosity": 1.0})
    return {"tok": str(d / "tok.model"), "sft": _jsonl(d / "sft.jsonl", sft), "pairs": _jsonl(d / "pairs.jsonl", pairs),
            "rated": _jsonl(d / "rated.jsonl", rated), "dir": d}


def _exp(tmp_path, data, loss, *, steps, lr, rows=4, **kw):
    return C.Experiment(
        name="t", model=MODEL, data=data, loss=loss, steps=steps,
        batch=C.BatchConfig(global_batch=rows, seq_len=SEQ, micro_batch=rows),
        optim=C.OptimConfig(lr=lr, schedule="constant", warmup_steps=0, weight_decay=0.0, clip_norm=1.0),
        checkpoint=C.CheckpointConfig(save_every=10_000, async_save=False),
        logging=C.LoggingConfig(every=10_000, tensorboard=False, progress=False, jsonl=False),
        run_dir=str(tmp_path / "run"), **kw)


def _losses(result):
    return [r["loss"] for r in result.records]


def test_sft_lowers_loss_and_replays_previous_stage(files, tmp_path):
    data = C.ChatData(paths=(files["sft"],), tokenizer=files["tok"])
    res = run(_exp(tmp_path, data, C.SFT(stage="code"), steps=12, lr=1e-2))
    loss = _losses(res)
    assert np.mean(loss[-3:]) < 0.6 * loss[0], loss
    # general stage: a seeded replay_fraction subset of the previous stage's conversations is blended in
    general = C.ChatData(paths=(files["sft"],), tokenizer=files["tok"], replay_path=files["sft"], replay_fraction=0.25)
    convs = A.sft_conversations(general, seed=0)
    assert len(convs) == len(WORDS) + 3 and convs == A.sft_conversations(general, seed=0)


def test_packed_sft_rows_keep_assistant_masks(files):
    data = C.ChatData(paths=(files["sft"],), tokenizer=files["tok"], shuffle=False, packing_bins=1)
    it = A.sft_iterator(data, seq_len=100, rows=2, seed=0)
    batch = next(it)
    tok = Tokenizer.load(files["tok"])
    ids, trained = chat.encode_chat(tok, chat.read_chat_jsonl(files["sft"])[0])
    row, n = batch, len(ids) - 1
    assert row["segment_ids"][0, :n].tolist() == [1] * n and row["segment_ids"][0, n] == 2  # packed: next doc follows
    np.testing.assert_array_equal(row["targets"][0, :n], ids[1:])
    np.testing.assert_array_equal(row["loss_mask"][0, :n], trained[1:])
    np.testing.assert_array_equal(row["positions"][0, n:n + 3], [0, 1, 2])
    state = it.get_state()
    want = next(it)
    it2 = A.sft_iterator(data, seq_len=100, rows=2, seed=0)
    it2.set_state(state)
    np.testing.assert_array_equal(next(it2)["inputs"], want["inputs"])


def test_text_replay_mixes_full_loss_documents_into_sft_rows(files, tmp_path):
    docs = [f"the {w} is near the {v}" for w, v in zip(WORDS, WORDS[1:])]
    corpus = _jsonl(tmp_path / "corpus.jsonl", [{"text": d, "source": "english"} for d in docs])
    data = C.ChatData(paths=(files["sft"],), tokenizer=files["tok"], text_replay_paths=(corpus,),
                      text_replay_fraction=0.5, shuffle=False, pack=False)
    tok = Tokenizer.load(files["tok"])
    extra = A.text_replay_examples(tok, data, len(WORDS), seed=0)
    assert len(extra) == 6 and [e["inputs"].tolist() for e in extra] == \
        [e["inputs"].tolist() for e in A.text_replay_examples(tok, data, len(WORDS), seed=0)]  # seeded
    picked = {tok.decode(e["targets"][:-1].tolist()) for e in extra}
    assert len(picked) == 6 and picked <= set(docs)  # distinct documents, bos ... eos
    assert all(e["inputs"][0] == tok.bos_id and e["targets"][-1] == tok.eos_id for e in extra)
    # every token of a document is trained; a conversation's user turn is not
    it = A.sft_iterator(data, seq_len=SEQ, rows=len(WORDS) + 6, seed=0)
    batch = next(it)
    trained = (batch["loss_mask"] > 0).sum(1)
    lengths = (batch["segment_ids"] > 0).sum(1)
    assert (trained[len(WORDS):] == lengths[len(WORDS):]).all() and (trained[:len(WORDS)] < lengths[:len(WORDS)]).all()
    with pytest.raises(C.ConfigError, match="text_replay_paths"):
        C.ChatData(paths=(files["sft"],), tokenizer=files["tok"], text_replay_fraction=0.1)


def test_cached_reference_equals_on_the_fly(files, tmp_path, monkeypatch):
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"], shuffle=False)
    loss = C.RPO(beta=0.5, iterations=1, sft_weight=1e-2)  # rewards and the SFT term on: every path of the loss
    exp = _exp(tmp_path, data, loss, steps=1, lr=0.0)
    cached = make_task(exp)
    fly = make_task(exp.replace(loss=C.RPO(beta=0.5, iterations=1, sft_weight=1e-2, reference="on_the_fly")))
    cache_files = list((tmp_path / "run" / "reference_logps").glob("ref_logps_*.npy"))
    assert len(cache_files) == 1
    b_cached, b_fly = next(cached.data_iterator(rows=4)), next(fly.data_iterator(rows=4))
    assert "chosen_ref_logps" in b_cached and "chosen_ref_logps" not in b_fly
    # a policy that moved away from the reference, so the log-ratios are not all zero
    ref = A.reference_params(exp)
    params = jax.tree.map(lambda p: p * 1.05, ref)
    (l1, a1), g1 = jax.jit(jax.value_and_grad(cached.loss_fn, has_aux=True))(params, b_cached)
    (l2, a2), g2 = jax.jit(jax.value_and_grad(fly.loss_fn, has_aux=True))(params, b_fly)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    assert abs(float(a1["pref/reward_margin"])) > 1e-4
    for k in a1:
        np.testing.assert_allclose(a1[k], a2[k], rtol=1e-5, atol=1e-6)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-7), g1, g2)
    # a second build reads the cache file instead of recomputing
    monkeypatch.setattr(A, "reference_logps", lambda *a, **k: pytest.fail("recomputed a cached reference"))
    tok = Tokenizer.load(files["tok"])
    table = A.encode_pairs(tok, A.read_pairs(data.paths), SEQ)
    again = A.cached_reference_logps(ref, MODEL, table, tmp_path / "run" / "reference_logps", seq_len=SEQ,
                                     pad_id=tok.pad_id)
    np.testing.assert_array_equal(again, np.load(cache_files[0]))


@pytest.mark.parametrize("layout", [dict(data=2, tensor=2), dict(data=2, pipeline=2, microbatches=2),
                                    dict(fsdp=2, tensor=2, sequence_parallel=True)],
                         ids=["dp2-tp2", "dp2-pp2", "fsdp2-tp2-sp"])
def test_reference_logps_sharded_like_the_step_equal_one_device(files, layout):
    """The cached reference runs on the run's mesh (a 340B reference does not fit one device): same numbers."""
    tok = Tokenizer.load(files["tok"])
    table = A.encode_pairs(tok, A.read_pairs((files["pairs"],)), SEQ)
    ref = jax.tree.map(lambda p: p * 1.5, A.M.init_params(MODEL, jax.random.key(3)))  # not a near-uniform model
    one = A.reference_logps(ref, MODEL, table, seq_len=SEQ, pad_id=tok.pad_id, batch_size=4)
    sharded = A.reference_logps(ref, MODEL, table, seq_len=SEQ, pad_id=tok.pad_id, batch_size=4,
                                parallel=C.ParallelConfig(**layout))
    assert one.shape == (len(WORDS), 2) and np.ptp(one) > 1.0
    np.testing.assert_allclose(sharded, one, rtol=1e-5, atol=1e-4)
    pcfg = C.ParallelConfig(**layout)
    fn = A.sharded_pair_logps(ref, MODEL, pcfg, 4, SEQ)
    devices = len(fn(A.pair_batch(table, np.arange(4), SEQ, tok.pad_id)).sharding.device_set)
    assert devices == A.layout_devices(pcfg, jax.device_count()) >= 4  # really on the run's mesh
    with pytest.raises(C.ConfigError, match="data\\*fsdp\\*microbatches"):  # 2 x 2 rows over data 2 x 4 microbatches
        A.reference_logps(ref, MODEL, table, seq_len=SEQ, pad_id=tok.pad_id, batch_size=2,
                          parallel=C.ParallelConfig(data=2, pipeline=2, microbatches=4))
    with pytest.raises(C.ConfigError, match="data-parallel replicas"):  # 3 pairs over 2 replicas
        A.reference_logps(ref, MODEL, table, seq_len=SEQ, pad_id=tok.pad_id, batch_size=3,
                          parallel=C.ParallelConfig(data=2, tensor=2))


def test_checkpoints_are_read_straight_into_the_layouts_shardings(tmp_path):
    """A reference / reward model on a multi-device layout is restored shard by shard (as the step lays it out),
    never whole on one device; the values are the saved ones, from either kind of folder."""
    from nemotron_jax.checkpoint.manager import Checkpointer
    from nemotron_jax.checkpoint.params_io import save_params
    from nemotron_jax.parallel.training import compute_param_specs
    from nemotron_jax.train.state import TrainState
    import optax

    params = A.M.init_params(MODEL, jax.random.key(4))
    rm = heads.init_reward_params(MODEL, jax.random.key(5), num_attributes=3)
    save_params(tmp_path / "lm", params, MODEL)
    with Checkpointer(tmp_path / "rm" / "checkpoints", async_save=False) as ckpt:
        ckpt.save(7, TrainState.create(rm, optax.sgd(0.1)), data_state={}, meta={})
    pcfg = C.ParallelConfig(data=2, tensor=2)
    got = A.read_params_on_layout(tmp_path / "lm", MODEL, pcfg)
    wq = got["layers"]["attn"]["wq"]
    assert wq.sharding.spec == compute_param_specs(MODEL, pcfg)["layers"]["attn"]["wq"]
    assert "tensor" in str(wq.sharding.spec) and len(wq.sharding.device_set) == 4
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got, params)
    got_rm = A.read_params_on_layout(tmp_path / "rm", MODEL, pcfg, A._reward_axes(MODEL))
    assert got_rm["reward_head"]["kernel"].shape == (MODEL.d_model, 3)
    assert len(got_rm["embed"]["embedding"].sharding.device_set) == 4
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)), got_rm, rm)


def test_on_the_fly_reference_refuses_a_large_model_before_loading_it(files, tmp_path):
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"])
    big = C.nemotron4_15b(num_layers=2)  # 2 layers of the 15B shape: ~3.7 GiB of fp32 weights
    exp = _exp(tmp_path, data, C.DPO(reference="on_the_fly"), steps=1, lr=0.0).replace(model=big,
                                                                                         init_from="/nonexistent")
    with pytest.raises(C.ConfigError, match="reference='cached'"):
        make_task(exp)


def test_preference_text_replay_rows_and_loss(files, tmp_path):
    """text_replay_weight: one packed document row per pair row; the loss gains weight x its per-token NLL."""
    docs = [f"the {w} is near the {v}" for w, v in zip(WORDS, WORDS[1:])]
    corpus = _jsonl(tmp_path / "corpus.jsonl", [{"text": d, "source": "english"} for d in docs])
    w = 0.7
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"], shuffle=False,
                            text_replay_paths=(corpus,), text_replay_weight=w)
    task = make_task(_exp(tmp_path / "replay", data, C.DPO(beta=0.5, sft_weight=0.1), steps=1, lr=0.0))
    plain = make_task(_exp(tmp_path / "plain", dataclasses.replace(data, text_replay_weight=0.0),
                           C.DPO(beta=0.5, sft_weight=0.1), steps=1, lr=0.0))
    it = task.data_iterator(rows=4)
    batch = next(it)
    assert batch["text_inputs"].shape == batch["chosen_inputs"].shape  # one text row per pair row
    tok = Tokenizer.load(files["tok"])
    trained = batch["text_loss_mask"] > 0
    assert (trained == (batch["text_segment_ids"] > 0)).all()  # full loss on every document token
    text = " ".join(tok.decode(r[m].tolist()) for r, m in zip(batch["text_targets"], trained))
    assert sum(d in text for d in docs) >= 4  # packed whole documents
    # resume: the text stream's position is part of the iterator state
    state = it.get_state()
    want = next(it)
    again = task.data_iterator(rows=4)
    again.set_state(state)
    got = next(again)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # the loss: plain DPO + SFT terms, plus w x the mean NLL of each text row (computed here from the logits)
    params = jax.tree.map(lambda x: x * 1.05, A.reference_params(_exp(tmp_path, data, C.DPO(), steps=1, lr=0.0)))
    logits = M_forward(params, batch["text_inputs"], batch["text_positions"], batch["text_segment_ids"])
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    tok_logp = np.take_along_axis(np.asarray(logp), batch["text_targets"][..., None], axis=-1)[..., 0]
    mask = batch["text_loss_mask"].astype(np.float32)
    row_nll = -(tok_logp * mask).sum(-1) / mask.sum(-1)
    base_batch = {k: v for k, v in batch.items() if not k.startswith("text_")}
    (total, aux), (base, _) = task.loss_fn(params, batch), plain.loss_fn(params, base_batch)
    assert float(total) - float(base) == pytest.approx(w * float(row_nll.sum()), rel=1e-4)
    assert float(aux["pref/text_nll"]) == pytest.approx(float(row_nll.sum()), rel=1e-4)
    with pytest.raises(C.ConfigError, match="needs text_replay_paths"):
        C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"], text_replay_weight=0.5)


def M_forward(params, inputs, positions, segment_ids):
    from nemotron_jax.model.transformer import forward
    return forward(params, jnp.asarray(inputs), MODEL, positions=jnp.asarray(positions),
                   segment_ids=jnp.asarray(segment_ids))


def test_dpo_starts_at_log2_and_lowers_loss(files, tmp_path):
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"])
    res = run(_exp(tmp_path, data, C.DPO(beta=0.5, sft_weight=0.0), steps=10, lr=5e-3))
    loss = _losses(res)
    assert loss[0] == pytest.approx(np.log(2.0), abs=1e-5)  # policy == reference at step 0
    assert np.mean(loss[-3:]) < 0.5 * loss[0], loss
    assert res.records[-1]["pref/accuracy"] > 0.7


def test_rpo_iterations_chain_start_and_reference(files, tmp_path):
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"])
    exp = _exp(tmp_path, data, C.RPO(beta=0.5, iterations=2, sft_weight=0.0), steps=4, lr=5e-3)
    results = A.run_rpo(exp)
    assert len(results) == 2
    first, second = _losses(results[0]), _losses(results[1])
    assert first[-1] < first[0]
    # iteration 2 references iteration 1's result: its reference params are iteration 1's final params
    ref2 = A.reference_params(exp.replace(init_from=str(tmp_path / "run" / "iter1")))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b), ref2, results[0].state.params)
    # and it starts from them (policy == reference, Δ = 0): its first loss is KL(σ(ηΔr) ‖ 1/2) on the same first
    # batch, exactly iteration 1's first loss — a fresh init referencing iteration 1 would have Δ ≠ 0
    assert second[0] == pytest.approx(first[0], rel=1e-5)


def test_rpo_needs_rewards_or_a_reward_model(files, tmp_path):
    no_rewards = _jsonl(files["dir"] / "norew.jsonl", [{"prompt": "q", "chosen": "yes", "rejected": "no"}] * 4)
    data = C.PreferenceData(paths=(no_rewards,), tokenizer=files["tok"])
    with pytest.raises(C.ConfigError, match="needs rewards"):
        make_task(_exp(tmp_path, data, C.RPO(iterations=1), steps=1, lr=0.0))
    with pytest.raises(C.ConfigError, match="run_rpo"):  # the loop alone would silently run one iteration
        make_task(_exp(tmp_path, data, C.RPO(iterations=3), steps=1, lr=0.0))


def _heldout_ranking(params, tok):
    rng = np.random.default_rng(123)
    prompts, good, bad = [], [], []
    for _ in range(32):
        words = " ".join(rng.choice(WORDS, 3))
        prompts.append("say something")
        good.append("yes " + words)
        bad.append("no " + " ".join(rng.choice(WORDS, 3)))
    s = heads.score_conversations(params, MODEL, tok, prompts + prompts, good + bad, batch_size=16)["reward"]
    return float(np.mean(s[:32] > s[32:]))


def test_reward_regression_learns_to_rank(files, tmp_path):
    data = C.HelpSteerData(paths=(files["rated"],), tokenizer=files["tok"])
    res = run(_exp(tmp_path, data, C.RewardRegression(), steps=30, lr=3e-3, rows=8))
    loss = _losses(res)
    assert np.mean(loss[-5:]) < 0.5 * np.mean(loss[:3]), loss
    assert _heldout_ranking(res.state.params, Tokenizer.load(files["tok"])) >= 0.9


def test_reward_model_from_an_lm_starts_from_its_trunk_on_a_sharded_layout(files, tmp_path):
    """lm_init_from: the LM's trunk is read straight into the training state's layout and dtype (a bf16 LM becomes
    fp32 masters), not closed over by a jitted init (which would make a 340B trunk a program constant), and
    trained from; the new head has the seed's init."""
    from nemotron_jax.checkpoint.params_io import save_params
    from nemotron_jax.train.optim import make_optimizer
    from nemotron_jax.train.runtime import make_runtime

    lm = jax.tree.map(lambda x: x.astype(jnp.bfloat16), A.M.init_params(MODEL, jax.random.key(9)))
    save_params(tmp_path / "lm", lm, MODEL)
    data = C.HelpSteerData(paths=(files["rated"],), tokenizer=files["tok"])
    exp = _exp(tmp_path, data, C.RewardRegression(lm_init_from=str(tmp_path / "lm")), steps=1, lr=0.0, rows=8,
               parallel=C.ParallelConfig(data=2, tensor=2))
    exp = exp.replace(batch=C.BatchConfig(global_batch=8, seq_len=SEQ, micro_batch=4))
    task = make_task(exp)
    runtime = make_runtime(exp)
    runtime.build(task, make_optimizer(exp.optim, lambda _: 0.0))
    target = runtime.abstract_state().params
    start = task.start_params(jax.random.key(exp.seed), target)
    for k in heads.TRUNK_KEYS:
        jax.tree.map(lambda a, t: (a.sharding == t.sharding and a.dtype == t.dtype == jnp.float32) or
                     pytest.fail(f"{k}: {a.sharding} {a.dtype} vs {t.sharding} {t.dtype}"), start[k], target[k])
    init_program = jax.jit(task.init_params).lower(jax.random.key(0)).as_text()
    constants = [len(c) // 2 for c in re.findall(r'dense<"0x([0-9A-Fa-f]+)"', init_program)]
    assert max(constants, default=0) < lm["embed"]["embedding"].nbytes // 4  # no LM weights baked in
    got = run(exp).state.params
    for k in heads.TRUNK_KEYS:  # lr 0: the trunk is still exactly the LM's
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b, np.float32)),
                     got[k], lm[k])
    want_head = heads.init_head(MODEL, jax.random.key(exp.seed), 5)
    np.testing.assert_allclose(np.asarray(got["reward_head"]["kernel"]), np.asarray(want_head["kernel"]),
                               rtol=1e-6)


def test_bradley_terry_lowers_loss(files, tmp_path):
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"])
    res = run(_exp(tmp_path, data, C.BradleyTerry(margin_mode="subtract"), steps=6, lr=3e-3))
    loss = _losses(res)
    assert np.mean(loss[-3:]) < loss[0], loss


def test_wrong_data_type_is_a_config_error(files, tmp_path):
    data = C.ChatData(paths=(files["sft"],), tokenizer=files["tok"])
    with pytest.raises(C.ConfigError, match="trains on PreferenceData"):
        make_task(_exp(tmp_path, data, C.DPO(), steps=1, lr=0.0))


def test_sharded_in_step_reference_equals_single_device_cached(files, tmp_path):
    """data=2 x tensor=2 with the reference run inside the sharded step == one device with the cached reference."""
    data = C.PreferenceData(paths=(files["pairs"],), tokenizer=files["tok"], shuffle=False)
    losses = {}
    for mode, par in (("cached", C.ParallelConfig(data=1)), ("on_the_fly", C.ParallelConfig(data=2, tensor=2))):
        exp = _exp(tmp_path / mode, data, C.DPO(beta=0.5, sft_weight=1e-2, reference=mode), steps=3, lr=5e-3)
        exp = exp.replace(parallel=par, batch=C.BatchConfig(global_batch=4, seq_len=SEQ, micro_batch=4 // par.data))
        losses[mode] = _losses(run(exp))
    np.testing.assert_allclose(losses["on_the_fly"], losses["cached"], rtol=2e-5)
    assert losses["cached"][-1] < losses["cached"][0]


def test_rpo_rewards_scored_by_reward_model_when_data_has_none(files, tmp_path):
    from nemotron_jax.checkpoint.params_io import save_params

    rm = heads.init_reward_params(MODEL, jax.random.key(3))
    save_params(tmp_path / "rm", rm, MODEL)
    rows = [{"prompt": f"say {w}", "chosen": f"yes {w}", "rejected": f"no {w} {w}"} for w in WORDS[:4]]
    data = C.PreferenceData(paths=(_jsonl(tmp_path / "norew.jsonl", rows),), tokenizer=files["tok"],
                            reward_model=str(tmp_path / "rm"), shuffle=False)
    task = make_task(_exp(tmp_path, data, C.RPO(iterations=1, reference="on_the_fly"), steps=1, lr=0.0))
    batch = next(task.data_iterator(rows=4))
    tok = Tokenizer.load(files["tok"])
    prompts = [r["prompt"] for r in rows]
    want = {side: heads.score_conversations(rm, MODEL, tok, prompts, [r[side] for r in rows])["reward"]
            for side in ("chosen", "rejected")}
    np.testing.assert_allclose(batch["chosen_reward"], want["chosen"], rtol=1e-5)
    np.testing.assert_allclose(batch["rejected_reward"], want["rejected"], rtol=1e-5)


@pytest.mark.parametrize("size", ["nemotron4_340b", "nemotron4_15b"])
def test_paper_experiment_files_carry_the_papers_hyperparameters(size):
    from nemotron_jax.train.cli import load_experiment_file

    root = Path(__file__).resolve().parents[1] / "experiments" / size
    load = lambda name: load_experiment_file(root / f"{name}.py")
    rm, code, general, dpo, rpo = (load(n) for n in ("reward_model", "sft_code", "sft_general", "dpo", "rpo"))
    assert isinstance(rm.loss, C.RewardRegression) and rm.loss.num_attributes == 5 and rm.batch.global_batch == 128
    assert rm.train_samples == 2 * 20_324  # 2 epochs of HelpSteer2
    assert (code.optim.lr, code.optim.schedule, code.batch.global_batch, code.train_samples) == \
        (3e-7, "constant", 128, 800_000)
    assert general.init_from == code.out_dir and general.data.replay_fraction == 0.02
    assert 1e-7 <= general.optim.lr <= 5e-7 and general.train_samples == 3 * 200_000
    assert dpo.init_from == general.out_dir and dpo.batch.global_batch == 256 and dpo.train_samples == 160_000
    assert 3e-4 <= dpo.loss.beta <= 3e-3 and 1e-5 <= dpo.loss.sft_weight <= 1e-3 and 3e-8 <= dpo.optim.lr <= 3e-7
    assert rpo.init_from == dpo.out_dir and rpo.loss.kind == "rpo_bwd_kl" and rpo.loss.iterations == 3
    assert (rpo.loss.eta, rpo.loss.sft_weight, rpo.optim.lr, rpo.train_samples) == (1.0, 1e-5, 3e-7, 300_000)
    assert 1e-3 <= rpo.loss.beta <= 1


def test_overlong_pairs_are_dropped_and_reported(files, caplog):
    tok = Tokenizer.load(files["tok"])
    pairs = [chat.PreferencePair(({"role": "user", "content": "say sun"},), "yes sun", "no sun"),
             chat.PreferencePair(({"role": "user", "content": "say sun"},), "sun " * 200, "no")]
    with caplog.at_level("WARNING"):
        table = A.encode_pairs(tok, pairs, SEQ)
    assert len(table) == 1 and table.dropped == 1 and "dropped 1 of 2" in caplog.text
    batch = A.pair_batch(table, np.array([0]), SEQ, tok.pad_id)
    ids, trained = chat.encode_response(tok, pairs[0].prompt, "yes sun")
    np.testing.assert_array_equal(batch["chosen_targets"][0, :len(ids) - 1], ids[1:])
    np.testing.assert_array_equal(batch["chosen_loss_mask"][0, :len(ids) - 1], trained[1:])
    assert batch["chosen_loss_mask"][0].sum() == trained.sum()  # only the response and its closing marker
