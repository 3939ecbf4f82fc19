"""The whole Nemotron-4 recipe at toy scale: weak-to-strong alignment on the toy world, on a laptop CPU.

    nemotron-jax demo [--quick] [--out runs/weak_to_strong]        (also: python experiments/toy/weak_to_strong.py)

    data          toy world -> corpus, tokenizer, SFT / preference / HelpSteer / held-out eval files
    weak_base     pretrain a small model briefly                     (the paper's permissive generator stands in)
    strong_base   pretrain a larger model for longer                 (the paper's Interm base checkpoint)
    reward_model  multi-attribute regression RM on HelpSteer-style rows, from the strong base
    weak_sft      a quick general SFT of the weak base: the round-1 generator
    sft_code      strong base -> code SFT                            (paper: 1 epoch, constant LR)
    sft_general   -> general SFT, replaying 2% of the code-SFT data and packing in English pretraining documents
    sdg_round1    the weak generator and the intermediate SFT policy answer toy-world prompts (k samples) ->
                  verifier/ground-truth judge -> best-vs-worst pairs with a right chosen reply, plus pairs of
                  replies that agree on the answer where only the chosen one follows every instruction; the RM
                  re-scores every pair
                  (RM-as-judge, and its agreement with the verifiers)
    dpo           -> DPO on round-1 pairs (+ SFT term on chosen)
    rpo1..3       -> RPO x3, each from and referencing the previous  (rewards: the judge's, or the RM's)
    sdg_round2    the aligned strong model generates the next round's data (its mean reward vs round 1's)
    eval          every stage on held-out tasks: chat task accuracy, IFEval prompt/instruction accuracy,
                  plus RewardBench-shaped accuracy of the RM on held-out pairs -> report.md + stages.png

Each stage writes under `runs/<name>/<stage>/` and is skipped when its output exists, so an interrupted recipe
resumes where it stopped. Timings per stage go to `runs/<name>/timings.json`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from nemotron_jax import config as C

STAGE_ORDER = ("strong_base", "sft_code", "sft_general", "dpo", "rpo1", "rpo2", "rpo3")
STAGE_LABELS = {"weak_sft": "Weak generator (SFT)", "strong_base": "Strong base", "sft_code": "Code SFT",
                "sft_general": "+ General SFT", "dpo": "+ DPO", "rpo1": "+ RPO (1)", "rpo2": "+ RPO (2)",
                "rpo3": "+ RPO (3)"}


@dataclass(frozen=True)
class StageTrain:
    """Steps, batch and LR of one training stage."""

    steps: int
    batch: int
    lr: float
    warmup: int = 0
    schedule: str = "constant"
    min_lr: float = 0.0


@dataclass(frozen=True)
class RecipeConfig:
    """Sizes and hyperparameters of the toy recipe; `quick()` is the same path in a couple of minutes."""

    name: str = "weak_to_strong"
    out_dir: Optional[str] = None
    seed: int = 0
    world: C.ToyWorldConfig = field(default_factory=lambda: C.ToyWorldConfig(
        pretrain_chars=2_000_000, tokenizer_chars=600_000, code_sft=1500, general_sft=12000, preference_prompts=600,
        preference_pairs=400, helpsteer=6000, helpsteer_val=200, eval_per_task=100, eval_ifeval=400, eval_mc=60,
        eval_code=10, eval_rm_pairs=200,
        # 1% of the SFT prompts carry instructions, so the preference stages have formats left to teach: at 4% SFT
        # alone reached IFEval-P 76.6 and DPO + RPO on the round-1 pairs only moved it within run-to-run noise
        instructed_share=0.01,
        # chat-format conversations over the training items: the base meets the template (not only "Q: / A:")
        english_mix=(("biography", 0.4), ("place", 0.1), ("thing", 0.1), ("quiz", 0.1), ("practice", 0.15),
                     ("chat_qa", 0.15))))
    # A small vocabulary (words split into a few pieces): held-out upper-casing and reversal need letter-level
    # skills; at 2K pieces each word is one token. 512 did best in a probe (384 is the toy text's floor).
    vocab_size: int = 512
    # Spaces end a piece instead of starting one, so a word is the same pieces at the start of a reply as after a
    # space in the corpus; with the template's role headers as whole pieces (build_toy_data), a base model answers
    # held-out questions in the chat template as it does on quiz sheets.
    tokenizer_whitespace_suffix: bool = True
    seq_len: int = 256
    weak: C.ModelConfig = field(default_factory=lambda: C.toy_small(
        name="toy-weak", vocab_size=512, num_layers=2, d_model=96, num_heads=4, num_kv_heads=2, head_dim=24,
        ffn_dim=384, max_seq_len=512))
    strong: C.ModelConfig = field(default_factory=lambda: C.toy_small(
        name="toy-strong", vocab_size=512, num_layers=2, d_model=128, num_heads=4, num_kv_heads=2, head_dim=32,
        ffn_dim=512, max_seq_len=512))
    weak_pretrain: StageTrain = StageTrain(steps=150, batch=16, lr=3e-3, warmup=20, schedule="cosine", min_lr=3e-4)
    strong_pretrain: StageTrain = StageTrain(steps=600, batch=16, lr=3e-3, warmup=30, schedule="cosine",
                                             min_lr=3e-4)
    reward_model: StageTrain = StageTrain(steps=400, batch=16, lr=1e-3, warmup=20, schedule="cosine", min_lr=1e-4)
    weak_sft: StageTrain = StageTrain(steps=120, batch=16, lr=1e-3, warmup=10)
    # code SFT at 1e-3 (a third of the pretraining peak) wiped the base: it answered nothing in any format after
    sft_code: StageTrain = StageTrain(steps=60, batch=16, lr=1e-4, warmup=10)
    # 600 steps: with a quarter as many pretraining documents packed in, 400 left the chat skills short (Tasks 38.0
    # vs 45.4, IFEval-P 69.9 vs 76.6 in a probe)
    sft_general: StageTrain = StageTrain(steps=600, batch=16, lr=2e-3, warmup=20, schedule="cosine", min_lr=1e-4)
    dpo: StageTrain = StageTrain(steps=120, batch=8, lr=1e-4, warmup=5)
    # each RPO iteration restarts from and references the last: at DPO's LR three of them over the same round-1
    # pairs traded tasks for formats (RPO3 vs SFT, Tasks / IFEval-P: 1e-4 -7.9 / +7.7, 3e-5 -5.2 / +7.2,
    # 2e-5 -3.9 / +5.3, 1e-5 -1.3 / +3.4)
    rpo: StageTrain = StageTrain(steps=60, batch=8, lr=2e-5, warmup=5)
    dpo_beta: float = 0.1
    rpo_beta: float = 0.1
    rpo_eta: float = 1.0
    # general SFT packs in English pretraining documents (this many per conversation, full loss): without them SFT
    # overwrote what the base had read (held-out facts on quiz sheets 53% -> 14%); 0.1 gave Tasks 40.6, 0.25 45.4
    sft_text_replay: float = 0.25
    pref_sft_weight: float = 0.5  # keep the SFT term on chosen responses (without it DPO degrades accuracy)
    # DPO / RPO: each pair row comes with a row of English pretraining documents, its per-token NLL at this weight.
    # Off: at 1 and 5 the tasks moved within noise; the preference stages do not erode that NLL (0.38 -> 0.31)
    pref_text_replay: float = 0.0
    sdg_prompts: int = 1000
    sdg_prompts_round2: int = 400  # round 2 only measures the aligned generator's data quality
    sdg_k: int = 4
    sdg_temperature: float = 1.0
    sdg_max_tokens: int = 80
    # verifier score a chosen reply needs: on the toy labels with the 340B weights a coherent right answer scores
    # >= 3.78 and a wrong one <= 3.08, whatever its format and length
    sdg_min_chosen_reward: Optional[float] = 3.4
    # also pair, on prompts with instructions, a reply that follows every instruction with one that breaks one and
    # agrees with it on the answer: the judge weighs correctness far above format, so best-vs-worst pairs alone
    # rarely teach the format. (Pairing on any score gap instead chose shorter replies over long gibberish and
    # taught "stop early": DPO IFEval-P 74.6 against 78.9-83.3 with these pairs, from the same SFT model.)
    sdg_instruction_pairs: bool = True
    # where RPO's rewards come from: "judge" (ground truth + verifiers, trusted first) or "reward_model"
    rpo_rewards: str = "judge"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir or f"runs/{self.name}")

    def replace(self, **kw: Any) -> "RecipeConfig":
        return dataclasses.replace(self, **kw)


def quick(cfg: Optional[RecipeConfig] = None) -> RecipeConfig:
    """The --quick variant: every stage on the same path, about 10x fewer steps and records."""
    from nemotron_jax.data.toyworld.export import quick_config

    cfg = cfg or RecipeConfig()
    short = lambda s, n: dataclasses.replace(s, steps=n, warmup=min(s.warmup, max(n // 5, 1)))
    return cfg.replace(
        # the quick world keeps its own instructed share (4% of 400 SFT prompts): 1% would be 4 prompts
        name=cfg.name + "_quick", world=quick_config(pretrain_chars=300_000, tokenizer_chars=150_000,
                                                      english_mix=cfg.world.english_mix),
        weak_pretrain=short(cfg.weak_pretrain, 20), strong_pretrain=short(cfg.strong_pretrain, 40),
        reward_model=short(cfg.reward_model, 20), weak_sft=short(cfg.weak_sft, 15), sft_code=short(cfg.sft_code, 8),
        sft_general=short(cfg.sft_general, 20), dpo=short(cfg.dpo, 6), rpo=short(cfg.rpo, 4), sdg_prompts=160,
        sdg_prompts_round2=32, sdg_k=4, sdg_max_tokens=24,
        sdg_min_chosen_reward=None)  # models this brief are rarely right: pair on any verifier gap


# ------------------------------------------------------------------------------------------------------------
# Stage bookkeeping
# ------------------------------------------------------------------------------------------------------------


class Recipe:
    """Runs the stages in order; each stage's folder doubles as its 'done' marker."""

    def __init__(self, cfg: RecipeConfig, *, log: Any = print) -> None:
        self.cfg, self.log = cfg, log
        self.root = cfg.run_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.timings_path = self.root / "timings.json"
        self.timings: dict[str, float] = (json.loads(self.timings_path.read_text())
                                          if self.timings_path.exists() else {})

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def tokenizer(self) -> str:
        return str(self.path("data", "data", "tokenizer.model"))

    def data_file(self, key: str) -> str:
        manifest = json.loads(self.path("data", "data", "manifest.json").read_text())
        return manifest["files"][key]

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        self.log(f"[recipe] {name} ...")
        yield
        self.timings[name] = round(time.perf_counter() - t0, 1)
        self.timings_path.write_text(json.dumps(self.timings, indent=2))
        self.log(f"[recipe] {name} done in {self.timings[name]:.0f}s")

    def done(self, name: str, marker: str = "DONE") -> bool:
        return self.path(name, marker).exists()

    def mark(self, name: str, marker: str = "DONE", payload: Any = None) -> None:
        self.path(name).mkdir(parents=True, exist_ok=True)
        self.path(name, marker).write_text(json.dumps(payload if payload is not None else {}, indent=2))


