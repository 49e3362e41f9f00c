"""The console in a real browser: Debian's chromium, headless, driven by Playwright's Python API (the
system browser, never a downloaded one). The console loads, a run is shown while it executes and
seen to finish without a reload, runs are compared, a model's history shows; every screenshot has
ink on it and no request leaves loopback.

The first test uses hand-made records (a run "finishes" when its record is rewritten); the second
makes two real runs, as two `make run`s would, watching the second one execute.
Set TAXIFARE_CONSOLE_SHOTS=DIR to keep the screenshots (docs/console.png comes from there).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlparse

import console_fakes as fakes
import pytest
from browser import CHROMIUM, not_blank

from taxifare.runs import records

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
# The machine notes' flags: without them chromium reaches for Google's hosts at every start.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions"]  # fmt: skip
WAIT_MS = 180_000


@contextlib.contextmanager
def console(runs_root: str, registry: str) -> Iterator[str]:
    """`taxifare ui` on a free port; its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "taxifare.cli", "ui", "--port", "0", "--runs-root", runs_root,
                             "--registry", registry], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert found, line
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(30)


class Browser:
    """One headless chromium page that keeps every URL it asked for and every error it met."""

    def __init__(self, page):
        self.page, self.requests, self.errors = page, [], []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def shot(self, name: str) -> bytes:
        png = self.page.screenshot(full_page=False)
        if where := os.environ.get("TAXIFARE_CONSOLE_SHOTS"):
            os.makedirs(where, exist_ok=True)
            with open(os.path.join(where, f"{name}.png"), "wb") as f:
                f.write(png)
        return png

    def check(self) -> None:
        """Nothing failed on the page, and nothing was asked of anywhere but this machine."""
        assert self.errors == []
        hosts = {urlparse(u).hostname for u in self.requests if not u.startswith(("data:", "about:"))}
        assert hosts == {"127.0.0.1"}, hosts


@pytest.fixture
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield Browser(chromium.new_page(viewport={"width": 1280, "height": 900}))
        finally:
            chromium.close()


def _marked(page) -> None:
    """A mark on the window: it is still there only if the page was never reloaded."""
    page.evaluate("window.__notReloaded = true")


@pytest.mark.slow
def test_a_run_is_seen_to_finish_new_runs_appear_and_runs_compare_without_a_reload(tmp_path, browser):
    from playwright.sync_api import expect

    runs, done, live = str(tmp_path / "runs"), "20261201-100000-aaaaaa", "20261201-110000-bbbbbb"
    fakes.run(runs, done, rmse=2.5, version="v0001")
    fakes.run(runs, live, status="running", upto=1, train_steps=600, version=None)
    move = {"time": "2026-12-01T10:00:00Z", "to": "v0001", "run_id": done, "reason": "first"}
    registry = fakes.registry(str(tmp_path / "registry"), {"v0001": fakes.version_meta(done, 2.5)}, "v0001", [move])
    page = browser.page
    with console(runs, registry) as url:
        page.goto(f"{url}/runs/{live}")
        _marked(page)
        expect(page.locator("#run-status")).to_have_text("running")
        expect(page.locator('g.task[data-task="train-model"]')).to_have_attribute("data-state", "running")
        expect(page.locator("pre.log")).to_contain_text(f"run {live}")
        fakes.run(runs, live, train_steps=600, rmse=2.4, version="v0002", previous="v0001")  # it finishes
        expect(page.locator("#run-status")).to_have_text("succeeded", timeout=WAIT_MS)
        expect(page.locator('g.task[data-task="deploy-model"]')).to_have_attribute("data-state", "succeeded")
        expect(page.locator(".evaluation")).to_contain_text("By kind of trip")
        assert page.evaluate("window.__notReloaded") is True
        assert not_blank(browser.shot("fake-run"))

        page.goto(url)
        _marked(page)
        expect(page.locator("tr[data-run]")).to_have_count(2)
        newer = "20261201-120000-cccccc"
        fakes.run(runs, newer, status="running", upto=2)  # started from the command line
        expect(page.locator(f'tr[data-run="{newer}"]')).to_contain_text("running", timeout=WAIT_MS)
        page.check(f'input[value="{done}"]')
        page.check(f'input[value="{live}"]')
        assert page.evaluate("window.__notReloaded") is True
        page.click("#compare-button")
        expect(page.locator("h1")).to_have_text("Compare 2 runs")
        expect(page.locator("tr.differs")).to_contain_text("train_steps")
        assert page.locator(".chart svg").count() >= 1
        assert not_blank(browser.shot("fake-compare"))

        page.goto(f"{url}/models")
        expect(page.locator("table.history")).to_contain_text("first")
    browser.check()


