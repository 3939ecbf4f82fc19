"""Frozen dataclasses that describe a run: the model, its parallel layout, optimiser, data, loss and experiment.

Every config validates itself in `__post_init__` and fails with a message that says how to fix it, so a bad
experiment file dies before anything is compiled. Variants are made with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


class ConfigError(ValueError):
    """A configuration that cannot work; the message says how to fix it."""


def _require(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------

ATTENTION_IMPLS = ("auto", "xla", "fused", "cudnn")
CUDNN_DTYPES = ("bfloat16", "float16")  # cuDNN's flash kernel computes in half precision only
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelConfig:
    """A Nemotron-4 decoder: pre-LayerNorm1p blocks, GQA with partial RoPE, squared-ReLU MLP, untied output."""

    name: str
    vocab_size: int
    num_layers: int
    d_model: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    ffn_dim: int
    max_seq_len: int = 4096
    rotary_fraction: float = 0.5
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    init_std: float = 0.02
    # Megatron's default: output projections (attention out, MLP down) start at init_std / sqrt(2 * layers).
    scaled_out_init: bool = True
    dtype: str = "float32"  # compute dtype; parameters are always fp32 masters
    # "xla" reference einsums | "fused" jax.nn.dot_product_attention (XLA) | "cudnn" its flash kernel |
    # "auto": cudnn on a GPU wherever it applies, else xla (see attention_core)
    attention_impl: str = "auto"
    remat: str = "none"  # a key of nemotron_jax.model.transformer.REMAT_POLICIES
    scan_layers: bool = True
    bos_id: int = 2
    eos_id: int = 3
    pad_id: int = 0

    def __post_init__(self) -> None:
        for f in ("vocab_size", "num_layers", "d_model", "num_heads", "num_kv_heads", "head_dim", "ffn_dim",
                  "max_seq_len"):
            _require(getattr(self, f) > 0, f"ModelConfig.{f} must be positive, got {getattr(self, f)}")
        _require(self.num_heads % self.num_kv_heads == 0,
                 f"num_heads={self.num_heads} is not divisible by num_kv_heads={self.num_kv_heads}: GQA shares "
                 f"each KV head among num_heads/num_kv_heads query heads; pick num_kv_heads from the divisors "
                 f"of {self.num_heads}.")
        _require(0.0 < self.rotary_fraction <= 1.0,
                 f"rotary_fraction must be in (0, 1], got {self.rotary_fraction}")
        rot = self.head_dim * self.rotary_fraction
        _require(rot == int(rot) and int(rot) % 2 == 0,
                 f"head_dim * rotary_fraction = {rot} rotary dims; it must be an even whole number because "
                 f"RoPE rotates pairs (i, i + R/2). Change head_dim or rotary_fraction.")
        _require(self.dtype in COMPUTE_DTYPES, f"dtype must be one of {COMPUTE_DTYPES}, got {self.dtype!r}")
        _require(self.attention_impl in ATTENTION_IMPLS,
                 f"attention_impl must be one of {ATTENTION_IMPLS}, got {self.attention_impl!r}")
        if self.attention_impl == "cudnn":
            _require(self._cudnn_applies(),
                     f"attention_impl='cudnn' needs dtype in {CUDNN_DTYPES} and head_dim a multiple of 8 up to "
                     f"256 (got dtype={self.dtype!r}, head_dim={self.head_dim}); use attention_impl='auto', which "
                     f"falls back to the XLA core where cuDNN does not apply.")
        from nemotron_jax.model.remat import REMAT_POLICIES  # local import: config stays dependency-light

        _require(self.remat in REMAT_POLICIES,
                 f"remat={self.remat!r} is not a known policy; choose one of {sorted(REMAT_POLICIES)}")
        for tok in ("bos_id", "eos_id", "pad_id"):
            _require(0 <= getattr(self, tok) < self.vocab_size,
                     f"{tok}={getattr(self, tok)} is outside the vocabulary [0, {self.vocab_size})")

    @property
    def rotary_dim(self) -> int:
        return int(self.head_dim * self.rotary_fraction)

    @property
    def q_per_kv(self) -> int:
        return self.num_heads // self.num_kv_heads

    def _cudnn_applies(self) -> bool:
        return self.dtype in CUDNN_DTYPES and self.head_dim % 8 == 0 and self.head_dim <= 256

    def attention_core(self, backend: str, compute_capability: Optional[str] = None) -> str:
        """The attention core this config runs on `backend` ("cpu", "gpu", ...) with a GPU of `compute_capability`
        (default "9.0", Hopper, what the cluster plans assume). "auto" is cuDNN's flash kernel where JAX offers it
        (half-precision compute; Ampere or later; head dim a multiple of 8, at most 128 before Hopper and 256 from
        it): measured 1.6x the XLA core's train step on an H200 (BENCHMARKS.md). Elsewhere the einsum reference."""
        if self.attention_impl != "auto":
            return self.attention_impl
        cc = float(compute_capability or "9.0")
        fits = cc >= 8.0 and self.head_dim <= (256 if cc >= 9.0 else 128)
        return "cudnn" if backend == "gpu" and self._cudnn_applies() and fits else "xla"

    def replace(self, **kw: Any) -> "ModelConfig":
        return dataclasses.replace(self, **kw)


