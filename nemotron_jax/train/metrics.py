"""Training metrics: JSONL lines, TensorBoard scalars and a live tqdm bar with ETA.

Each logged step writes one JSON object to `<run_dir>/metrics.jsonl`:
    {"step", "loss", "grad_norm", "lr", "batch_size", "accum", "tokens", "consumed_samples", "step_time_s",
     "tokens_per_s", "mfu" (when the device peak is known), "skipped", ... plus the loss's own aux metrics}
Only the process with index 0 writes; every process may call `log`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import jax
import numpy as np

from nemotron_jax.config import LoggingConfig, ModelConfig
from nemotron_jax.train import flops

# Dense bf16 peak FLOP/s per device, by a substring of `device.device_kind` (lower case).
PEAK_FLOPS = {"h100": flops.H100_BF16_PEAK, "h200": flops.H200_BF16_PEAK, "a100": 312e12}


def device_peak_flops(device: Optional[jax.Device] = None) -> Optional[float]:
    """The known bf16 peak of `device` (default: the first device), or None (e.g. CPU)."""
    kind = (device or jax.devices()[0]).device_kind.lower()
    return next((peak for key, peak in PEAK_FLOPS.items() if key in kind), None)


def _scalar(v: Any) -> float:
    return float(np.asarray(v))


class MetricsLogger:
    """Writes per-step metrics to JSONL and TensorBoard, and drives the console progress bar."""

    def __init__(self, out_dir: str | Path, cfg: LoggingConfig, *, model: ModelConfig, seq_len: int,
                 total_steps: int, start_step: int = 0, num_devices: int = 1) -> None:
        self.cfg, self.model, self.seq_len, self.num_devices = cfg, model, seq_len, num_devices
        self.peak = cfg.peak_flops if cfg.peak_flops is not None else device_peak_flops()
        self.writer = jax.process_index() == 0
        self.out_dir = Path(out_dir)
        self._jsonl = self._tb = self._bar = None
        if not self.writer:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if cfg.jsonl:
            path = self.out_dir / "metrics.jsonl"
            if path.exists():  # a resumed run: drop records past the checkpoint it resumed from
                kept = [line for line in path.read_text().splitlines()
                        if line.strip() and json.loads(line)["step"] <= start_step]
                path.write_text("".join(line + "\n" for line in kept))
            self._jsonl = open(path, "a")
        if cfg.tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        if cfg.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    def derived(self, *, batch_size: int, step_time_s: float) -> dict[str, float]:
        """tokens/s and (when the device peak is known) MFU of a step."""
        out = {"tokens_per_s": batch_size * self.seq_len / max(step_time_s, 1e-9)}
        if self.peak:
            out["mfu"] = flops.mfu(self.model, seq_len=self.seq_len, global_batch=batch_size, step_time_s=step_time_s,
                                   num_devices=self.num_devices, peak_flops=self.peak)
        return out

    def record(self, step: int, metrics: dict[str, Any], *, batch_size: int, step_time_s: float,
               extra: Optional[dict[str, Any]] = None) -> dict[str, float]:
        """One step's flat record: the step's metrics (fetched from the device), `extra`, throughput and MFU."""
        record = {"step": int(step), **{k: _scalar(v) for k, v in metrics.items()}, **(extra or {}),
                  "batch_size": int(batch_size), "step_time_s": float(step_time_s)}
        record.update(self.derived(batch_size=batch_size, step_time_s=step_time_s))
        return record

    def write(self, record: dict[str, float]) -> None:
        """Append a record to the JSONL file and TensorBoard."""
        step = record["step"]
        if self._jsonl:
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        if self._tb:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(f"train/{k}", v, step)

    def advance(self, step: int, record: Optional[dict[str, float]] = None) -> None:
        """Move the progress bar to `step`, showing the newest loss and throughput."""
        if not self._bar:
            return
        self._bar.update(step - self._bar.n)
        if record:
            post = {"loss": f"{record.get('loss', float('nan')):.4f}", "tok/s": f"{record['tokens_per_s']:.0f}"}
            if "mfu" in record:
                post["mfu"] = f"{100 * record['mfu']:.1f}%"
            self._bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        for handle in (self._jsonl, self._tb, self._bar):
            if handle is not None:
                handle.close()
        self._jsonl = self._tb = self._bar = None


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def plot_loss(jsonl: str | Path, png: str | Path, *, title: str = "") -> Path:
    """Training loss against step (and against tokens seen on a second axis) from a metrics.jsonl, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [r for r in read_jsonl(jsonl) if "loss" in r]
    steps = [r["step"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, [r["loss"] for r in records], lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats / token)")
    ax.set_title(title or Path(jsonl).parent.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return Path(png)
