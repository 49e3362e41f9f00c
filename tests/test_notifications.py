"""The exit handler's step (components/notify.py over taxifare/notifications.py): a failed run is told to the
webhook, a good one is not, and a webhook that is down or answers an error never fails the step."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cloud_fakes import Webhook, free_port
from kfp.dsl import PipelineTaskFinalStatus

from components import notify
from taxifare import notifications

JOB = "projects/p1/locations/us-central1/pipelineJobs/taxifare-20240101"
SECRET = "/services/T000/B000/very-secret"


@pytest.fixture
def hook() -> Iterator[Webhook]:
    h = Webhook(path=SECRET)
    yield h
    h.close()


def test_a_failed_run_is_posted_with_what_failed_and_where_to_look(hook):
    lines = notifications.on_exit("FAILED", "Task exit-handler-1 failed.", JOB, hook.url, "taxifare-20240101")
    ((path, kind, body),) = hook.posts
    assert path == SECRET and kind == "application/json"
    assert body["state"] == "FAILED" and body["error"] == "Task exit-handler-1 failed." and body["job"] == JOB
    assert body["console"] == ("https://console.cloud.google.com/vertex-ai/locations/us-central1/pipelines/runs/"
                               "taxifare-20240101?project=p1")  # fmt: skip
    assert body["text"].startswith("taxifare run taxifare-20240101 ended FAILED: Task exit-handler-1 failed.")
    assert lines == ["the run ended FAILED: told the webhook at 127.0.0.1:" + hook.url.split(":")[2].split("/")[0]]
    assert SECRET not in " ".join(lines)  # a webhook's path is its secret: never in the logs


def test_a_good_run_posts_nothing(hook):
    assert notifications.on_exit("SUCCEEDED", "", JOB, hook.url) == ["the run succeeded: nothing to report"]
    assert hook.posts == []


@pytest.mark.parametrize("down", ["refused", "500"])
def test_a_webhook_that_is_down_is_said_and_never_fails_the_step(down, capsys):
    broken = Webhook(status=500, path=SECRET)
    url = f"http://127.0.0.1:{free_port()}{SECRET}" if down == "refused" else broken.url
    status = PipelineTaskFinalStatus(
        state="FAILED", pipeline_job_resource_name=JOB, pipeline_task_name="exit-handler-1", error_code=9,
        error_message="boom",
    )  # fmt: skip
    notify.notify_failure(status=status, notify_webhook=url, job_name="taxifare-20240101")  # no raise
    out = capsys.readouterr().out
    assert "could not be told" in out and SECRET not in out
    if down == "500":
        assert len(broken.posts) == notifications.ATTEMPTS  # tried again once
    broken.close()


def test_without_a_webhook_a_failed_run_is_only_said_in_the_step():
    assert notifications.on_exit("FAILED", "boom", JOB, "") == ["the run ended FAILED; no notify_webhook to tell"]