def nemotron4_340b(**kw: Any) -> ModelConfig:
    """Nemotron-4 340B (SPEC §1): 96 layers, D 18432, 96 heads / 8 KV heads of 192, FFN 73728, vocab 256000."""
    base = dict(name="nemotron4-340b", vocab_size=256_000, num_layers=96, d_model=18432, num_heads=96,
                num_kv_heads=8, head_dim=192, ffn_dim=73728, max_seq_len=4096, init_std=0.0063,
                dtype="bfloat16", remat="full")
    return ModelConfig(**{**base, **kw})


def nemotron4_15b(**kw: Any) -> ModelConfig:
    """Nemotron-4 15B: 32 layers, D 6144, 48 heads / 8 KV heads of 128, FFN 24576, vocab 256000."""
    base = dict(name="nemotron4-15b", vocab_size=256_000, num_layers=32, d_model=6144, num_heads=48,
                num_kv_heads=8, head_dim=128, ffn_dim=24576, max_seq_len=4096, init_std=0.0134,
                dtype="bfloat16", remat="full")
    return ModelConfig(**{**base, **kw})


def nemotron_1b(**kw: Any) -> ModelConfig:
    """A ~1B Nemotron-shaped model for single-GPU checks (same code path, 256K vocab)."""
    base = dict(name="nemotron-1b", vocab_size=256_000, num_layers=16, d_model=2048, num_heads=16,
                num_kv_heads=4, head_dim=128, ffn_dim=8192, max_seq_len=4096, init_std=0.02,
                dtype="bfloat16")
    return ModelConfig(**{**base, **kw})


def toy_tiny(**kw: Any) -> ModelConfig:
    """The unit-test model: every dimension small but distinct, head_dim != d_model / heads, GQA 2:1."""
    base = dict(name="toy-tiny", vocab_size=128, num_layers=2, d_model=32, num_heads=4, num_kv_heads=2,
                head_dim=12, ffn_dim=64, max_seq_len=64, init_std=0.05)
    return ModelConfig(**{**base, **kw})


def toy_small(**kw: Any) -> ModelConfig:
    """The toy world's model (~13M parameters with an 8K vocabulary); trains on a laptop CPU in minutes."""
    base = dict(name="toy-small", vocab_size=8192, num_layers=4, d_model=256, num_heads=8, num_kv_heads=2,
                head_dim=32, ffn_dim=1024, max_seq_len=512, init_std=0.02)
    return ModelConfig(**{**base, **kw})


def bench_cpu(**kw: Any) -> ModelConfig:
    """The CPU train-step benchmark shape: 4 layers, D 512, 8 heads / 2 KV heads of 64, FFN 2048, vocab 8192."""
    base = dict(name="bench-cpu", vocab_size=8192, num_layers=4, d_model=512, num_heads=8, num_kv_heads=2,
                head_dim=64, ffn_dim=2048, max_seq_len=512, init_std=0.02)
    return ModelConfig(**{**base, **kw})


