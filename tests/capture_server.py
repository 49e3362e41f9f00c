"""A recording HTTP server that stands in for Google Cloud's REST APIs (and the KFP API) in tests.

    with CaptureServer() as server, route_project_lookups_to(server):
        aiplatform.init(project="p", location="us-central1", api_endpoint=server.url,
                        api_transport="rest", credentials=AnonymousCredentials())
        os.environ["STORAGE_EMULATOR_HOST"] = server.url    # google-cloud-storage comes here too
        job.submit()
        body = server.one("POST", r"/pipelineJobs$").body

Every request is recorded (method, path, query, headers, JSON body). Answers come from a route
table: routes added with `route()` are tried first, newest first; then the defaults, a small
in-memory fake of the Vertex AI, Cloud Storage, Resource Manager and KFP v2beta1 resources the
project uses, so what one call creates the next one can get:

- Vertex AI (`/v1/` and `/v1beta1/`): pipelineJobs create/get/list/cancel (a get answers the next
  of `pipeline_states`, the last one repeating: PIPELINE_STATE_SUCCEEDED by default); schedules
  create/get/list/pause/resume/delete; models:upload, models get; endpoints create/get/list/
  deployModel/undeployModel/delete. Long-running operations come back already done.
- Cloud Storage (`/storage/v1/`, reached through STORAGE_EMULATOR_HOST): bucket get (404 unless
  created or listed in `buckets`), create, getIamPolicy/setIamPolicy.
- Resource Manager (`/v3/projects/ID`): the project with number `project_number`.
- KFP (`/apis/v2beta1/`): healthz, experiments list/create/get, runs and recurringruns create/get.

Anything else answers 404 with a message naming the request, and is recorded all the same.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

_VERTEX = r"/v1(?:beta1)?/"
_LOCATION = r"projects/[^/]+/locations/[^/]+"
_PARENT = rf"(?P<parent>{_LOCATION})"


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes

    def json(self) -> Any:
        return self.body

    @property
    def location(self) -> str | None:
        """The region in a `projects/P/locations/REGION/...` path, if any."""
        m = re.search(r"/locations/([^/:]+)", self.path)
        return m.group(1) if m else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Answer = Reply | tuple[int, Any] | dict[str, Any] | list[Any] | None
Responder = Callable[[Recorded, re.Match[str]], Answer]


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    respond: Responder
    times: int | None = None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, message: str, code: str = "NOT_FOUND") -> Reply:
    return Reply(status, {"error": {"code": status, "message": message, "status": code}})


def _done(name: str, response_type: str, response: dict[str, Any]) -> dict[str, Any]:
    """A long-running operation that has already finished."""
    return {
        "name": f"{name}/operations/{abs(hash((name, response_type))) % 10**12}",
        "done": True,
        "response": {"@type": f"type.googleapis.com/{response_type}", **response},
    }


class CaptureServer:
    """A threaded HTTP server on 127.0.0.1 at a free port; use it as a context manager."""

    def __init__(
        self,
        *,
        pipeline_states: Sequence[str] = ("PIPELINE_STATE_SUCCEEDED",),
        project_number: str = "123456789012",
        buckets: Sequence[str] = (),
        defaults: bool = True,
    ) -> None:
        self.pipeline_states = list(pipeline_states)
        self.project_number = project_number
        self.resources: dict[str, dict[str, Any]] = {}
        self.buckets: dict[str, dict[str, Any]] = {b: self._bucket(b) for b in buckets}
        self._polls: dict[str, int] = {}
        self._records: list[Recorded] = []
        self._routes: list[_Route] = []
        self._defaults = self._default_routes() if defaults else []
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> CaptureServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                server._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="capture-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- programming and inspecting ----------------------------------------------------------

    def route(self, method: str, path_regex: str, answer: Responder | Answer, *, times: int | None = None) -> None:
        """Answer METHOD requests whose path matches path_regex (re.search), before the defaults.

        `answer` is a Reply, a (status, json) pair, a JSON dict/list, or a callable taking
        (Recorded, re.Match) and returning one of those. `times` limits how often it answers.
        """
        if callable(answer):
            respond: Responder = answer
        else:

            def respond(req: Recorded, m: re.Match[str], fixed: Answer = answer) -> Answer:
                return fixed

        with self._lock:
            self._routes.insert(0, _Route(method.upper(), re.compile(path_regex), respond, times))

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._records)

    def find(self, method: str | None = None, path_regex: str = "") -> list[Recorded]:
        return [
            r for r in self.requests if (method is None or r.method == method.upper()) and re.search(path_regex, r.path)
        ]

    def one(self, method: str, path_regex: str) -> Recorded:
        """The single request matching; fails listing what was received otherwise."""
        found = self.find(method, path_regex)
        if len(found) != 1:
            seen = "\n  ".join(f"{r.method} {r.path}" for r in self.requests)
            raise AssertionError(f"expected one {method} {path_regex!r}, got {len(found)}; received:\n  {seen}")
        return found[0]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    # -- serving -----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = Recorded(
            method=handler.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            raw=raw,
        )
        with self._lock:
            self._records.append(req)
            reply = self._answer(req)
        payload = b"" if reply.body is None else json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, req: Recorded) -> Reply:
        for route in [*self._routes, *self._defaults]:
            if route.method != req.method or route.times == 0:
                continue
            m = route.pattern.search(req.path)
            if m is None:
                continue
            if route.times is not None:
                route.times -= 1
            try:
                answer = route.respond(req, m)
            except Exception as err:  # a broken test route should fail loudly, not hang a client
                return _error(500, f"capture server route {route.pattern.pattern} raised {err!r}", "INTERNAL")
            if isinstance(answer, Reply):
                return answer
            if isinstance(answer, tuple):
                return Reply(answer[0], answer[1])
            return Reply(200, {} if answer is None else answer)
        return _error(404, f"capture server: no route for {req.method} {req.path}")

    def _new_id(self) -> str:
        return str(next(self._ids))

    # -- the default fakes -------------------------------------------------------------------

    def _default_routes(self) -> list[_Route]:
        table: list[tuple[str, str, Responder]] = [
            # Vertex AI pipeline jobs
            ("POST", rf"{_VERTEX}{_PARENT}/pipelineJobs$", self._create_pipeline_job),
            ("GET", rf"{_VERTEX}{_PARENT}/pipelineJobs$", self._lister("pipelineJobs")),
            ("GET", rf"{_VERTEX}(?P<name>{_LOCATION}/pipelineJobs/[^/:]+)$", self._get_pipeline_job),
            ("POST", rf"{_VERTEX}(?P<name>.+/pipelineJobs/[^/:]+):cancel$", self._cancel_pipeline_job),
            # schedules
            ("POST", rf"{_VERTEX}{_PARENT}/schedules$", self._create_schedule),
            ("GET", rf"{_VERTEX}{_PARENT}/schedules$", self._lister("schedules")),
            ("POST", rf"{_VERTEX}(?P<name>.+/schedules/[^/:]+):pause$", self._set_state("PAUSED")),
            ("POST", rf"{_VERTEX}(?P<name>.+/schedules/[^/:]+):resume$", self._set_state("ACTIVE")),
            ("DELETE", rf"{_VERTEX}(?P<name>.+/schedules/[^/:]+)$", self._delete),
            # models
            ("POST", rf"{_VERTEX}{_PARENT}/models:upload$", self._upload_model),
            ("GET", rf"{_VERTEX}{_PARENT}/models$", self._lister("models")),
            # endpoints
            ("POST", rf"{_VERTEX}{_PARENT}/endpoints$", self._create_endpoint),
            ("GET", rf"{_VERTEX}{_PARENT}/endpoints$", self._lister("endpoints")),
            ("POST", rf"{_VERTEX}(?P<name>.+/endpoints/[^/:]+):deployModel$", self._deploy),
            ("POST", rf"{_VERTEX}(?P<name>.+/endpoints/[^/:]+):undeployModel$", self._undeploy),
            ("DELETE", rf"{_VERTEX}(?P<name>.+/endpoints/[^/:]+)$", self._delete),
            # any other Vertex resource by name: what was stored, else 404
            ("GET", rf"{_VERTEX}(?P<name>projects/[^:]+?)(?:@(?P<version>[^/:]+))?$", self._get),
            # Cloud Storage (JSON API)
            ("GET", r"^/storage/v1/b/(?P<bucket>[^/]+)$", self._get_bucket),
            ("POST", r"^/storage/v1/b$", self._create_bucket),
            ("GET", r"^/storage/v1/b/(?P<bucket>[^/]+)/iam$", self._get_bucket_iam),
            ("PUT", r"^/storage/v1/b/(?P<bucket>[^/]+)/iam$", lambda req, m: req.body),
            # Resource Manager
            ("GET", r"^/v[13]/projects/(?P<project>[^/:]+)$", self._get_project),
            # Kubeflow Pipelines API
            ("GET", r"^/apis/v2beta1/healthz$", lambda req, m: {"multi_user": False}),
            ("GET", r"^/apis/v2beta1/experiments$", self._list_experiments),
            ("POST", r"^/apis/v2beta1/experiments$", self._kfp_creator("experiments", "experiment_id")),
            ("GET", r"^/apis/v2beta1/experiments/(?P<id>[^/:]+)$", self._kfp_getter("experiments")),
            ("POST", r"^/apis/v2beta1/runs$", self._kfp_creator("runs", "run_id", state="PENDING")),
            ("GET", r"^/apis/v2beta1/runs/(?P<id>[^/:]+)$", self._kfp_getter("runs")),
            ("POST", r"^/apis/v2beta1/recurringruns$", self._kfp_creator("recurringruns", "recurring_run_id")),
            ("GET", r"^/apis/v2beta1/recurringruns/(?P<id>[^/:]+)$", self._kfp_getter("recurringruns")),
        ]
        return [_Route(method, re.compile(pattern), respond) for method, pattern, respond in table]

    def _store(self, name: str, resource: dict[str, Any]) -> dict[str, Any]:
        resource.setdefault("createTime", _now())
        resource["updateTime"] = _now()
        resource["name"] = name
        self.resources[name] = resource
        return resource

    def _get(self, req: Recorded, m: re.Match[str]) -> Answer:
        found = self.resources.get(m.group("name"))
        return found if found is not None else _error(404, f"{m.group('name')} not found")

    def _lister(self, collection: str) -> Responder:
        def answer(req: Recorded, m: re.Match[str]) -> Answer:
            prefix = f"{m.group('parent')}/{collection}/"
            return {collection: [r for n, r in self.resources.items() if n.startswith(prefix)]}

        return answer

    def _delete(self, req: Recorded, m: re.Match[str]) -> Answer:
        name = m.group("name")
        self.resources.pop(name, None)
        return _done(name, "google.protobuf.Empty", {})

    def _create_pipeline_job(self, req: Recorded, m: re.Match[str]) -> Answer:
        job_id = (req.query.get("pipelineJobId") or [f"pipeline-{self._new_id()}"])[0]
        name = f"{m.group('parent')}/pipelineJobs/{job_id}"
        job = dict(req.body or {}, state="PIPELINE_STATE_PENDING")
        return self._store(name, job)

    def _get_pipeline_job(self, req: Recorded, m: re.Match[str]) -> Answer:
        name = m.group("name")
        job = self.resources.get(name)
        if job is None:
            return _error(404, f"{name} not found")
        polls = self._polls[name] = self._polls.get(name, 0) + 1
        if job["state"] != "PIPELINE_STATE_CANCELLED" and self.pipeline_states:
            job["state"] = self.pipeline_states[min(polls, len(self.pipeline_states)) - 1]
        if job["state"] in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"):
            job.setdefault("endTime", _now())
        if job["state"] == "PIPELINE_STATE_FAILED":
            job.setdefault("error", {"code": 9, "message": "failed (capture server)"})
        return job

    def _cancel_pipeline_job(self, req: Recorded, m: re.Match[str]) -> Answer:
        job = self.resources.get(m.group("name"))
        if job is None:
            return _error(404, f"{m.group('name')} not found")
        job["state"] = "PIPELINE_STATE_CANCELLED"
        return {}

    def _create_schedule(self, req: Recorded, m: re.Match[str]) -> Answer:
        name = f"{m.group('parent')}/schedules/{self._new_id()}"
        return self._store(name, dict(req.body or {}, state="ACTIVE", nextRunTime=_now()))

    def _set_state(self, state: str) -> Responder:
        def answer(req: Recorded, m: re.Match[str]) -> Answer:
            found = self.resources.get(m.group("name"))
            if found is None:
                return _error(404, f"{m.group('name')} not found")
            found["state"] = state
            return {}

        return answer

    def _upload_model(self, req: Recorded, m: re.Match[str]) -> Answer:
        body = req.body or {}
        model_id = body.get("modelId") or self._new_id()
        name = f"{m.group('parent')}/models/{model_id}"
        previous = self.resources.get(name)
        version = str(int(previous.get("versionId", "0")) + 1) if previous else "1"
        model = dict(
            body.get("model") or {},
            versionId=version,
            versionAliases=["default"] if version == "1" else [],
            supportedDeploymentResourcesTypes=["DEDICATED_RESOURCES"],
            supportedInputStorageFormats=["jsonl"],
            supportedPredictionOutputStorageFormats=["jsonl"],
        )
        self._store(name, model)
        response = {"model": name, "modelVersionId": version}
        return _done(name, "google.cloud.aiplatform.v1.UploadModelResponse", response)

    def _create_endpoint(self, req: Recorded, m: re.Match[str]) -> Answer:
        endpoint_id = (req.query.get("endpointId") or [self._new_id()])[0]
        name = f"{m.group('parent')}/endpoints/{endpoint_id}"
        endpoint = self._store(name, dict(req.body or {}))
        return _done(name, "google.cloud.aiplatform.v1.Endpoint", endpoint)

    def _deploy(self, req: Recorded, m: re.Match[str]) -> Answer:
        endpoint = self.resources.get(m.group("name"))
        if endpoint is None:
            return _error(404, f"{m.group('name')} not found")
        body = req.body or {}
        deployed = dict(body.get("deployedModel") or {}, id=self._new_id(), createTime=_now())
        endpoint.setdefault("deployedModels", []).append(deployed)
        split = {k if k != "0" else deployed["id"]: v for k, v in (body.get("trafficSplit") or {"0": 100}).items()}
        endpoint["trafficSplit"] = split
        return _done(m.group("name"), "google.cloud.aiplatform.v1.DeployModelResponse", {"deployedModel": deployed})

    def _undeploy(self, req: Recorded, m: re.Match[str]) -> Answer:
        endpoint = self.resources.get(m.group("name"))
        if endpoint is None:
            return _error(404, f"{m.group('name')} not found")
        gone = (req.body or {}).get("deployedModelId")
        endpoint["deployedModels"] = [d for d in endpoint.get("deployedModels", []) if d["id"] != gone]
        split = {k: v for k, v in ((req.body or {}).get("trafficSplit") or endpoint.get("trafficSplit", {})).items()}
        endpoint["trafficSplit"] = {k: v for k, v in split.items() if k != gone}
        return _done(m.group("name"), "google.cloud.aiplatform.v1.UndeployModelResponse", {})

    def _bucket(self, name: str, project_number: str | None = None) -> dict[str, Any]:
        return {
            "kind": "storage#bucket",
            "id": name,
            "name": name,
            "projectNumber": project_number or self.project_number,
            "location": "US-CENTRAL1",
            "timeCreated": _now(),
        }

    def _get_bucket(self, req: Recorded, m: re.Match[str]) -> Answer:
        found = self.buckets.get(m.group("bucket"))
        return found if found is not None else _error(404, f"bucket {m.group('bucket')} not found")

    def _create_bucket(self, req: Recorded, m: re.Match[str]) -> Answer:
        name = (req.body or {}).get("name", "")
        bucket = self.buckets[name] = dict(self._bucket(name), **(req.body or {}))
        return bucket

    def _get_bucket_iam(self, req: Recorded, m: re.Match[str]) -> Answer:
        return {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{m.group('bucket')}", "bindings": []}

    def _get_project(self, req: Recorded, m: re.Match[str]) -> Answer:
        project = m.group("project")
        number = project if project.isdigit() else self.project_number
        project_id = project if not project.isdigit() else f"project-{project}"
        return {"name": f"projects/{number}", "projectId": project_id, "state": "ACTIVE", "displayName": project_id}

    def _list_experiments(self, req: Recorded, m: re.Match[str]) -> Answer:
        wanted = None
        for text in req.query.get("filter", []):
            for predicate in json.loads(text).get("predicates", []):
                if predicate.get("key") == "display_name":
                    wanted = predicate.get("string_value", predicate.get("stringValue"))
        found = [
            e
            for n, e in self.resources.items()
            if n.startswith("kfp/experiments/") and wanted in (None, e.get("display_name"))
        ]
        return {"experiments": found, "total_size": len(found)}

    def _kfp_creator(self, collection: str, id_field: str, **extra: Any) -> Responder:
        def answer(req: Recorded, m: re.Match[str]) -> Answer:
            new_id = f"{collection[:-1]}-{self._new_id()}"
            resource = dict(req.body or {}, **{id_field: new_id, "created_at": _now()}, **extra)
            self.resources[f"kfp/{collection}/{new_id}"] = resource
            return resource

        return answer

    def _kfp_getter(self, collection: str) -> Responder:
        def answer(req: Recorded, m: re.Match[str]) -> Answer:
            found = self.resources.get(f"kfp/{collection}/{m.group('id')}")
            return found if found is not None else _error(404, f"{collection} {m.group('id')} not found")

        return answer


@contextlib.contextmanager
def route_project_lookups_to(server: CaptureServer) -> Iterator[None]:
    """Send google-cloud-aiplatform's Resource Manager look-ups to the server.

    aiplatform builds `resourcemanager.ProjectsClient(credentials=...)` itself, on gRPC to the
    real endpoint, whenever it wants a project number (to name the default compute service
    account, or to check who owns an existing pipeline-root/staging bucket). Offline that call
    retries until its deadline. Here the client is made on REST against the server instead.
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import resourcemanager
    from google.cloud.aiplatform.utils import resource_manager_utils

    real = resourcemanager.ProjectsClient

    def projects_client(**kwargs: Any) -> Any:
        kwargs.setdefault("client_options", ClientOptions(api_endpoint=server.url))
        return real(transport="rest", **kwargs)

    with mock.patch.object(resource_manager_utils.resourcemanager, "ProjectsClient", projects_client):
        yield
