"""A Vertex AI tuning trial's metric: the trainer reports its eval RMSE with `cloudml-hypertune`.

Vertex AI's hyperparameter tuning service runs the trainer once per trial with the trial's values
as flags and CLOUD_ML_TRIAL_ID set; the trainer then reports TUNING_METRIC after every evaluation
(the service reads the file the library writes, CLOUD_ML_HP_METRIC_FILE or its default, for
intermediate measurements, early stopping and the final one). Outside a trial nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from trainer.config import TUNING_METRIC
from trainer.progress import Progress

TRIAL_VARS = ("CLOUD_ML_TRIAL_ID", "CLOUD_ML_HP_METRIC_FILE")


def active(environ: Mapping[str, str]) -> bool:
    """Whether this run is a tuning trial (the tuning environment is set)."""
    return any(environ.get(name) for name in TRIAL_VARS)


def reporter(say: Callable[[str], None]) -> Callable[[Progress], None]:
    """An on_progress callback: the usual log line, then the eval RMSE reported at its step."""
    import hypertune

    tuner = hypertune.HyperTune()

    def report(p: Progress) -> None:
        say(p.line())
        tuner.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag=TUNING_METRIC, metric_value=p.eval_rmse, global_step=p.step
        )

    return report