MODEL_PRESETS = {
    "nemotron4-340b": nemotron4_340b,
    "nemotron4-15b": nemotron4_15b,
    "nemotron-1b": nemotron_1b,
    "toy-tiny": toy_tiny,
    "toy-small": toy_small,
    "bench-cpu": bench_cpu,
}


def model_preset(name: str, **kw: Any) -> ModelConfig:
    """Look a preset up by name (`toy-small`, `nemotron4-340b`, ...)."""
    if name not in MODEL_PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name](**kw)


# ----------------------------------------------------------------------------------------------------------------
# Parallel layout
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParallelConfig:
    """Mesh sizes (one may be -1: inferred from the device count) and the pipeline/sequence/optimizer switches."""

    data: int = -1
    fsdp: int = 1
    pipeline: int = 1
    tensor: int = 1
    virtual_stages: int = 1  # interleaved (circular) pipeline chunks per stage
    microbatches: int = 1  # pipeline microbatches per step
    sequence_parallel: bool = False
    shard_optimizer: bool = True  # distributed optimizer: Adam moments + fp32 master sharded over data

    def __post_init__(self) -> None:
        sizes = (self.data, self.fsdp, self.pipeline, self.tensor)
        _require(sum(s == -1 for s in sizes) <= 1,
                 f"at most one of data/fsdp/pipeline/tensor may be -1 (inferred), got {sizes}")
        _require(all(s == -1 or s >= 1 for s in sizes), f"mesh sizes must be >= 1 or -1, got {sizes}")
        _require(self.virtual_stages >= 1, f"virtual_stages must be >= 1, got {self.virtual_stages}")
        _require(self.microbatches >= 1, f"microbatches must be >= 1, got {self.microbatches}")
        _require(self.virtual_stages == 1 or self.pipeline > 1,
                 "virtual_stages > 1 needs pipeline > 1 (interleaving splits each pipeline stage)")

    def replace(self, **kw: Any) -> "ParallelConfig":
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Optimiser and schedules
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with global-norm clipping and an LR schedule (NeMo's pretraining defaults, SPEC §2)."""

    lr: float = 1e-4
    min_lr: float = 1e-5
    schedule: str = "cosine"  # cosine | constant | linear | wsd (warmup-stable-decay, for continued pretraining)
    warmup_steps: int = 500
    decay_steps: Optional[int] = None  # None: the run's total steps minus warmup
    wsd_decay_fraction: float = 0.2  # wsd: share of steps spent in the final decay
    wsd_decay_shape: str = "linear"  # wsd: linear | cosine | sqrt (steeper at the end)
    b1: float = 0.9
    b2: float = 0.95
    eps: float = 1e-5
    weight_decay: float = 0.1
    clip_norm: float = 1.0
    max_nonfinite_in_a_row: int = 10

    def __post_init__(self) -> None:
        _require(self.schedule in ("cosine", "constant", "linear", "wsd"),
                 f"schedule must be cosine|constant|linear|wsd, got {self.schedule!r}")
        _require(self.lr >= 0 and self.min_lr >= 0, "learning rates must be non-negative")
        _require(0.0 <= self.wsd_decay_fraction <= 1.0, "wsd_decay_fraction must be in [0, 1]")

    def replace(self, **kw: Any) -> "OptimConfig":
        return dataclasses.replace(self, **kw)


AdamW = OptimConfig  # the name experiment files use


# ----------------------------------------------------------------------------------------------------------------
# Training loop: batch sizing and ramp, checkpoints, logging, the pretraining loss, the Experiment (loop engineer)
# ----------------------------------------------------------------------------------------------------------------

RAMP_UNITS = ("samples", "tokens")


@dataclass(frozen=True)
class BatchConfig:
    """Global batch in sequences of `seq_len` tokens, the per-replica microbatch, and an optional Megatron ramp.

    Each step's batch is micro_batch x data_parallel x accum; a ramp changes only accum (train/ramp.py). Ramp forms:
    `ramp="0:768 200B:1536 400B:2304"` (thresholds in `ramp_unit`, K/M/B/T suffixes) or the linear
    `ramp_start`/`ramp_increment`/`ramp_samples` (Megatron --rampup-batch-size).
    """

    global_batch: int
    seq_len: int
    micro_batch: int = 1  # rows per data-parallel replica per accumulation microbatch
    ramp: Optional[str] = None
    ramp_unit: str = "samples"
    ramp_start: Optional[int] = None
    ramp_increment: int = 0
    ramp_samples: int = 0

    def __post_init__(self) -> None:
        for f in ("global_batch", "seq_len", "micro_batch"):
            _require(getattr(self, f) >= 1, f"BatchConfig.{f} must be >= 1, got {getattr(self, f)}")
        _require(self.ramp_unit in RAMP_UNITS, f"ramp_unit must be one of {RAMP_UNITS}, got {self.ramp_unit!r}")
        _require(not (self.ramp and self.ramp_start is not None),
                 "give either the step ramp (batch.ramp='0:768 200B:1536') or the linear ramp (batch.ramp_start/"
                 "ramp_increment/ramp_samples), not both")

    def replace(self, **kw: Any) -> "BatchConfig":
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class CheckpointConfig:
    """Orbax checkpoints under `<run_dir>/checkpoints` (or `dir`): every `save_every` steps, at the end, on SIGTERM."""

    save_every: int = 1000
    keep: int = 3  # newest checkpoints kept; older ones are deleted
    async_save: bool = True  # training continues while the checkpoint is written
    save_on_sigterm: bool = True  # preemption: finish the step, save, exit cleanly
    resume: bool = True  # start from the newest checkpoint in the folder when there is one
    dir: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.save_every >= 1, f"checkpoint.save_every must be >= 1, got {self.save_every}")
        _require(self.keep >= 1, f"checkpoint.keep must be >= 1, got {self.keep}")