# ------------------------------------------------------------------------------------------------------------
# Experiments for each training stage (the same Experiment objects a researcher writes by hand)
# ------------------------------------------------------------------------------------------------------------


def _optim(t: StageTrain, weight_decay: float = 0.0) -> C.OptimConfig:
    return C.OptimConfig(lr=t.lr, min_lr=t.min_lr if t.schedule != "constant" else t.lr, schedule=t.schedule,
                         warmup_steps=t.warmup, weight_decay=weight_decay, clip_norm=1.0)


def _experiment(r: Recipe, name: str, model: C.ModelConfig, data: Any, t: StageTrain, *, loss: Any = None,
                init_from: Optional[str] = None, weight_decay: float = 0.0) -> C.Experiment:
    kw = {} if loss is None else {"loss": loss}
    return C.Experiment(
        name=name, model=model, data=data, batch=C.BatchConfig(global_batch=t.batch, seq_len=r.cfg.seq_len,
                                                                micro_batch=t.batch),
        optim=_optim(t, weight_decay), steps=t.steps, init_from=init_from, run_dir=str(r.path(name)),
        seed=r.cfg.seed, checkpoint=C.CheckpointConfig(save_every=max(t.steps, 1), keep=1, async_save=False),
        logging=C.LoggingConfig(every=max(t.steps // 10, 1), tensorboard=False, progress=True), **kw)


def _train(r: Recipe, exp: C.Experiment) -> None:
    from nemotron_jax.train.loop import run

    result = run(exp)
    if result.status != "finished":
        raise RuntimeError(f"stage {exp.name} ended with status {result.status}")


def stage_data(r: Recipe) -> None:
    from nemotron_jax.data.toyworld.export import build_toy_data

    if r.path("data", "data", "manifest.json").exists() and Path(r.tokenizer).exists():
        return
    with r.stage("data"):
        build_toy_data(r.path("data"), r.cfg.world, vocab_size=r.cfg.vocab_size,
                       treat_whitespace_as_suffix=r.cfg.tokenizer_whitespace_suffix)


def stage_pretrain(r: Recipe, name: str, model: C.ModelConfig, t: StageTrain) -> None:
    from nemotron_jax.data.toyworld.export import pretrain_data

    if r.done(name):
        return
    with r.stage(name):
        _train(r, _experiment(r, name, model, pretrain_data(r.cfg.world, r.tokenizer), t, weight_decay=0.1))
    r.mark(name)


def stage_reward_model(r: Recipe) -> None:
    if r.done("reward_model"):
        return
    data = C.HelpSteerData(paths=(r.data_file("helpsteer_train"),), tokenizer=r.tokenizer)
    loss = C.RewardRegression(lm_init_from=str(r.path("strong_base")))
    with r.stage("reward_model"):
        _train(r, _experiment(r, "reward_model", r.cfg.strong, data, r.cfg.reward_model, loss=loss))
    r.mark("reward_model")


def stage_sft(r: Recipe, name: str, model: C.ModelConfig, t: StageTrain, init_from: str, files: Sequence[str],
              replay: Optional[str] = None, label: str = "general", text_replay: float = 0.0) -> None:
    """One SFT stage; `text_replay` packs that share (per conversation) of English pretraining documents in."""
    if r.done(name):
        return
    text = (str(r.path("data", "data", "pretrain", "english.jsonl")),) if text_replay else ()
    data = C.ChatData(paths=tuple(files), tokenizer=r.tokenizer, replay_path=replay, text_replay_paths=text,
                      text_replay_fraction=text_replay)
    with r.stage(name):
        _train(r, _experiment(r, name, model, data, t, loss=C.SFT(stage=label), init_from=init_from))
    r.mark(name)


def preference_data(r: Recipe, pairs: str) -> C.PreferenceData:
    text = (str(r.path("data", "data", "pretrain", "english.jsonl")),) if r.cfg.pref_text_replay else ()
    return C.PreferenceData(paths=(pairs,), tokenizer=r.tokenizer, text_replay_paths=text,
                            text_replay_weight=r.cfg.pref_text_replay)


def stage_dpo(r: Recipe, pairs: str) -> None:
    if r.done("dpo"):
        return
    data = preference_data(r, pairs)
    loss = C.DPO(beta=r.cfg.dpo_beta, sft_weight=r.cfg.pref_sft_weight, reference="cached")
    with r.stage("dpo"):
        _train(r, _experiment(r, "dpo", r.cfg.strong, data, r.cfg.dpo, loss=loss, init_from=str(r.path("sft_general"))))
    r.mark("dpo")


def stage_rpo(r: Recipe, pairs: str) -> None:
    """Three RPO iterations; iteration i starts from and references iteration i-1 (the first: the DPO model)."""
    start = str(r.path("dpo"))
    for i in (1, 2, 3):
        name = f"rpo{i}"
        if not r.done(name):
            data = preference_data(r, pairs)
            loss = C.RPO(beta=r.cfg.rpo_beta, eta=r.cfg.rpo_eta, sft_weight=r.cfg.pref_sft_weight,
                         reference="cached", iterations=1)
            with r.stage(name):
                _train(r, _experiment(r, name, r.cfg.strong, data, r.cfg.rpo, loss=loss, init_from=start))
            r.mark(name)
        start = str(r.path(name))


# ------------------------------------------------------------------------------------------------------------
# Models in-process: policies for SDG and eval, the reward model for RM-as-judge
# ------------------------------------------------------------------------------------------------------------


def load_policy(r: Recipe, stage: str, model: C.ModelConfig) -> Any:
    from nemotron_jax.checkpoint.manager import load_params
    from nemotron_jax.data.tokenizer import load_tokenizer
    from nemotron_jax.inference.client import InferenceClient

    params = load_params(r.path(stage))
    return InferenceClient.from_params(params, model, load_tokenizer(r.tokenizer), model_name=stage, max_rows=64)


def load_reward_model(r: Recipe) -> tuple[Any, Any]:
    from nemotron_jax.checkpoint.manager import load_params
    from nemotron_jax.data.tokenizer import load_tokenizer

    return load_params(r.path("reward_model")), load_tokenizer(r.tokenizer)


def rm_scores(r: Recipe, prompts: Sequence[Any], responses: Sequence[str], batch: int = 64) -> list[float]:
    from nemotron_jax.model.heads import score_conversations

    params, tok = load_reward_model(r)
    out: list[float] = []
    for i in range(0, len(prompts), batch):
        res = score_conversations(params, r.cfg.strong, tok, list(prompts[i:i + batch]),
                                  list(responses[i:i + batch]))
        out += [float(x) for x in res["reward"]]
    return out


# ------------------------------------------------------------------------------------------------------------
# SDG rounds
# ------------------------------------------------------------------------------------------------------------


def sdg_pipeline(r: Recipe, round_name: str, models: Sequence[str]) -> Any:
    from nemotron_jax.sdg.runner import PipelineConfig

    c = r.cfg
    return PipelineConfig(
        name=round_name, out_dir=str(r.path(round_name)), seed=c.seed + (0 if round_name.endswith("1") else 1),
        concurrency=64, models={},
        stages=[
            {"type": "toyworld", "n": c.sdg_prompts if round_name.endswith("1") else c.sdg_prompts_round2,
             "instructed_share": c.world.preference_instructed_share, "split": "train", "world_seed": c.world.seed},
            {"type": "responses", "models": list(models), "k": max(c.sdg_k // len(models), 1),
             "temperature": c.sdg_temperature, "max_tokens": c.sdg_max_tokens},
            {"type": "judge_toyworld"},  # ground truth + instruction verifiers, HelpSteer rules -> 340B weights
            {"type": "pairs", "strategy": "best_vs_worst", "margin": 0.5},
            # a pair teaches what its chosen reply does right: keep pairs whose chosen reply is correct
            {"type": "filter_reward", "field": "chosen_reward", "min_reward": c.sdg_min_chosen_reward},
            # an empty reply cannot be scored by the RM nor read as a preference pair (both reject it, by file:line)
            {"type": "filter_length", "fields": ["chosen", "rejected"], "min_words": 1, "max_words": 200},
            {"type": "dedup", "field": "prompt", "near_threshold": None},  # short answers repeat across prompts
        ])


def stage_sdg(r: Recipe, round_name: str, policies: dict[str, tuple[str, C.ModelConfig]], *,
              min_pairs: int = 1) -> str:
    """One SDG round; `policies` maps a role to (stage, model): each answers every prompt (the paper's "several
    intermediate models"). Returns the RPO-ready pairs file (RM rewards attached)."""
    from nemotron_jax.sdg.clients import ModelClient
    from nemotron_jax.sdg.runner import run_pipeline

    out = r.path(round_name, "pairs_rm.jsonl")
    if r.done(round_name):
        return str(out)
    with r.stage(round_name):
        clients = {role: load_policy(r, stage, model) for role, (stage, model) in policies.items()}
        try:
            result = run_pipeline(sdg_pipeline(r, round_name, list(policies)), progress=True,
                                  clients={role: ModelClient(c.as_sdg_backend()) for role, c in clients.items()})
        finally:
            for c in clients.values():
                c.close()
        pairs = _read_jsonl(result.final_path)
        if r.cfg.sdg_instruction_pairs and _judged_path(result):
            pairs = _merge_pairs(pairs, _instruction_pairs(r, round_name, _judged_path(result)))
        if len(pairs) < min_pairs:
            raise RuntimeError(f"SDG produced {len(pairs)} preference pairs for {round_name}, fewer than the "
                               f"{min_pairs} the next stage needs: raise sdg_prompts or sdg_k, or the temperature")
        summary = attach_rm_rewards(r, pairs, out)
        summary.update(generators={role: stage for role, (stage, _) in policies.items()},
                       pipeline_counts=result.counts, mean_verifier_reward=_mean_response_score(result))
        r.mark(round_name, payload=summary)
    return str(out)


def instruction_pairs_pipeline(r: Recipe, round_name: str, judged: str) -> Any:
    """Pairs among a round's judged replies to prompts with instructions: the chosen reply follows every
    instruction, the rejected one breaks at least one, and both are right or both wrong."""
    from nemotron_jax.sdg.runner import PipelineConfig

    return PipelineConfig(
        name=round_name + "_instruction_pairs", out_dir=str(r.path(round_name, "instruction_pairs")),
        seed=r.cfg.seed,
        stages=[{"type": "jsonl", "path": judged},
                {"type": "pairs", "strategy": "best_vs_worst", "same": ["correct"], "contrast": ["followed"]},
                {"type": "filter_length", "fields": ["chosen", "rejected"], "min_words": 1, "max_words": 200},
                {"type": "dedup", "field": "prompt", "near_threshold": None}])


def _instruction_pairs(r: Recipe, round_name: str, judged: str) -> list[dict]:
    from nemotron_jax.sdg.runner import run_pipeline

    return _read_jsonl(run_pipeline(instruction_pairs_pipeline(r, round_name, judged), progress=False).final_path)


def _judged_path(result: Any) -> Optional[str]:
    """The last judge stage's output of a pipeline run (None without a judge)."""
    judged = [p for p in result.stage_paths if "judge" in Path(p).name]
    return judged[-1] if judged else None


def _merge_pairs(a: list[dict], b: list[dict]) -> list[dict]:
    """a, then the pairs of b not already in a (same prompt, chosen and rejected)."""
    key = lambda p: (json.dumps(p["prompt"]), p["chosen"], p["rejected"])  # noqa: E731
    seen = {key(p) for p in a}
    return a + [p for p in b if key(p) not in seen]


def _read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def _mean_response_score(result: Any) -> Optional[float]:
    """Mean judged score over every sampled response (how good the generator's data is)."""
    judged = _judged_path(result)
    if judged is None:
        return None
    scores = [resp["score"] for row in _read_jsonl(judged) for resp in row.get("responses", []) if "score" in resp]
    return round(sum(scores) / len(scores), 4) if scores else None


def attach_rm_rewards(r: Recipe, pairs: list[dict], out: Path) -> dict:
    """RM-as-judge: the reward model scores chosen and rejected (`rm_*_reward`); the share of pairs where it agrees
    with the verifiers is reported. `chosen_reward` / `rejected_reward`, the r* RPO matches (SPEC §5), come from
    `RecipeConfig.rpo_rewards`: "judge" keeps the SDG judge's (ground truth and verifiers first, the paper's order
    of trust), "reward_model" takes the RM's.
    """
    if not pairs:
        raise RuntimeError(f"SDG produced no preference pairs for {out.parent.name}: the responses never differed "
                           "enough; sample more responses (sdg_k) or raise the temperature")
    if r.cfg.rpo_rewards not in ("judge", "reward_model"):
        raise ValueError(f"RecipeConfig.rpo_rewards must be 'judge' or 'reward_model', got {r.cfg.rpo_rewards!r}")
    prompts = [p["prompt"] for p in pairs]
    chosen = rm_scores(r, prompts, [p["chosen"] for p in pairs])
    rejected = rm_scores(r, prompts, [p["rejected"] for p in pairs])
    agree = sum(c > j for c, j in zip(chosen, rejected)) / len(pairs)
    with out.open("w") as f:
        for p, c, j in zip(pairs, chosen, rejected):
            rec = {**p, "verifier_chosen_reward": p.get("chosen_reward"),
                   "verifier_rejected_reward": p.get("rejected_reward"), "rm_chosen_reward": c,
                   "rm_rejected_reward": j, "reward_source": r.cfg.rpo_rewards}
            if r.cfg.rpo_rewards == "reward_model":
                rec.update(chosen_reward=c, rejected_reward=j)
            f.write(json.dumps(rec) + "\n")
    return {"pairs": len(pairs), "rm_agrees_with_verifiers": round(agree, 4), "rpo_rewards": r.cfg.rpo_rewards}


# ------------------------------------------------------------------------------------------------------------
# Evaluation and the report
# ------------------------------------------------------------------------------------------------------------


def evaluate_policy(r: Recipe, stage: str, model: C.ModelConfig) -> dict[str, float]:
    """Held-out chat task accuracy, IFEval prompt/instruction strict accuracy and task accuracy under
    instructions, for one stage's checkpoint (greedy, batched through the in-process engine)."""
    from nemotron_jax.data.toyworld.evaluate import evaluate_tasks
    from nemotron_jax.eval.backends import CompletionsGenerator
    from nemotron_jax.eval.ifeval import evaluate_ifeval, load_ifeval
    from nemotron_jax.eval.io import iter_jsonl

    client = load_policy(r, stage, model)
    try:
        gen = CompletionsGenerator.in_process(client, batch=32, concurrency=2)
        tasks = [rec for _, rec in iter_jsonl(r.data_file("eval_tasks"))]
        t = evaluate_tasks(gen, tasks, max_tokens=64)
        ife = evaluate_ifeval(gen, load_ifeval(r.data_file("eval_ifeval")), max_tokens=128)
    finally:
        client.close()
    detail = r.path("eval", f"{stage}_detail.json")
    detail.parent.mkdir(parents=True, exist_ok=True)
    detail.write_text(json.dumps({"tasks_per_task": t["per_task"], "tasks_predictions": t["predictions"][:50],
                                  "ifeval": {k: v for k, v in ife.items() if k != "predictions"}}, indent=1))
    return {"Tasks": 100 * t["accuracy"], "IFEval-P": 100 * ife["prompt_strict"],
            "IFEval-I": 100 * ife["instruction_strict"]}


def evaluate_reward_model(r: Recipe) -> dict[str, Any]:
    from nemotron_jax.eval.reward_bench import ModelRewardScorer, evaluate_reward_model, load_rewardbench

    params, tok = load_reward_model(r)
    res = evaluate_reward_model(ModelRewardScorer(params, r.cfg.strong, tok),
                               load_rewardbench(r.data_file("eval_rm_pairs")))
    return res


def stage_eval(r: Recipe) -> dict[str, dict[str, float]]:
    results_path = r.path("eval", "results.json")
    results: dict[str, dict[str, float]] = json.loads(results_path.read_text()) if results_path.exists() else {}
    with r.stage("eval"):
        for stage, model in [("weak_sft", r.cfg.weak)] + [(s, r.cfg.strong) for s in STAGE_ORDER]:
            label = STAGE_LABELS[stage]
            if label not in results:
                results[label] = evaluate_policy(r, stage, model)
                results_path.parent.mkdir(parents=True, exist_ok=True)
                results_path.write_text(json.dumps(results, indent=2))
                r.log(f"[eval] {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in results[label].items()))
        if not r.path("eval", "reward_model.json").exists():
            r.path("eval", "reward_model.json").write_text(json.dumps(evaluate_reward_model(r), indent=2))
    return results


def write_report(r: Recipe, results: dict[str, dict[str, float]]) -> Path:
    from nemotron_jax.eval.report import plot_stages, stage_table

    rm = json.loads(r.path("eval", "reward_model.json").read_text())
    sdg = {n: json.loads(r.path(n, "DONE").read_text()) for n in ("sdg_round1", "sdg_round2") if r.done(n)}
    lines = [f"# Toy weak-to-strong recipe: {r.cfg.name}", "",
             "Held-out toy-world tasks, each stage scored like the paper's per-stage table (SPEC §6): `Tasks` is "
             "chat-format exact-match accuracy on held-out questions without instructions; `IFEval-P` / `IFEval-I` "
             "are prompt- and instruction-level strict accuracy on held-out instructed prompts.", "",
             stage_table(results), "",
             f"Reward model (RewardBench-shaped, held-out pairs differing in one verifiable attribute): "
             f"overall {100 * _overall(rm):.1f}%.", ""]
    for name, s in sdg.items():
        lines.append(f"SDG {name}: models {s.get('generators')}, {s.get('pairs')} pairs, mean judged reward of "
                     f"sampled responses {s.get('mean_verifier_reward')}, RM-as-judge agrees with the verifiers on "
                     f"{100 * s.get('rm_agrees_with_verifiers', 0):.0f}% of pairs.")
    lines += ["", "Stage wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in r.timings.items()), "",
              "![stages](stages.png)", ""]
    report = r.path("report.md")
    report.write_text("\n".join(lines))
    plot_stages(results, r.path("stages.png"), title=f"{r.cfg.name}: held-out accuracy per stage")
    return report


def _overall(rm: dict) -> float:
    for key in ("overall", "accuracy", "score"):
        if isinstance(rm.get(key), (int, float)):
            return float(rm[key])
    raise KeyError(f"reward-bench result has no overall accuracy: keys {sorted(rm)}")


# ------------------------------------------------------------------------------------------------------------
# The whole recipe
# ------------------------------------------------------------------------------------------------------------


def run_recipe(cfg: RecipeConfig, *, log: Any = print) -> Path:
    """Run (or resume) every stage; returns the report's path."""
    r = Recipe(cfg, log=log)
    stage_data(r)
    stage_pretrain(r, "weak_base", cfg.weak, cfg.weak_pretrain)
    stage_pretrain(r, "strong_base", cfg.strong, cfg.strong_pretrain)
    stage_reward_model(r)
    sft_code, sft_general = r.data_file("sft_code"), r.data_file("sft_general")
    stage_sft(r, "weak_sft", cfg.weak, cfg.weak_sft, str(r.path("weak_base")), [sft_general])
    stage_sft(r, "sft_code", cfg.strong, cfg.sft_code, str(r.path("strong_base")), [sft_code], label="code")
    stage_sft(r, "sft_general", cfg.strong, cfg.sft_general, str(r.path("sft_code")), [sft_general],
              replay=sft_code, text_replay=cfg.sft_text_replay)
    # Round 1: the weak generator and the intermediate (SFT) policy answer; judged pairs align the strong model.
    pairs1 = stage_sdg(r, "sdg_round1", {"generator": ("weak_sft", cfg.weak), "policy": ("sft_general", cfg.strong)},
                       min_pairs=max(cfg.dpo.batch, cfg.rpo.batch))
    stage_dpo(r, pairs1)
    stage_rpo(r, pairs1)
    # Round 2: the aligned strong model is now the generator (its data would align the next, stronger base).
    stage_sdg(r, "sdg_round2", {"generator": ("rpo3", cfg.strong)})
    results = stage_eval(r)
    report = write_report(r, results)
    log(report.read_text())
    return report


def cli_main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="nemotron-jax demo", description="The toy weak-to-strong recipe on a CPU.")
    ap.add_argument("--quick", action="store_true", help="the same path in a couple of minutes (tests, smoke runs)")
    ap.add_argument("--out", default=None, help="run folder (default runs/<name>)")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    cfg = RecipeConfig()
    if args.quick:
        cfg = quick(cfg)
    if args.out:
        cfg = cfg.replace(out_dir=args.out)
    run_recipe(cfg)
    return 0
