"""The exit handler's step: after every run, whatever happened; when it failed, POST to
notify_webhook (the work: taxifare/notifications.py). It never fails, so it never changes how the
run ended."""

from typing import TYPE_CHECKING

from kfp import dsl

if TYPE_CHECKING:  # kfp's runtime import path breaks on python_component at run time
    from kfp.dsl.python_component import PythonComponent


def notify_failure(status: dsl.PipelineTaskFinalStatus, notify_webhook: str, job_name: str):
    """Tell notify_webhook when the run failed."""
    from taxifare import notifications
    from trainer import events

    error = status.error_message or ""
    lines = notifications.on_exit(status.state, error, status.pipeline_job_resource_name, notify_webhook, job_name)
    events.summary(*lines)


def component(image: str) -> "PythonComponent":
    return dsl.component(notify_failure, base_image=image, install_kfp_package=False)