@dataclass(frozen=True)
class LoggingConfig:
    """Metrics every `every` steps to `<run_dir>/metrics.jsonl` and TensorBoard, and a console progress bar."""

    every: int = 10
    jsonl: bool = True
    tensorboard: bool = True
    progress: bool = True
    peak_flops: Optional[float] = None  # per device, FLOP/s, for MFU; None: looked up from the device kind

    def __post_init__(self) -> None:
        _require(self.every >= 1, f"logging.every must be >= 1, got {self.every}")


@dataclass(frozen=True)
class NextTokenLoss:
    """Pretraining: masked next-token NLL averaged over target tokens (the loop's `pretrain` task)."""


@dataclass(frozen=True)
class Experiment:
    """One training run: the model, its data, loss, optimiser, layout and batch, how long, where it writes.

    Exactly one of `steps`, `train_samples`, `train_tokens` sets the length (samples/tokens go through the ramp).
    `init_from` loads parameters only (a training checkpoint folder or a step inside it) before step 0.
    """

    name: str
    model: ModelConfig
    data: Any
    batch: BatchConfig
    loss: Any = field(default_factory=NextTokenLoss)
    optim: OptimConfig = field(default_factory=OptimConfig)
    parallel: ParallelConfig = field(default_factory=lambda: ParallelConfig(data=1))
    steps: Optional[int] = None
    train_samples: Optional[int] = None
    train_tokens: Optional[int] = None
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    init_from: Optional[str] = None
    run_dir: Optional[str] = None  # default runs/<name>
    seed: int = 0

    def __post_init__(self) -> None:
        lengths = [f for f in ("steps", "train_samples", "train_tokens") if getattr(self, f) is not None]
        _require(len(lengths) == 1, f"set exactly one of steps / train_samples / train_tokens, got {lengths or 'none'}")
        _require(getattr(self, lengths[0]) >= 1, f"{lengths[0]} must be >= 1, got {getattr(self, lengths[0])}")
        _require(self.batch.seq_len <= self.model.max_seq_len,
                 f"batch.seq_len={self.batch.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}; "
                 f"lower batch.seq_len or raise model.max_seq_len")

    @property
    def out_dir(self) -> str:
        return self.run_dir or f"runs/{self.name}"

    def replace(self, **kw: Any) -> "Experiment":
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Data: text sources and the pretraining pipeline (data engineer; nemotron_jax/data/{sources,pipelines}.py)
# ----------------------------------------------------------------------------------------------------------------

