"""Megatron's batch-size ramp, realised as gradient accumulation over a fixed microbatch shape.

The global batch (in sequences) is a function of the samples consumed so far, in one of two forms:

    step form    "0:768 200B:1536 400B:2304" -- from each threshold on, that batch. Thresholds count samples or
                 tokens (`BatchConfig.ramp_unit`) and take K/M/B/T suffixes (powers of 1000). A token threshold
                 becomes ceil(tokens / seq_len) samples.
    linear form  Megatron's --rampup-batch-size START INCREMENT RAMP_SAMPLES: the batch starts at START and grows
                 by INCREMENT every RAMP_SAMPLES / ((GLOBAL - START) / INCREMENT) consumed samples, reaching GLOBAL
                 once RAMP_SAMPLES have been consumed.

Every step's batch is `micro_batch x data_parallel x accum`: the device batch [b = micro_batch x data_parallel, T]
never changes shape, only the accumulation count A does, so a ramp costs one compile per distinct A (the loop feeds
the step [A, b, T]). Megatron's rules apply and are checked before anything compiles: GLOBAL - START divisible by
INCREMENT, and every batch the ramp can reach divisible by micro_batch x data_parallel.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from nemotron_jax.config import BatchConfig, ConfigError

_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_count(text: str) -> int:
    """'200B' -> 200_000_000_000; '1.5M' -> 1_500_000; '768' -> 768."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMBGT]?)\s*", text.upper())
    if not m:
        raise ConfigError(f"cannot read {text!r} as a count; write digits with an optional K/M/B/T suffix")
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    if value != int(value):
        raise ConfigError(f"count {text!r} is not a whole number")
    return int(value)


def parse_step_ramp(spec: str) -> tuple[tuple[int, int], ...]:
    """'0:768 200B:1536' -> ((0, 768), (200_000_000_000, 1536)): (threshold, global batch) pairs."""
    pairs = []
    for item in spec.replace(",", " ").split():
        if item.count(":") != 1:
            raise ConfigError(f"batch ramp entry {item!r} in {spec!r} must look like THRESHOLD:BATCH, e.g. 200B:1536")
        at, batch = item.split(":")
        pairs.append((parse_count(at), parse_count(batch)))
    if not pairs or pairs[0][0] != 0:
        raise ConfigError(f"batch ramp {spec!r} must start at threshold 0 (e.g. '0:768 200B:1536')")
    thresholds = [t for t, _ in pairs]
    if any(b <= a for a, b in zip(thresholds, thresholds[1:])):
        raise ConfigError(f"batch ramp {spec!r}: thresholds must increase strictly")
    if any(b < 1 for _, b in pairs):
        raise ConfigError(f"batch ramp {spec!r}: every batch must be >= 1")
    return tuple(pairs)


@dataclass(frozen=True)
class BatchRamp:
    """Global batch and accumulation count as functions of consumed samples."""

    global_batch: int
    micro_batch: int
    data_parallel: int
    steps: tuple[tuple[int, int], ...] = ()  # step form: (threshold in samples, batch)
    linear: Optional[tuple[int, int, int]] = None  # linear form: (start, increment, ramp_samples)

    @property
    def rows(self) -> int:
        """Rows of one device-batch (microbatch) across data parallelism: micro_batch x data_parallel."""
        return self.micro_batch * self.data_parallel

    def batch_at(self, consumed_samples: int) -> int:
        """The global batch of the step that starts after `consumed_samples`."""
        if self.steps:
            return [b for t, b in self.steps if t <= consumed_samples][-1]
        if self.linear:
            start, inc, ramp_samples = self.linear
            if consumed_samples >= ramp_samples or start == self.global_batch:
                return self.global_batch
            per_increment = ramp_samples / ((self.global_batch - start) // inc)
            return start + int(consumed_samples / per_increment) * inc
        return self.global_batch

    def accum_at(self, consumed_samples: int) -> int:
        """Gradient-accumulation count A of the step that starts after `consumed_samples`."""
        return self.batch_at(consumed_samples) // self.rows

    def reachable_batches(self) -> tuple[int, ...]:
        """Every global batch this ramp can produce, ascending."""
        if self.steps:
            return tuple(sorted({b for _, b in self.steps}))
        if self.linear:
            start, inc, _ = self.linear
            return tuple(range(start, self.global_batch + 1, inc))
        return (self.global_batch,)

    def steps_for_samples(self, samples: int) -> int:
        """Number of steps until at least `samples` have been consumed."""
        steps, consumed = 0, 0
        while consumed < samples:
            if self.batch_at(consumed) == self.global_batch:  # no more ramp: close the rest in one division
                return steps + math.ceil((samples - consumed) / self.global_batch)
            consumed += self.batch_at(consumed)
            steps += 1
        return steps

    def samples_after(self, steps: int) -> int:
        """Samples consumed after `steps` steps from the start."""
        consumed = 0
        for done in range(steps):
            batch = self.batch_at(consumed)
            if batch == self.global_batch:
                return consumed + (steps - done) * batch
            consumed += batch
        return consumed


def make_ramp(cfg: BatchConfig, *, data_parallel: int, seq_len: int) -> BatchRamp:
    """Build and check the ramp of `cfg` for a data-parallel size and sequence length (errors say how to fix)."""
    rows = cfg.micro_batch * data_parallel
    steps: tuple[tuple[int, int], ...] = ()
    linear = None
    if cfg.ramp:
        parsed = parse_step_ramp(cfg.ramp)
        to_samples = (lambda t: math.ceil(t / seq_len)) if cfg.ramp_unit == "tokens" else (lambda t: t)
        steps = tuple((to_samples(t), b) for t, b in parsed)
        if parsed[-1][1] != cfg.global_batch:
            raise ConfigError(f"batch ramp {cfg.ramp!r} ends at {parsed[-1][1]} but global_batch={cfg.global_batch}; "
                              f"set batch.global_batch={parsed[-1][1]}")
    elif cfg.ramp_start is not None:
        start, inc, ramp_samples = cfg.ramp_start, cfg.ramp_increment, cfg.ramp_samples
        if not 0 < start <= cfg.global_batch:
            raise ConfigError(f"ramp_start={start} must be in (0, global_batch={cfg.global_batch}]")
        diff = cfg.global_batch - start
        if diff and (inc < 1 or diff % inc):
            raise ConfigError(f"expected global batch size interval ({diff}) to be divisible by global batch size "
                              f"increment ({inc}): choose ramp_increment dividing global_batch - ramp_start")
        if diff and ramp_samples < 1:
            raise ConfigError("ramp_samples must be >= 1 for a linear ramp")
        linear = (start, max(inc, 1), ramp_samples)
    ramp = BatchRamp(cfg.global_batch, cfg.micro_batch, data_parallel, steps, linear)
    for batch in ramp.reachable_batches():
        if batch % rows:
            raise ConfigError(f"global batch size ({batch}) is not divisible by micro-batch-size ({cfg.micro_batch}) "
                              f"times data parallel size ({data_parallel}); make every batch of the ramp a multiple "
                              f"of {rows} (or change batch.micro_batch / the data-parallel size)")
    return ramp
