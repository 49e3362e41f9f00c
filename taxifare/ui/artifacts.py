"""A run's files over HTTP: `/runs/{id}/files/{path}` answers a file inside the run's folder (an
artifact, a log) or lists a folder there, and nothing else.

The path is resolved by files.inside (no `..`, no absolute path, no link that leads out of the run's
folder). A file is answered as what its bytes are (files.kind), with its own sandbox policy: an
HTML page or an SVG a run wrote is shown without scripts, requests or forms; anything that is
neither a picture, a page nor UTF-8 text is a download.
"""

from __future__ import annotations

import os
import re
from typing import Any

from starlette.responses import Response, StreamingResponse

from taxifare.runs.records import RunRecord
from taxifare.ui import files
from taxifare.ui.guard import FILE_POLICY
from taxifare.ui.store import NotFound

MEDIA = {
    "html": "text/html; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "text": "text/plain; charset=utf-8",
    "binary": "application/octet-stream",
}
NOT_HERE = "no such file in this run's folder"


def _download_name(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))[:100] or "file"


def response(record: RunRecord, relative: str) -> Response | dict[str, Any]:
    """The file's answer, or a folder's entries (for the folder page); NotFound for anything else."""
    real = files.inside(record.folder, relative)
    if real is None:
        raise NotFound(NOT_HERE)
    if os.path.isdir(real):
        entries = files.listing(real)
        if entries is None:
            raise NotFound(NOT_HERE)
        parent = relative.rsplit("/", 1)[0] if "/" in relative else ""
        return {"path": relative, "parent": parent, "entries": entries}
    opened = files.open_regular(real)
    if opened is None:
        raise NotFound(NOT_HERE)
    head = os.pread(opened.fd, 4096, 0)
    what = files.kind(relative, head)
    headers = {"content-security-policy": FILE_POLICY, "content-length": str(opened.size)}
    if what == "binary":
        headers["content-disposition"] = f'attachment; filename="{_download_name(relative)}"'
    return StreamingResponse(opened.chunks(), media_type=MEDIA[what], headers=headers)