SOURCE_KINDS = ("auto", "jsonl", "parquet", "text", "python")


@dataclass(frozen=True)
class TextSource:
    """One weighted document source. `path`: a file, folder or glob; for kind `python`, 'module:function'.

    kind `auto` picks jsonl/parquet/text from the suffix. JSONL/parquet read `text_field` (dotted for nested JSON).
    Plain text is one document per file (`text_unit="file"`) or per blank-line-separated block (`"blocks"`).
    kind `python` calls the function with `kwargs` (a tuple of (name, value) pairs) and uses the list of strings it
    returns — the way in-memory corpora such as the toy world's enter the pipeline.
    """

    path: str
    weight: float = 1.0  # share of *tokens* (packed rows) drawn from this source, relative to the others
    kind: str = "auto"
    name: str = ""  # shown in logs and stats; default: the path
    text_field: str = "text"
    text_unit: str = "file"
    kwargs: tuple = ()

    def __post_init__(self) -> None:
        _require(bool(self.path), "TextSource.path is empty")
        _require(self.kind in SOURCE_KINDS, f"TextSource.kind must be one of {SOURCE_KINDS}, got {self.kind!r}")
        _require(self.weight > 0, f"TextSource {self.label!r}: weight must be > 0, got {self.weight}")
        _require(self.text_unit in ("file", "blocks"), f"text_unit must be 'file' or 'blocks', got {self.text_unit!r}")

    @property
    def label(self) -> str:
        return self.name or self.path


@dataclass(frozen=True)
class TextData:
    """Pretraining text: a token-weighted blend of sources, tokenized and packed into rows (data/pipelines.py).

    The sequence length and batch size come from the run (`BatchConfig`), not from here. Each source is shuffled
    globally per epoch with a seed derived from `seed` and its name, repeated `num_epochs` times (None = forever),
    sharded by index across processes, packed on its own, and the packed rows are interleaved by weight. With a
    finite `num_epochs` the stream ends when the first source runs out. Changing `worker_count` changes the stream.
    """

    sources: tuple[TextSource, ...]
    tokenizer: str = ""  # path of a SentencePiece .model
    seed: int = 0
    shuffle: bool = True
    num_epochs: Optional[int] = None
    add_bos: bool = True
    add_eos: bool = True
    packing: str = "concat"  # concat (cut documents at row ends) | first_fit (whole documents, padded; truncates)
    packing_bins: int = 8  # first_fit: open rows per packing group
    on_bad_record: str = "skip"  # skip (count, log file:line, continue) | raise (stop with file:line)
    max_bad_records: Optional[int] = None  # skip mode: stop once a source has skipped more than this
    worker_count: int = 0  # grain worker processes (0: in the training process)
    read_threads: int = 0  # threads reading+tokenizing documents per source (0: inline)
    prefetch_batches: int = 2  # batches prepared ahead by a background thread (0: off)

    def __post_init__(self) -> None:
        _require(len(self.sources) > 0, "TextData.sources is empty; give at least one TextSource")
        labels = [s.label for s in self.sources]
        _require(len(set(labels)) == len(labels),
                 f"TextData source names must be unique (they key the blend and its saved state): {labels}; "
                 f"set TextSource.name")
        _require(self.packing in ("concat", "first_fit"), f"packing must be concat|first_fit, got {self.packing!r}")
        _require(self.on_bad_record in ("skip", "raise"),
                 f"on_bad_record must be 'skip' or 'raise', got {self.on_bad_record!r}")
        _require(self.num_epochs is None or self.num_epochs >= 1, "num_epochs must be None or >= 1")
        for f in ("packing_bins",):
            _require(getattr(self, f) >= 1, f"TextData.{f} must be >= 1")
        for f in ("worker_count", "read_threads", "prefetch_batches"):
            _require(getattr(self, f) >= 0, f"TextData.{f} must be >= 0")

    def replace(self, **kw: Any) -> "TextData":
        return dataclasses.replace(self, **kw)


