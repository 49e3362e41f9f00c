"""The drift section of a run's report: each feature's population stability index against the model's
training data, and its distribution then and now (the training share of each bin beside the new one),
drawn as plain SVG from the drift artifact that check_drift (batch) or stage_data (training) wrote."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from taxifare.report.html import escape, table

W, H, PAD = 220, 70, 4
TRAINING, NOW = "#8c959f", "#0969da"


def fragment(path: str) -> str:
    """The section for the drift report at `path` ('' when it holds no comparison)."""
    try:
        with open(path) as f:
            report = json.load(f)
    except (OSError, ValueError):
        return ""
    if not isinstance(report, dict) or not isinstance(report.get("psi"), dict) or not report["psi"]:
        return ""
    threshold = report.get("threshold", 0)
    verdict = (
        f'<p class="bad">flagged: {escape(", ".join(report.get("drifted", [])))} moved beyond PSI {threshold:g}</p>'
        if report.get("flagged")
        else f'<p class="ok">no feature moved beyond PSI {threshold:g}</p>'
    )
    rows = [
        (name, "drifted" if name in report.get("drifted", []) else "", value) for name, value in report["psi"].items()
    ]
    figures = "".join(_figure(name, shares) for name, shares in (report.get("shares") or {}).items())
    tallied, seen = report.get("rows", 0), report.get("rows_seen", report.get("rows", 0))
    counted = f"{seen:,} valid rows" + (f" ({tallied:,} of them counted: all of the first 200,000, then one in 8)"
                                        if seen != tallied else "")  # fmt: skip
    return (
        "<h2>Drift</h2>"
        f'<p class="muted">{counted} against {report.get("reference_rows", 0):,} rows of '
        "the model's training sample; population stability index per feature (under 0.1: little change, "
        "0.1-0.25: some, over 0.25: a shift worth a look).</p>"
        + verdict
        + table(["feature", "", "PSI"], rows, numeric_from=2)
        + '<p class="muted">grey: training, blue: now (the share of rows in each bin)</p>'
        + f'<div class="figures">{figures}</div>'
    )


def _figure(name: str, shares: Mapping[str, Sequence[float]]) -> str:
    then, now = list(shares.get("training", [])), list(shares.get("now", []))
    if not then or len(then) != len(now):
        return ""
    top = max(max(then), max(now), 1e-9)
    width = (W - 2 * PAD) / len(then)
    bars: list[str] = []
    for i, (a, b) in enumerate(zip(then, now, strict=True)):
        x = PAD + i * width
        for j, (value, color) in enumerate(((a, TRAINING), (b, NOW))):
            h = (H - 20) * value / top
            bars.append(f'<rect x="{x + j * width / 2:.1f}" y="{H - h:.1f}" width="{width / 2:.1f}" height="{h:.1f}" '
                        f'fill="{color}"/>')  # fmt: skip
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11" '
        f'role="img" aria-label="{escape(name)}: training and now"><text x="{PAD}" y="12">{escape(name)}</text>'
        + "".join(bars)
        + "</svg>"
    )
