"""A fake Kubernetes API server for contract tests of the Katib launcher. Not a cluster.

It is a real HTTP server on 127.0.0.1 (``http.server`` in a thread) that speaks just the part
of the Kubernetes API the launcher uses for ``kubeflow.org/v1beta1``:

- ``POST   /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments``
- ``GET    /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}``
- ``GET    /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}/status``
- ``DELETE /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}``
- ``GET    /apis/kubeflow.org/v1beta1/namespaces/{ns}/trials?labelSelector=k=v&limit=&continue=``

Answers are Kubernetes-shaped JSON: objects with server-set metadata (uid,
resourceVersion, creationTimestamp), ``*List`` objects with ``metadata.continue`` paging, and
``Status`` objects (``kind: Status``, ``code``, ``reason``, ``message``) for errors, with the
reasons the real API server uses (AlreadyExists, NotFound, Forbidden, Unauthorized,
BadRequest). Every request is recorded (method, path, query, JSON body, headers) so tests
can assert exactly what the client sent.

What Katib's controller would do is scripted instead: :meth:`FakeKubeApi.script_status` gives
an Experiment a sequence of ``status`` values, one per GET (the last one repeats), and
:meth:`FakeKubeApi.add_trial` adds Trial objects. :meth:`FakeKubeApi.fail` makes the next
matching requests fail with a given Status. The ``katib_*`` helpers build status and Trial
objects in Katib's exact field layout.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

API_PREFIX = "/apis/kubeflow.org/v1beta1"
_PATH = re.compile(
    r"^/apis/kubeflow\.org/v1beta1/namespaces/(?P<ns>[^/]+)/(?P<plural>experiments|trials)"
    r"(?:/(?P<name>[^/]+))?(?P<status>/status)?$"
)
_TIMESTAMP = "2025-01-01T00:00:00Z"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]


@dataclass
class _Fault:
    method: str
    resource: str
    code: int
    reason: str
    message: str
    remaining: int | None


@dataclass
class _State:
    experiments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    status_reads: dict[str, int] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    resource_version: int = 1000


def status_object(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A ``v1 Status`` failure object, as the API server returns for every error."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        status["details"] = details
    return status


class FakeKubeApi:
    """The fake API server; use as a context manager or call :meth:`close`.

    Args:
        required_token: when set, every request must carry ``Authorization: Bearer <token>``
            or gets 401 Unauthorized, as a real API server does.
    """

    def __init__(self, *, required_token: str | None = None) -> None:
        self.required_token = required_token
        self._lock = threading.Lock()
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Base URL to put into ``Configuration.host``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        """A real ``kubernetes`` ApiClient pointed at this server, with an optional bearer token."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        if token is not None:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeKubeApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scripting ----------------------------------------------------------------------------

    def script_status(self, name: str, statuses: Sequence[Mapping[str, Any]]) -> None:
        """Make successive GETs of Experiment ``name`` show these ``status`` values in turn.

        The last one repeats; creating the Experiment does not reset the sequence.
        """
        if not statuses:
            raise ValueError("script_status needs at least one status")
        with self._lock:
            self._state.scripts[name] = [copy.deepcopy(dict(s)) for s in statuses]
            self._state.status_reads[name] = 0

    def add_experiment(self, experiment: Mapping[str, Any]) -> None:
        """Store an Experiment as if someone had created it before the test."""
        with self._lock:
            stored = self._with_server_metadata(copy.deepcopy(dict(experiment)))
            key = (stored["metadata"]["namespace"], stored["metadata"]["name"])
            self._state.experiments[key] = stored

    def add_trial(self, namespace: str, trial: Mapping[str, Any]) -> None:
        """Store a Trial object (see :func:`katib_trial`)."""
        with self._lock:
            stored = copy.deepcopy(dict(trial))
            stored["metadata"].setdefault("namespace", namespace)
            self._state.trials.setdefault(namespace, []).append(stored)

    def fail(
        self,
        method: str,
        resource: str,
        code: int,
        reason: str,
        message: str,
        *,
        times: int | None = None,
    ) -> None:
        """Answer matching requests with a Status error instead of serving them.

        Args:
            method: HTTP method (``POST``, ``GET``, ``DELETE``).
            resource: ``experiments`` (the collection), ``experiment``, ``experiment/status``
                or ``trials``.
            code: HTTP status code.
            reason: the Status reason (``Forbidden``, ``ServiceUnavailable``, ...).
            message: the Status message.
            times: how many requests fail; None for all of them.
        """
        with self._lock:
            self._state.faults.append(_Fault(method, resource, code, reason, message, times))

    # -- inspection ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, method: str, resource: str | None = None) -> list[RecordedRequest]:
        """Recorded requests with this method (and resource kind, as in :meth:`fail`)."""
        return [
            r
            for r in self.requests
            if r.method == method and (resource is None or _resource_of(r.path) == resource)
        ]

    def experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored Experiment, or None if it does not exist (e.g. after a DELETE)."""
        with self._lock:
            found = self._state.experiments.get((namespace, name))
            return copy.deepcopy(found) if found else None

    # -- serving (called from the handler thread) ---------------------------------------------

    def _with_server_metadata(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._state.resource_version += 1
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("namespace", "kubeflow")
        metadata.update(
            {
                "uid": str(uuid.UUID(int=self._state.resource_version)),
                "resourceVersion": str(self._state.resource_version),
                "generation": 1,
                "creationTimestamp": _TIMESTAMP,
            }
        )
        return obj

    def _serve(
        self, method: str, raw_path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query)
        with self._lock:
            self._state.requests.append(
                RecordedRequest(method, split.path, query, copy.deepcopy(body), headers)
            )
            if self.required_token is not None:
                sent = headers.get("authorization", "")
                if sent != f"Bearer {self.required_token}":
                    return 401, status_object(401, "Unauthorized", "Unauthorized")
            match = _PATH.match(split.path)
            if not match:
                return 404, status_object(
                    404, "NotFound", "the server could not find the requested resource"
                )
            resource = _resource_of(split.path)
            for fault in self._state.faults:
                if fault.method == method and fault.resource == resource and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.code, status_object(fault.code, fault.reason, fault.message)
            namespace, name = match["ns"], match["name"]
            if resource == "experiments" and method == "POST":
                return self._create(namespace, body)
            if resource in ("experiment", "experiment/status") and method == "GET":
                return self._get(namespace, name)
            if resource == "experiment" and method == "DELETE":
                return self._delete(namespace, name, query)
            if resource == "trials" and method == "GET":
                return self._list_trials(namespace, query)
            return 405, status_object(
                405, "MethodNotAllowed", f"the server does not allow this method on {split.path}"
            )

    def _create(self, namespace: str, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict):
            return 400, status_object(400, "BadRequest", "the request body is not a JSON object")
        if body.get("apiVersion") != "kubeflow.org/v1beta1" or body.get("kind") != "Experiment":
            return 400, status_object(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) / kind "
                f"({body.get('kind')}) does not match the expected kubeflow.org/v1beta1 Experiment",
            )
        metadata = body.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            return 422, status_object(422, "Invalid", "metadata.name: Required value")
        if metadata.get("namespace", namespace) != namespace:
            return 400, status_object(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if (namespace, name) in self._state.experiments:
            return 409, status_object(
                409,
                "AlreadyExists",
                f'experiments.kubeflow.org "{name}" already exists',
                name=name,
                group="kubeflow.org",
                kind="experiments",
            )
        stored = self._with_server_metadata(copy.deepcopy(body))
        stored["metadata"]["namespace"] = namespace
        self._state.experiments[(namespace, name)] = stored
        return 201, copy.deepcopy(stored)

    def _get(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        stored = self._state.experiments.get((namespace, name))
        if stored is None:
            return 404, status_object(
                404,
                "NotFound",
                f'experiments.kubeflow.org "{name}" not found',
                name=name,
                group="kubeflow.org",
                kind="experiments",
            )
        script = self._state.scripts.get(name)
        if script:
            reads = self._state.status_reads[name]
            stored["status"] = copy.deepcopy(script[min(reads, len(script) - 1)])
            self._state.status_reads[name] = reads + 1
        return 200, copy.deepcopy(stored)

    def _delete(
        self, namespace: str, name: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        stored = self._state.experiments.pop((namespace, name), None)
        if stored is None:
            return self._get(namespace, name)
        # With Foreground propagation the API server answers with the object, now carrying a
        # deletionTimestamp and the foregroundDeletion finalizer, while dependents go.
        if query.get("propagationPolicy") == ["Foreground"]:
            stored["metadata"]["deletionTimestamp"] = _TIMESTAMP
            stored["metadata"]["finalizers"] = ["foregroundDeletion"]
        self._state.trials[namespace] = [
            t
            for t in self._state.trials.get(namespace, [])
            if t["metadata"].get("labels", {}).get("katib.kubeflow.org/experiment") != name
        ]
        return 200, stored

    def _list_trials(
        self, namespace: str, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        wanted: dict[str, str] = {}
        for selector in query.get("labelSelector", []):
            for term in filter(None, selector.split(",")):
                key, sep, value = term.partition("=")
                if not sep:
                    return 400, status_object(
                        400, "BadRequest", f"unable to parse requirement: {term!r}"
                    )
                wanted[key] = value
        items = [
            t
            for t in self._state.trials.get(namespace, [])
            if all(t["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        start = int(query.get("continue", ["0"])[0])
        limit = int(query.get("limit", ["0"])[0]) or len(items)
        page = items[start : start + limit]
        more = start + limit < len(items)
        return 200, {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "TrialList",
            "metadata": {
                "resourceVersion": str(self._state.resource_version),
                **({"continue": str(start + limit)} if more else {}),
            },
            "items": copy.deepcopy(page),
        }


def _resource_of(path: str) -> str:
    match = _PATH.match(path)
    if not match:
        return ""
    if match["plural"] == "trials":
        return "trials"
    if match["name"] is None:
        return "experiments"
    return "experiment/status" if match["status"] else "experiment"


def _handler_for(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            headers = {key.lower(): value for key, value in self.headers.items()}
            code, answer = api._serve(self.command, self.path, body, headers)
            payload = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            """Silent: pytest shows failures, not access logs."""

    return Handler


# -- Katib-shaped objects ---------------------------------------------------------------------


def katib_condition(type_: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    """One entry of Katib's ``status.conditions``."""
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": _TIMESTAMP,
        "lastTransitionTime": _TIMESTAMP,
    }


