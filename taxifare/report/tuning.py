"""A study's results where users look: the trials table (terminal and HTML) and the metric by trial.

`fragment` is what the run report and evaluate's HTML artifact embed (between the markers, like
evaluate's); `page` is the tune step's own HTML artifact; `lines` the terminal table.
"""

from __future__ import annotations

import re
from typing import Any

from taxifare.report.html import escape, page, table
from taxifare.tuning.records import Study, Trial

MARKERS = ("<!-- tuning -->", "<!-- /tuning -->")
FRAGMENT = re.compile(re.escape(MARKERS[0]) + "(.*)" + re.escape(MARKERS[1]), re.S)
STATE_COLORS = {"complete": "#0969da", "pruned": "#9a6700", "failed": "#cf222e", "running": "#59636e"}


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def names(study: Study) -> list[str]:
    """The searched settings, in the order the space lists them."""
    return [s.split(" ", 1)[0] for s in study.space]


def headline(study: Study) -> str:
    best = study.best
    counts = ", ".join(f"{study.count(s)} {s}" for s in ("complete", "pruned", "failed") if study.count(s))
    head = f"{len(study.trials)} trial(s) ({counts or 'none finished'}), scored on {study.scored_on}"
    if best is None:
        return f"{head}: no trial completed"
    return f"{head}; best #{best.number} {study.metric.upper()} {best.value:.3f}"


def best_line(study: Study) -> str:
    best = study.best
    if best is None:
        return "best: none (no trial completed)"
    shown = " ".join(f"{k}={_show(v)}" for k, v in best.params.items())
    return f"best: trial {best.number}, {study.metric.upper()} {best.value:.3f}: {shown}"


def rows(study: Study) -> list[list[Any]]:
    best = study.best
    out = []
    for t in study.trials:
        mark = "★" if best and t.number == best.number else ""
        shown = [_show(t.params.get(n, "")) for n in names(study)]
        note = t.error or ("the given settings" if t.given else "")
        out.append([f"{t.number}{mark}", t.state, t.value, t.seconds, *shown, note])
    return out


def lines(study: Study) -> list[str]:
    """The trials as a terminal table, then the best."""
    header = ["#", "state", study.metric, "seconds", *names(study), "note"]
    body = [[str(c) if not isinstance(c, float) else f"{c:.3f}" if c < 1000 else f"{c:,.0f}" for c in
             ("" if v is None else v for v in row)] for row in rows(study)]  # fmt: skip
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header) - 1)]
    out = []
    for row in [header, *body]:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        out.append("  ".join([*cells, row[-1][:70]]).rstrip())
    return [*out, best_line(study)]


def trial_line(t: Trial, metric: str = "rmse") -> str:
    value = f"{metric} {t.value:.3f}" if t.value is not None else (t.error or "")
    took = f" {t.seconds:.1f}s" if t.seconds is not None else ""
    params = " ".join(f"{k}={_show(v)}" for k, v in t.params.items())
    given = " (the given settings)" if t.given else ""
    return f"trial {t.number:>3} {t.state:<8}{took} {value}  {params}{given}".rstrip()


def plot(study: Study) -> str:
    """The metric by trial (each trial's final or last reported value, coloured by state; the best so
    far as a line), as inline SVG."""
    from taxifare.report.plots import _figure, _svg

    fig, ax = _figure(f"{study.metric.upper()} by trial")
    for state, color in STATE_COLORS.items():
        pts = [(t.number, _last(t)) for t in study.trials if t.state == state and _last(t) is not None]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=22, color=color, label=state)
    best, running = [], float("inf")
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.state == "complete" and t.value is not None:
            running = min(running, t.value)
        best.append((t.number, running))
    shown = [(n, v) for n, v in best if v != float("inf")]
    if shown:
        ax.step([p[0] for p in shown], [p[1] for p in shown], where="post", color="#1a7f37", label="best so far")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{study.metric} (pruned: at the prune)")
    ax.legend(fontsize=8)
    return _svg(fig)


def _last(t: Trial) -> float | None:
    if t.value is not None:
        return t.value
    return t.curve[-1][1] if t.curve else None


def fragment(study: Study) -> str:
    header = ["trial", "state", study.metric, "seconds", *names(study), "note"]
    parts = [
        "<h2>Tuning</h2>",
        f"<p>{escape(headline(study))} ({escape(study.where)}); searched: {escape('; '.join(study.space))}</p>",
        f"<p><b>{escape(best_line(study))}</b></p>",
        '<div class="figures">' + plot(study) + "</div>" if study.trials else "",
        table(header, rows(study)),
    ]
    return "\n".join(parts)


def html_page(study: Study) -> str:
    """The tune step's artifact; the markers (only when it tuned) let the run report take the fragment out."""
    title = "taxifare tuning"
    if not study.trials:
        return page(
            title, f"<h1>{title}</h1>\n<p>tuning off ({escape(study.error or '')}): the given hyperparameters</p>"
        )
    return page(title, f"<h1>{title}</h1>\n{MARKERS[0]}{fragment(study)}{MARKERS[1]}")


def from_html(text: str) -> str:
    """The fragment back out of a page `html_page` wrote ('' if none)."""
    found = FRAGMENT.search(text)
    return found.group(1) if found else ""
