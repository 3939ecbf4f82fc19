"""Per-stage reports in the paper's shape (SPEC §6): rows = checkpoints/stages, columns = benchmarks, as Markdown
and as a PNG chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Sequence

Results = Mapping[str, Mapping[str, float]]  # stage -> column -> score (percent)

# The paper's per-alignment-stage table (Nemotron-4 340B report; SPEC §6), for side-by-side reading.
PAPER_STAGES: dict[str, dict[str, float]] = {
    stage: dict(zip(("MT-Bench", "MMLU", "GSM8K", "HumanEval", "IFEval-P", "IFEval-I"), row))
    for stage, row in {
        "Code SFT": (6.79, 72.2, 77.6, 70.7, 46.4, 53.8),
        "+ General SFT": (7.99, 78.3, 87.9, 66.5, 61.4, 71.9),
        "+ DPO": (7.90, 78.4, 88.5, 67.1, 61.7, 72.7),
        "+ RPO (1)": (8.21, 78.5, 91.1, 70.7, 78.2, 84.5),
        "+ RPO (2)": (8.31, 78.6, 91.8, 68.3, 79.9, 86.1),
        "+ RPO (3)": (8.22, 78.7, 92.3, 73.2, 79.9, 86.1),
    }.items()
}


def columns_of(results: Results) -> list[str]:
    """Every column that any stage reports, in first-seen order."""
    cols: list[str] = []
    for row in results.values():
        cols += [c for c in row if c not in cols]
    return cols


def _cell(v: Optional[float], digits: int) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def stage_table(results: Results, columns: Optional[Sequence[str]] = None, *, digits: int = 1,
                first_header: str = "Stage") -> str:
    """A Markdown table, stages in the given order; a benchmark a stage did not run shows '–'."""
    cols = list(columns) if columns is not None else columns_of(results)
    lines = ["| " + " | ".join([first_header] + cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for stage, row in results.items():
        lines.append("| " + " | ".join([stage] + [_cell(row.get(c), digits) for c in cols]) + " |")
    return "\n".join(lines) + "\n"


def plot_stages(results: Results, path: str | Path, *, title: str = "Benchmarks per stage") -> Path:
    """One line per benchmark across the stages (x in stage order), saved as PNG with matplotlib's Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    stages, cols = list(results), columns_of(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(stages) + 3), 4.5))
    for c in cols:
        ys = [results[s].get(c, float("nan")) for s in stages]
        ax.plot(range(len(stages)), ys, marker="o", label=c)
    ax.set_xticks(range(len(stages)), stages, rotation=20, ha="right")
    values = [v for s in stages for v in results[s].values() if not math.isnan(v)]
    if values and 0 <= min(values) and max(values) <= 100:
        ax.set_ylim(-2, 102)  # percent scores on their full scale, so a flat line at 0 reads as 0
    ax.set_ylabel("score (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