def katib_metric(
    name: str, latest: str, max_: str | None = None, min_: str | None = None
) -> dict[str, str]:
    """A Katib observation metric; values are strings, as Katib stores them."""
    return {"name": name, "latest": latest, "max": max_ or latest, "min": min_ or latest}


def katib_experiment_status(
    state: str,
    *,
    reason: str,
    message: str,
    succeeded: Sequence[str] = (),
    failed: Sequence[str] = (),
    running: Sequence[str] = (),
    early_stopped: Sequence[str] = (),
    killed: Sequence[str] = (),
    optimal: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An Experiment ``status`` as Katib's controller writes it.

    Args:
        state: ``Created``, ``Running``, ``Succeeded`` or ``Failed``; earlier conditions are
            kept with status False, as Katib does.
        reason: reason of the newest condition (e.g. ``ExperimentGoalReached``).
        message: its message.
        succeeded, failed, running, early_stopped, killed: trial names per list.
        optimal: ``currentOptimalTrial``, or None for Katib's empty placeholder.
    """
    conditions = [katib_condition("Created", "ExperimentCreated", "Experiment is created")]
    if state in ("Running", "Succeeded", "Failed"):
        conditions.append(
            katib_condition(
                "Running",
                "ExperimentRunning",
                "Experiment is running",
                status="True" if state == "Running" else "False",
            )
        )
    if state in ("Succeeded", "Failed"):
        conditions.append(katib_condition(state, reason, message))
    elif state == "Running":
        conditions[-1].update(reason=reason, message=message)
    status: dict[str, Any] = {
        "startTime": _TIMESTAMP,
        "conditions": conditions,
        "currentOptimalTrial": dict(optimal)
        if optimal
        else {"bestTrialName": "", "observation": {"metrics": None}, "parameterAssignments": None},
        "trials": len(succeeded) + len(failed) + len(running) + len(early_stopped) + len(killed),
        "trialsSucceeded": len(succeeded),
        "trialsFailed": len(failed),
        "trialsRunning": len(running),
        "trialsEarlyStopped": len(early_stopped),
        "trialsKilled": len(killed),
    }
    for key, names in (
        ("succeededTrialList", succeeded),
        ("failedTrialList", failed),
        ("runningTrialList", running),
        ("earlyStoppedTrialList", early_stopped),
        ("killedTrialList", killed),
    ):
        if names:
            status[key] = list(names)
    if state in ("Succeeded", "Failed"):
        status["completionTime"] = "2025-01-01T00:10:00Z"
    return status


def katib_trial(
    experiment: str,
    name: str,
    parameters: Mapping[str, str],
    metrics: Sequence[Mapping[str, str]],
    *,
    state: str,
    reason: str,
    created: str,
    started: str,
    completed: str | None,
) -> dict[str, Any]:
    """A Trial object as Katib creates it (labels, parameterAssignments, observation)."""
    conditions = [katib_condition("Created", "TrialCreated", "Trial is created")]
    if state == "Running":
        conditions.append(katib_condition("Running", reason, "Trial is running"))
    else:
        conditions.append(
            katib_condition("Running", "TrialRunning", "Trial is running", status="False")
        )
        conditions.append(katib_condition(state, reason, f"Trial is {state.lower()}"))
    status: dict[str, Any] = {
        "startTime": started,
        "conditions": conditions,
        "observation": {"metrics": [dict(m) for m in metrics]},
    }
    if completed:
        status["completionTime"] = completed
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Trial",
        "metadata": {
            "name": name,
            "labels": {"katib.kubeflow.org/experiment": experiment},
            "creationTimestamp": created,
        },
        "spec": {
            "parameterAssignments": [{"name": k, "value": v} for k, v in parameters.items()],
        },
        "status": status,
    }
