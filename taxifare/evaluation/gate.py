"""The gate: bless a candidate only when it beats the distance baseline and is not worse than the
champion beyond the tolerance; the decision record that deploy, the views and the registry keep."""

from __future__ import annotations

from taxifare.evaluation.scoring import Scored, slice_metrics
from trainer import baseline
from trainer.features import FEATURES, LABEL

WHO = ("candidate", "baseline", "champion")


def decide(
    candidate: dict[str, float], baseline_metrics: dict[str, float], champion: dict[str, float] | None, tolerance: float
) -> tuple[bool, str]:
    """Bless the candidate only if it beats the baseline and is not worse than the champion beyond tolerance."""
    c, b = candidate["rmse"], baseline_metrics["rmse"]
    if not c < b:
        return False, f"candidate RMSE {c:.3f} does not beat the distance baseline {b:.3f}"
    if champion is None:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f}; no champion yet"
    best, limit = champion["rmse"], champion["rmse"] * (1 + tolerance)
    change = abs(c - best) / best if best else 0.0
    if c > limit:
        return False, (
            f"candidate RMSE {c:.3f} is {change:.1%} worse than the champion's {best:.3f}, "
            f"beyond the {tolerance:.0%} tolerance (limit {limit:.3f})"
        )
    if c == best:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f} and equals the champion's"
    if c < best:
        return True, f"candidate RMSE {c:.3f} beats the baseline {b:.3f} and the champion's {best:.3f} by {change:.1%}"
    return True, (
        f"candidate RMSE {c:.3f} beats the baseline {b:.3f}; it is {change:.1%} worse than the champion's "
        f"{best:.3f}, within the {tolerance:.0%} tolerance"
    )


def other_source(champion: dict | None, candidate: dict | None) -> str | None:
    """Why the champion's figures are not comparable with the candidate's, or None when they are
    (same data source and schema) or when the candidate's own lineage is unknown."""
    if champion is None or not candidate:
        return None
    theirs, ours = champion.get("source"), candidate.get("source")
    if not theirs:
        return "it records no data source (registered by an older taxifare)"
    if theirs != ours:
        return f"it was trained on {theirs}; this candidate on {ours}"
    if champion.get("schema") != candidate.get("schema"):
        return "it was trained on another feature schema"
    return None


def assess(scored: Scored, tolerance: float, lineage: dict | None = None, allow_new_source: bool = False) -> dict:
    """The decision record: metrics, slices, the gate's verdict and a sample prediction.

    `lineage`: the candidate's data (source, schema, test fingerprint). A champion of another source
    is scored here on this test split all the same (shown), but it is not replaced on those figures
    unless `allow_new_source`; with it, the candidate need only beat the baseline.
    """
    truth = scored.test[LABEL]
    metrics = {who: baseline.regression_metrics(truth, pred) for who, pred in scored.predictions.items()}
    apart = other_source(scored.champion_lineage, lineage) if "champion" in metrics else None
    if apart and not allow_new_source:
        blessed, reason = (
            False,
            (
                f"the champion {scored.champion_version} stays: {apart}, so their figures are not comparable; "
                "allow_new_source (--allow-new-source) lets this candidate replace it"
            ),
        )
    else:
        champ = None if apart else metrics.get("champion")
        blessed, reason = decide(metrics["candidate"], metrics["baseline"], champ, tolerance)
        reason += f" (a new data source: {apart})" if apart else ""
    champion = scored.predictions.get("champion")
    return {
        "candidate": metrics["candidate"],
        "baseline": metrics["baseline"],
        "champion": metrics.get("champion"),
        "champion_version": scored.champion_version,
        "comparable": apart is None,
        "lineage": lineage or {},
        "blessed": blessed,
        "reason": reason,
        "test_rows": len(truth),
        "slices": slice_metrics(scored),
        "baseline_rule": {"intercept": scored.rule.intercept, "rate_per_degree": scored.rule.rate_per_degree},
        "sample": {
            "instance": {name: float(scored.test[name][0]) for name in FEATURES},
            "fare_amount": float(truth[0]),
            "candidate": float(scored.predictions["candidate"][0]),
            "champion": None if champion is None else float(champion[0]),
        },
    }


def metrics(result: dict) -> dict[str, float]:
    """The decision's figures as flat metrics: each model's, each slice's RMSE, and the verdict."""
    out: dict[str, float] = {}
    for who in WHO:
        out.update({f"{who}_{name}": value for name, value in (result[who] or {}).items()})
    for s in result.get("slices", []):
        key = s["name"].replace(" ", "_")
        out.update({f"slice_{key}_{who}_rmse": s[who]["rmse"] for who in WHO if s.get(who)})
    out["blessed"] = int(result["blessed"])
    return out


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def summary(result: dict) -> list[str]:
    champ = result.get("champion")
    champion = f"{_fmt(champ['rmse'])} ({result.get('champion_version')})" if champ else "none"
    lines = [
        f"RMSE candidate {_fmt(result['candidate']['rmse'])} · baseline {_fmt(result['baseline']['rmse'])} · "
        f"champion {champion}"
    ]
    if sample := result.get("sample"):
        inst = sample["instance"]
        lines.append(
            f"sample: ${sample['candidate']:.2f} for a trip ({inst['pickuplon']:.4f}, {inst['pickuplat']:.4f}) -> "
            f"({inst['dropofflon']:.4f}, {inst['dropofflat']:.4f}), {int(inst['passengers'])} passenger(s); "
            f"actual ${sample['fare_amount']:.2f}"
        )
    # The verdict last: a run's views take a task's last line as its headline.
    lines.append(("blessed: " if result["blessed"] else "not blessed: ") + result["reason"])
    return lines
