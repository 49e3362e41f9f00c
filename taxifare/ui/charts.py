"""The console's charts as inline SVG, drawn on the server by matplotlib (nothing runs in the browser,
nothing is fetched). Figures are made without pyplot (its global state is not for a threaded
server) and drawn one at a time; text stays text (searchable, and readable by the tests).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#bc4c00", "#1b7c83", "#6e7781")
_LOCK = threading.Lock()


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Series:
    label: str
    x: Sequence[Any]
    y: Sequence[float]
    colour: str
    dashed: bool = False
    links: Sequence[str] | None = None  # a URL per point: clicking a point opens it
    marked: Sequence[bool] | None = None  # points drawn filled and larger (e.g. deployed runs)


def _finite(series: Series) -> tuple[list[Any], list[float], list[str] | None, list[bool] | None]:
    keep = [i for i, v in enumerate(series.y) if isinstance(v, int | float) and math.isfinite(v)]
    links = [series.links[i] for i in keep] if series.links else None
    marked = [series.marked[i] for i in keep] if series.marked else None
    return [series.x[i] for i in keep], [float(series.y[i]) for i in keep], links, marked


def _draw(series: Series, ax: Any) -> None:
    x, y, links, marked = _finite(series)
    if not x:
        return
    ax.plot(x, y, color=series.colour, linestyle="--" if series.dashed else "-", linewidth=1.6,
            alpha=0.75 if series.dashed else 1.0, label=series.label, marker="o" if len(x) < 50 else None,
            markersize=3)  # fmt: skip
    if links is not None or marked is not None:
        big = marked or [False] * len(x)
        points = ax.scatter(x, y, s=[60 if b else 22 for b in big], color=series.colour, zorder=3,
                            edgecolors="black", linewidths=[1.0 if b else 0 for b in big])  # fmt: skip
        if links:
            points.set_urls(links)


def _clip(ax: Any, series: Sequence[Series]) -> None:
    """Leave out the first steps' large values (training starts far off), so the ends can be told apart."""
    values = sorted(v for s in series for v in _finite(s)[1])
    if len(values) > 4:
        low, high = values[0], values[len(values) // 2]
        ax.set_ylim(low - 0.05 * (high - low + 1e-9), min(values[-1], high + 3 * (high - low)) * 1.02)


def lines(series: Sequence[Series], title: str, xlabel: str, ylabel: str, log_y: bool = False,
          clip: bool = False) -> str:  # fmt: skip
    """Line charts overlaid on one pair of axes, as an <svg> element (`clip`: the y axis cut to the bulk
    of the values)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with _LOCK, rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(7.6, 3.6), dpi=100)
        ax = fig.add_subplot()
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        for s in series:
            _draw(s, ax)
        if log_y and all(v > 0 for s in series for v in _finite(s)[1]):
            ax.set_yscale("log")
        if any(isinstance(v, dt.datetime) for s in series for v in s.x):
            from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

            locator = AutoDateLocator()
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        if clip:
            _clip(ax, series)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(fontsize=7, loc="best")
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]
