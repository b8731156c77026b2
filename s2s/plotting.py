"""Pictures: attention matrices and training curves (matplotlib, no display needed)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_attention(weights: Sequence[Sequence[float]], src_tokens: Sequence[str],
                   tgt_tokens: Sequence[str], path: str | Path,
                   copy: Sequence[float] | None = None) -> Path:
    """weights: tgt_len x src_len; rows are output tokens, columns source tokens.
    copy (copy attention): P(copy) per output token, drawn as a column on the right."""
    width = max(4, 0.45 * len(src_tokens) + 2) + (0.8 if copy else 0)
    fig, axes = plt.subplots(1, 2 if copy else 1, figsize=(width, max(3, 0.45 * len(tgt_tokens) + 2)),
                             squeeze=False, width_ratios=[len(src_tokens), 1] if copy else None)
    ax = axes[0][0]
    ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_tokens)), src_tokens, rotation=90)
    ax.set_yticks(range(len(tgt_tokens)), tgt_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if copy:
        _plot_copy_column(axes[0][1], copy)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _plot_copy_column(ax, copy: Sequence[float]) -> None:
    ax.imshow([[c] for c in copy], cmap="magma", aspect="auto", vmin=0.0, vmax=1.0)
    for row, value in enumerate(copy):
        ax.text(0, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="cyan")
    ax.set_xticks([0], ["P(copy)"], rotation=90)
    ax.set_yticks([])


def plot_history(history: Sequence[dict[str, float]], path: str | Path) -> Path:
    """Training loss and the dev metrics against steps."""
    steps = [r["step"] for r in history]
    dev_keys = [k for k in history[0] if k.startswith("dev_")]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(steps, [r["train_loss"] for r in history], marker="o")
    left.set_xlabel("step")
    left.set_ylabel("train loss / token")
    for key in dev_keys:
        right.plot(steps, [r[key] for r in history], marker="o", label=key[4:])
    right.set_xlabel("step")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_history(history: Sequence[dict[str, float]], out_dir: str | Path) -> None:
    """OUT/history.json and, when there is anything to draw, OUT/training_curve.png."""
    out_dir = Path(out_dir)
    (out_dir / "history.json").write_text(json.dumps(list(history), indent=2))
    if history:
        plot_history(history, out_dir / "training_curve.png")