def _run(runs: str, registry: str, *extra: str, wait: bool = True) -> subprocess.Popen | str:
    """`taxifare run` as `make run` starts it (generated sample data), with fewer training steps."""
    argv = [sys.executable, "-m", "taxifare.cli", "run", "--runs-root", runs, "--registry", registry,
            "--train-steps", "300", *extra]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out
    return out


@pytest.mark.slow
def test_after_two_runs_the_console_shows_them_their_dags_a_comparison_and_the_champions_history(tmp_path, browser):
    from playwright.sync_api import expect

    runs, registry = str(tmp_path / "runs"), str(tmp_path / "runs" / "registry")
    _run(runs, registry)
    (first,) = (r.run_id for r in records.list_runs(runs))
    page = browser.page
    with console(runs, registry) as url:
        page.goto(url)
        _marked(page)
        expect(page.locator(f'tr[data-run="{first}"]')).to_contain_text("succeeded")
        # The second run, started from the command line while the console is open, is watched as it executes.
        live = _run(runs, registry, "--learning-rate", "0.003", wait=False)
        try:
            row = page.locator("tr[data-run]").first  # newest first: the run just started
            expect(row).to_contain_text("running", timeout=WAIT_MS)
            assert page.evaluate("window.__notReloaded") is True
            assert not_blank(browser.shot("runs"))
            row.locator("a").first.click()
            _marked(page)
            expect(page.locator("#run-status")).to_have_text("running")
            expect(page.locator("#run-status")).to_have_text("succeeded", timeout=WAIT_MS)
            expect(page.locator('g.task[data-task="evaluate-model"]')).to_have_attribute("data-state", "succeeded")
            assert page.evaluate("window.__notReloaded") is True
        finally:
            out, _ = live.communicate(timeout=900)
        assert live.returncode == 0, out
        second = records.list_runs(runs)[0].run_id

        for run_id in (first, second):  # each run's DAG, drawn from its record
            page.goto(f"{url}/runs/{run_id}")
            for task in ("stage-data", "train-model", "evaluate-model", "deploy-model"):
                assert page.locator(f'g.task[data-task="{task}"]').count() == 1
            expect(page.locator('g.task[data-task="train-model"]')).to_have_attribute("data-state", "succeeded")
            expect(page.locator(".evaluation")).to_contain_text("By kind of trip")
        page.set_viewport_size({"width": 1280, "height": 820})
        assert not_blank(browser.shot("run"))

        page.goto(f"{url}/compare?run={first}&run={second}")
        expect(page.locator("tr.differs")).to_contain_text("learning_rate")
        expect(page.locator("table.metrics").first).to_contain_text("candidate_rmse")
        expect(page.locator(".chart").first).to_contain_text("RMSE by training step")
        assert not_blank(browser.shot("compare"))

        page.goto(f"{url}/models/champion")
        expect(page.locator("h1")).to_contain_text("champion")
        expect(page.locator(".lineage-flow")).to_contain_text("generated sample")  # data -> run -> version
        page.goto(f"{url}/models")
        expect(page.locator("table.history")).to_contain_text(first)  # the champion's first move, by the first run
        assert not_blank(browser.shot("models"))
    browser.check()