def nemotron4_blend(english: str, multilingual: str, code: str, **kw: Any) -> TextData:
    """The paper's pretraining mix (SPEC §2): 70% English, 15% multilingual, 15% code, by tokens."""
    return TextData(sources=(TextSource(english, weight=0.70, name="english"),
                             TextSource(multilingual, weight=0.15, name="multilingual"),
                             TextSource(code, weight=0.15, name="code")), **kw)


# ----------------------------------------------------------------------------------------------------------------
# Alignment: chat/preference/reward data and the SFT, DPO, RPO and reward-model losses (alignment engineer)
# ----------------------------------------------------------------------------------------------------------------

PREFERENCE_LOSS_KINDS = ("dpo", "ipo", "rpo_bwd_kl", "rpo_fwd_kl", "rpo_sq")
REFERENCE_MODES = ("on_the_fly", "cached")


@dataclass(frozen=True)
class ChatData:
    """Chat SFT data: JSONL `{"messages": [...]}` files, loss on assistant turns, first-fit packed into rows.

    `replay_path` (general SFT): the previous stage's data, of which a seeded `replay_fraction` subset (the paper's
    2% of the code-SFT samples) is blended in against forgetting.
    `text_replay_paths`: plain documents (`{"text"}` JSONL, e.g. the pretraining corpus) packed in with loss on every
    token, `text_replay_fraction` of them per conversation (seeded, without replacement while there are enough):
    keeps the knowledge pretraining stored while SFT reshapes the format (off by default, as in the paper; the
    toy recipe's 2-layer models forget without it).
    """

    paths: tuple[str, ...]
    tokenizer: str
    replay_path: Optional[str] = None
    replay_fraction: float = 0.02
    text_replay_paths: tuple[str, ...] = ()
    text_replay_fraction: float = 0.0
    append_eos: bool = False  # train an eos after the final <extra_id_1> as well
    pack: bool = True  # first-fit packing (segment ids keep documents apart); False: one conversation per row
    packing_bins: int = 8
    shuffle: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.paths, tuple) and len(self.paths) > 0,
                 "ChatData.paths must be a non-empty tuple of JSONL paths, e.g. paths=('data/sft.jsonl',)")
        _require(0.0 <= self.replay_fraction <= 1.0, f"replay_fraction must be in [0, 1], got {self.replay_fraction}")
        _require(self.packing_bins >= 1, "ChatData.packing_bins must be >= 1")
        _require(self.text_replay_fraction >= 0.0,
                 f"ChatData.text_replay_fraction must be >= 0, got {self.text_replay_fraction}")
        _require(isinstance(self.text_replay_paths, tuple),
                 "ChatData.text_replay_paths must be a tuple of JSONL paths")
        _require(self.text_replay_fraction == 0 or len(self.text_replay_paths) > 0,
                 "ChatData.text_replay_fraction > 0 needs text_replay_paths ({\"text\"} JSONL files)")


@dataclass(frozen=True)
class PreferenceData:
    """Preference pairs: JSONL `{"prompt", "chosen", "rejected"[, "chosen_reward", "rejected_reward"]}`.

    Each pair becomes two unpacked rows (chosen_*, rejected_* keys). `reward_model`: a reward-model checkpoint that
    scores pairs lacking rewards when the dataset is built (RPO); rows longer than seq_len are dropped and counted.
    `text_replay_paths` / `text_replay_weight`: every pair row comes with one row packed from these plain
    `{"text"}` documents (read whole, cycled in seeded epochs), whose per-token next-token NLL joins the loss at that
    weight per pair: pretraining replay against forgetting, as ChatData.text_replay_* does for SFT.
    """

    paths: tuple[str, ...]
    tokenizer: str
    reward_model: Optional[str] = None
    reward_weights: Optional[tuple[float, ...]] = None  # None: the 340B aggregation (SPEC §3)
    shuffle: bool = True
    text_replay_paths: tuple[str, ...] = ()
    text_replay_weight: float = 0.0

    def __post_init__(self) -> None:
        _require(isinstance(self.paths, tuple) and len(self.paths) > 0,
                 "PreferenceData.paths must be a non-empty tuple of JSONL paths")
        _require(self.text_replay_weight >= 0, f"text_replay_weight must be >= 0, got {self.text_replay_weight}")
        _require(not self.text_replay_weight or self.text_replay_paths,
                 f"PreferenceData.text_replay_weight={self.text_replay_weight} needs text_replay_paths (JSONL files "
                 f'of {{"text": ...}} documents)')


