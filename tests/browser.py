"""Headless Chromium (Debian's package) driven over the DevTools protocol, for the rendering tests.

`render(path)` opens a local file and returns what a person (and the console) would see: the
page's text, every console error and uncaught exception, every URL it asked the network for,
and a PNG screenshot. The protocol is spoken directly over a websocket: a test needs three
commands, not a browser-automation framework.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import itertools
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from taxifare.runs import watchdog

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine notes say: without these, Chromium reaches for Google's hosts at every start.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars", "--window-size=1280,1600"]  # fmt: skip


@dataclasses.dataclass
class Rendered:
    text: str
    errors: list[str]
    requests: list[str]
    png: bytes
    svg_count: int


@contextlib.contextmanager
def _browser() -> Iterator[str]:
    assert CHROMIUM, "chromium is not installed (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="taxifare-chromium-")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, "--remote-debugging-port=0", f"--user-data-dir={profile}",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        port_file, deadline = pathlib.Path(profile, "DevToolsActivePort"), time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        for _ in range(100):
            pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
            pages = [p for p in pages if p.get("type") == "page"]
            if pages:
                yield pages[0]["webSocketDebuggerUrl"]
                break
            time.sleep(0.1)
        else:
            raise AssertionError("chromium opened no page")
    finally:
        watchdog.stop(proc, 20)
        shutil.rmtree(profile, ignore_errors=True)


class _Session:
    def __init__(self, ws: Any):
        self.ws, self.ids, self.events = ws, itertools.count(1), []

    def call(self, method: str, **params: Any) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within {timeout} s"
            self.events.append(json.loads(self.ws.recv(timeout=timeout)))


def render(path: str) -> Rendered:
    from websockets.sync.client import connect

    with _browser() as url, connect(url, max_size=64 << 20) as ws:
        page = _Session(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Page.navigate", url=f"file://{os.path.abspath(path)}")
        page.wait_for("Page.loadEventFired")
        text = page.call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
        svgs = page.call("Runtime.evaluate", expression="document.querySelectorAll('svg').length", returnByValue=True)
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        errors, requests = [], []
        for event in page.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(a.get("value")) for a in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                requests.append(params["request"]["url"])
        return Rendered(text["result"]["value"], errors, requests, base64.b64decode(shot["data"]),
                        svgs["result"]["value"])  # fmt: skip


def not_blank(png: bytes) -> bool:
    """More than a background: many distinct colours, and ink on a good share of the rows."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    inked_rows = (pixels.min(axis=(1, 2)) < 200).mean()
    return colours > 50 and inked_rows > 0.1
