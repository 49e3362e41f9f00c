"""The console's web application (Starlette): pages rendered by Jinja2 templates, the parts of them that
update while runs execute, and the files and logs of runs.

Pages: `/` (the runs table), `/runs/{id}` (a run), `/compare?run=A&run=B` (runs side by side),
`/charts` (a metric by run over time), `/models` and `/models/{version}` (the registry). The live
parts are polled by static/console.js: `/parts/runs` and `/parts/runs/{id}` answer the HTML of
the part with `X-Taxifare-Live: 1` while there is more to come; `/runs/{id}/log` a task's log from an
offset; `/api/runs` and `/api/runs/{id}` the same JSON as `taxifare runs list/show --json`.

Whatever a request names that does not exist or cannot be shown is a 404 or 400 with one line
saying why, never a 5xx: ids and paths are checked before any file is touched (store.py, files.py).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from taxifare.runs import records, summary
from taxifare.runs.status import RUN_STATES, Status
from taxifare.ui import artifacts, compare, files, models, run_page, store, tables, trends
from taxifare.ui.guard import Guard
from taxifare.ui.store import BadRequest, NotFound, Sources

log = logging.getLogger("taxifare.ui")
LIVE = "x-taxifare-live"
LOG_CHUNK = 256 << 10
LOG_START = -(64 << 10)


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(loader=jinja2.PackageLoader("taxifare.ui", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters.update(num=_num, when=tables._when, secs=_secs, param=tables.param_text, signed=_signed)
    return Jinja2Templates(env=env)


def _num(value: Any, digits: int = 3) -> str:
    figure = summary.number(value)
    if figure is None:
        return "–"
    if figure.is_integer() or abs(figure) >= 10_000:
        return f"{figure:,.0f}"
    return f"{figure:.{digits}f}"


def _signed(value: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{value:+,.0f}" if abs(value) >= 1000 or float(value).is_integer() else f"{value:+.{digits}f}"


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.1f}s" if value < 120 else f"{int(value // 60)}m {int(value % 60):02d}s"


class Console:
    """The request handlers, over one runs root and one registry."""

    def __init__(self, sources: Sources):
        self.sources, self.templates = sources, _templates()

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context.update(sources=self.sources, nav=name.split(".")[0].lstrip("_"))
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    # runs

    def runs_context(self, request: Request) -> dict[str, Any]:
        query = tables.Query.parse(request.query_params)
        records_ = self.sources.runs()
        rows = tables.select(records_, query)
        pipelines = sorted({r.pipeline for r in records_})
        return {"query": query, "rows": rows, "keys": tables.key_params(rows), "total": len(records_),
                "states": [str(s) for s in RUN_STATES], "pipelines": pipelines}  # fmt: skip

    def index(self, request: Request) -> Response:
        return self.page(request, "runs.html", **self.runs_context(request))

    def runs_part(self, request: Request) -> Response:
        response = self.page(request, "_runs_table.html", **self.runs_context(request))
        response.headers[LIVE] = "1"  # a run started from the command line may appear at any time
        return response

    def run_context(self, request: Request) -> dict[str, Any]:
        record = self.sources.run(request.path_params["run_id"])
        now = time.time()
        row = tables.row(record, now)
        figures = summary.metrics(record)
        return {"run": record, "row": row, "tasks": run_page.tasks(record, now),
                "figures": [(n, figures[n]) for n in compare.HEADLINE if n in figures],
                "keys": sorted(row.params.items())[:12],
                "dag": run_page.dag_svg(record, now), "evaluation": run_page.evaluation(record),
                "lineage": run_page.lineage(record), "live": record.status == Status.RUNNING}  # fmt: skip

    def run(self, request: Request) -> Response:
        return self.page(request, "run.html", **self.run_context(request))

    def run_part(self, request: Request) -> Response:
        context = self.run_context(request)
        response = self.page(request, "_run_live.html", **context)
        response.headers[LIVE] = "1" if context["live"] else "0"
        return response

    def run_log(self, request: Request) -> Response:
        record = self.sources.run(request.path_params["run_id"])
        task = request.query_params.get("task") or None
        if task is not None and task not in record.tasks and task not in {t.name for t in record.dag}:
            raise NotFound(f"run {record.run_id} has no task {task[:80]!r}")
        try:
            offset = int(request.query_params.get("offset", LOG_START))
        except ValueError:
            raise BadRequest("offset must be a whole number of bytes") from None
        live = record.status == Status.RUNNING
        path = store.log_path(record, task)
        found = files.tail(path, offset, LOG_CHUNK, whole_lines=live) if path else None
        if found is None:
            return JSONResponse({"text": "", "offset": 0, "size": 0, "more": False, "live": live, "missing": True})
        data, after, size = found
        return JSONResponse({"text": data.decode("utf-8", "replace"), "offset": after, "size": size,
                             "more": after < size and bool(data), "live": live, "missing": False})  # fmt: skip

    def run_file(self, request: Request) -> Response:
        record = self.sources.run(request.path_params["run_id"])
        shown = artifacts.response(record, request.path_params["path"])
        if isinstance(shown, Response):
            return shown
        return self.page(request, "folder.html", run=record, **shown)

    # comparisons and charts

    def compare(self, request: Request) -> Response:
        ids = compare.check_ids(request.query_params.getlist("run"))
        runs = [self.sources.run(i) for i in ids]
        metrics, slices = compare.metrics(runs)
        return self.page(request, "compare.html", runs=runs, rows=[tables.row(r) for r in runs],
                         params=compare.params(runs), metrics=metrics, slices=slices,
                         same_test=compare.same_test_split(runs), curves=compare.curves(runs))  # fmt: skip

    def charts(self, request: Request) -> Response:
        query = trends.Query.parse(request.query_params)
        runs = self.sources.runs()
        return self.page(request, "charts.html", query=query, **trends.view(runs, query))

    # the registry

    def models(self, request: Request) -> Response:
        registry = models.read(self.sources)
        return self.page(request, "models.html", registry=registry, moves=registry.moves)

    def version(self, request: Request) -> Response:
        name = models.check_name(request.path_params["version"])
        registry = models.read(self.sources)
        version = models.resolve(registry, name)
        return self.page(request, "version.html", registry=registry, version=version,
                         moves=registry.moves_of(version.name))  # fmt: skip

    # JSON

    def api_runs(self, request: Request) -> Response:
        return JSONResponse([summary.to_json(r) for r in self.sources.runs()])

    def api_run(self, request: Request) -> Response:
        record = self.sources.run(request.path_params["run_id"])
        return JSONResponse({**records.to_dict(record), "folder": record.folder})

    def routes(self) -> list[Any]:
        static = StaticFiles(packages=[("taxifare.ui", "static")])
        return [
            Route("/", self.index), Route("/parts/runs", self.runs_part),
            Route("/runs/{run_id}", self.run), Route("/parts/runs/{run_id}", self.run_part),
            Route("/runs/{run_id}/log", self.run_log), Route("/runs/{run_id}/files/{path:path}", self.run_file),
            Route("/compare", self.compare), Route("/charts", self.charts),
            Route("/models", self.models), Route("/models/{version}", self.version),
            Route("/api/runs", self.api_runs), Route("/api/runs/{run_id}", self.api_run),
            Mount("/static", static, name="static"),
        ]  # fmt: skip


def _error(console: Console, request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith(("/api/", "/parts/")) or request.url.path.endswith("/log"):
        return JSONResponse({"error": message}, status_code=status)
    return console.page(request, "error.html", status=status, status_code=status, message=message)


async def _http_error(console: Console, request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "nothing here", 405: "the console is read-only"}.get(exc.status_code, str(exc.detail))
    return _error(console, request, exc.status_code, message)


async def _known_error(console: Console, request: Request, exc: Exception) -> Response:
    return _error(console, request, 404 if isinstance(exc, NotFound) else 400, str(exc))


async def _bug(console: Console, request: Request, exc: Exception) -> Response:
    log.error("the console failed on %s", request.url.path, exc_info=exc)
    return HTMLResponse("<h1>500</h1><p>The console failed on this page; its log says why.</p>", status_code=500)


def create_app(runs_root: str, registry: str, loopback_only: bool = True) -> Starlette:
    """The console over a runs root and a registry (read-only)."""
    console = Console(Sources(runs_root, registry))
    return Starlette(
        routes=console.routes(),
        middleware=[Middleware(Guard, loopback_only=loopback_only)],
        exception_handlers={
            HTTPException: functools.partial(_http_error, console),
            NotFound: functools.partial(_known_error, console),
            BadRequest: functools.partial(_known_error, console),
            Exception: functools.partial(_bug, console),
        },
    )