@dataclass(frozen=True)
class HelpSteerData:
    """Reward-model regression data: JSONL `{"prompt", "response", <attribute>: 0..4, ...}` (absent = −100)."""

    paths: tuple[str, ...]
    tokenizer: str
    attributes: tuple[str, ...] = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
    shuffle: bool = True

    def __post_init__(self) -> None:
        _require(isinstance(self.paths, tuple) and len(self.paths) > 0,
                 "HelpSteerData.paths must be a non-empty tuple of JSONL paths")
        _require(len(self.attributes) > 0, "HelpSteerData.attributes is empty")


@dataclass(frozen=True)
class SFT:
    """Supervised fine-tuning: next-token NLL over assistant tokens, averaged per trained token (SPEC §5)."""

    stage: str = "general"  # a label for reports: "code" | "general"


@dataclass(frozen=True)
class DPO:
    """DPO-family preference optimisation against a frozen reference (the init_from checkpoint), SPEC §5.

    Paper ranges (340B DPO): beta in [3e-4, 3e-3], SFT weight on chosen in [1e-5, 1e-3], LR in [3e-8, 3e-7].
    `reference`: "cached" computes the reference log-probs once before training and stores them on disk under
    `ref_cache_dir` (default <run_dir>/reference_logps); "on_the_fly" runs the reference inside every step.
    """

    beta: float = 1e-3
    kind: str = "dpo"
    eta: float = 1.0
    sft_weight: float = 1e-5
    length_normalize: bool = False  # S(y) per token instead of summed
    sft_length_normalize: bool = False
    reference: str = "cached"
    ref_cache_dir: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.kind in PREFERENCE_LOSS_KINDS, f"kind must be one of {PREFERENCE_LOSS_KINDS}, got {self.kind!r}")
        _require(self.beta > 0, f"beta must be > 0, got {self.beta}")
        _require(self.sft_weight >= 0, f"sft_weight must be >= 0, got {self.sft_weight}")
        _require(self.reference in REFERENCE_MODES, f"reference must be one of {REFERENCE_MODES}")


@dataclass(frozen=True)
class RPO(DPO):
    """Reward-aware preference optimisation (SPEC §5): KL(Bern(σ(ηΔr)) ‖ Bern(σ(βΔ))) by default.

    Paper: η = 1, beta in [1e-3, 1], SFT weight 1e-5, LR 3e-7, 3 iterations, each starting from and referencing the
    previous iteration's result (the first from the DPO model). Rewards come from the data or PreferenceData.reward_model.
    """

    beta: float = 0.03
    kind: str = "rpo_bwd_kl"
    iterations: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.iterations >= 1, f"RPO.iterations must be >= 1, got {self.iterations}")


@dataclass(frozen=True)
class RewardRegression:
    """Multi-attribute regression reward model (SPEC §3): masked MSE, −100 = missing label.

    `lm_init_from`: an LM checkpoint whose trunk initialises the model (lm_head dropped, a head with bias added);
    Experiment.init_from instead resumes from a reward-model checkpoint.
    """

    num_attributes: int = 5
    lm_init_from: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.num_attributes >= 1, f"num_attributes must be >= 1, got {self.num_attributes}")


