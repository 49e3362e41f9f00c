"""Evaluation figures as inline SVG, drawn by matplotlib's SVG backend (no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from trainer import slices

COLORS = {"candidate": "#0969da", "champion": "#8250df", "baseline": "#9a6700"}
MAX_POINTS = 2000  # a scatter of the whole test split would make a heavy page for no gain


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: it goes inside HTML


def _figure(title: str) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("svg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.0), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.3)
    return fig, ax


def predicted_vs_actual(truth: np.ndarray, predictions: Mapping[str, np.ndarray], seed: int = 0) -> str:
    """Each model's predicted fare against the actual one, on a sample of the test split."""
    fig, ax = _figure("Predicted vs actual fare ($)")
    pick = np.random.default_rng(seed).permutation(len(truth))[:MAX_POINTS]
    top = float(np.percentile(truth, 99.5)) if len(truth) else 1.0
    for name, pred in predictions.items():
        ax.scatter(truth[pick], pred[pick], s=6, alpha=0.45, label=name, color=COLORS.get(name))
    ax.plot([0, top], [0, top], color="#59636e", linewidth=1, label="perfect")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("actual fare ($)")
    ax.set_ylabel("predicted fare ($)")
    ax.legend(fontsize=8)
    return _svg(fig)


def residuals_by_distance(km: np.ndarray, truth: np.ndarray, predictions: Mapping[str, np.ndarray]) -> str:
    """RMSE and bias (mean of predicted - actual) per straight-line distance band."""
    fig, ax = _figure("Error by trip distance")
    bands = slices.DISTANCE_BANDS_KM
    labels = [f"{lo:g}+" if np.isinf(hi) else f"{lo:g}-{hi:g}" for lo, hi in bands]
    x = np.arange(len(bands))
    width = 0.8 / max(len(predictions), 1)
    for i, (name, pred) in enumerate(predictions.items()):
        rmse, bias = [], []
        for lo, hi in bands:
            rows = (km >= lo) & (km < hi)
            err = pred[rows] - truth[rows]
            rmse.append(float(np.sqrt(np.mean(err**2))) if rows.any() else 0.0)
            bias.append(float(np.mean(err)) if rows.any() else 0.0)
        ax.bar(x + i * width, rmse, width, label=f"{name} RMSE", color=COLORS.get(name), alpha=0.8)
        ax.plot(x + i * width, bias, "o", color=COLORS.get(name), markeredgecolor="black", label=f"{name} bias")
    ax.axhline(0, color="#59636e", linewidth=0.8)
    ax.set_xticks(x + width * (len(predictions) - 1) / 2, labels)
    ax.set_xlabel("trip distance (km)")
    ax.set_ylabel("$")
    ax.legend(fontsize=7)
    return _svg(fig)