@dataclass(frozen=True)
class BradleyTerry:
    """Pairwise reward model on PreferenceData: −log σ(r_c − r_r [− m]) or |m|·(−log σ(r_c − r_r)).

    The margin m is chosen_reward − rejected_reward from the data when `margin_mode` is set. With num_attributes > 1
    the scalar reward is the weighted aggregation (`weights`, default the 340B vector).
    """

    num_attributes: int = 1
    margin_mode: Optional[str] = None  # None | "subtract" | "scale"
    weights: Optional[tuple[float, ...]] = None
    lm_init_from: Optional[str] = None

    def __post_init__(self) -> None:
        _require(self.margin_mode in (None, "subtract", "scale"),
                 f"margin_mode must be None, 'subtract' or 'scale', got {self.margin_mode!r}")
        _require(self.num_attributes >= 1, f"num_attributes must be >= 1, got {self.num_attributes}")


# ----------------------------------------------------------------------------------------------------------------
# Toy world: the seeded stand-in for every dataset of the recipe (toy-world engineer; nemotron_jax/data/toyworld/)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyWorldConfig:
    """The toy world's seed and size, and how many records each stage's file gets (data/toyworld/export.py)."""

    seed: int = 0
    n_people: int = 48
    n_places: int = 12
    n_things: int = 24
    heldout_fraction: float = 0.2  # share of task items (by hashed id) kept out of every training record
    pretrain_chars: int = 4_000_000
    blend_english: float = 0.70  # the paper's 70/15/15 English / multilingual / code blend, by characters here
    blend_lingo: float = 0.15
    blend_code: float = 0.15
    # English document kinds and their shares (data/toyworld/corpus.py ENGLISH_KINDS): quiz sheets and chat-format
    # exchanges ask about training items only; biographies, pages and practice sheets state every item's knowledge
    english_mix: tuple = (("biography", 0.4), ("place", 0.1), ("thing", 0.1), ("quiz", 0.2), ("practice", 0.2),
                          ("chat_qa", 0.0))
    tokenizer_chars: int = 1_000_000
    code_sft: int = 2000
    general_sft: int = 4000
    instructed_share: float = 0.04  # general SFT: share of prompts carrying IFEval-style instructions
    two_turn_share: float = 0.0  # general SFT: share of chats with a second exchange (new task or a revision)
    preference_prompts: int = 1000
    preference_pairs: int = 1000
    preference_instructed_share: float = 0.5
    helpsteer: int = 2000
    helpsteer_val: int = 200
    helpsteer_instructed_share: float = 0.6  # HelpSteer rows: share of prompts with instructions
    helpsteer_responses_per_prompt: int = 2  # like HelpSteer2: responses of different kinds to one prompt
    helpsteer_broken_share: float = 0.4  # instructed prompts: chance a response breaks one instruction
    eval_per_task: int = 40
    eval_ifeval: int = 100
    eval_mc: int = 100
    eval_code: int = 20
    eval_rm_pairs: int = 200

    def __post_init__(self) -> None:
        _require(0.0 < self.heldout_fraction < 1.0,
                 f"ToyWorldConfig.heldout_fraction must be strictly between 0 and 1, got {self.heldout_fraction}")
        _require(min(self.n_people, self.n_places, self.n_things) >= 4,
                 "ToyWorldConfig needs at least 4 people, places and things")
        _require(self.helpsteer_responses_per_prompt >= 1,
                 "ToyWorldConfig.helpsteer_responses_per_prompt must be >= 1")
        for f in ("instructed_share", "two_turn_share", "preference_instructed_share", "helpsteer_instructed_share",
                  "helpsteer_broken_share"):
            _require(0.0 <= getattr(self, f) <= 1.0, f"ToyWorldConfig.{f} must be in [0, 1], got {getattr(self, f)}")
        _require(min(self.blend_english, self.blend_lingo, self.blend_code) >= 0 and sum(self.blend.values()) > 0,
                 "ToyWorldConfig blend weights must be >= 0 with a positive sum")

    @property
    def blend(self) -> dict[str, float]:
        return {"english": self.blend_english, "lingo": self.blend_lingo, "code": self.blend_code}

    def replace(self, **kw: Any) -> "ToyWorldConfig":
        return dataclasses.replace(self, **kw)
