"""A stand-in for a Kubernetes API server with Katib installed, for contract tests. Not a cluster.

It is a real HTTP server on 127.0.0.1 (``http.server`` in a thread) that speaks the part of the
Kubernetes API the Katib launcher uses for ``kubeflow.org/v1beta1``, and answers as a real API
server with Katib's webhooks and controllers would:

- ``POST   /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments``
- ``GET    /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}[/status]``
- ``PUT    /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}[/status]``
- ``PATCH  /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}`` (JSON merge patch)
- ``DELETE /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}``
- ``GET    /apis/kubeflow.org/v1beta1/namespaces/{ns}/trials?labelSelector=k=v&limit=&continue=``

What it does the way the API server does (the k8s.io/apiserver generic registry store and
handlers, and the apiextensions custom-resource strategy):

- **Objects**: server-set ``uid``, ``resourceVersion`` (new on every write), ``generation``
  (bumped when ``spec`` changes), ``creationTimestamp``; ``status`` is a subresource, so a write
  to the main resource keeps the stored status.
- **Errors** are ``v1 Status`` objects with the API server's reasons and messages (NotFound,
  AlreadyExists, Conflict, Invalid, BadRequest, Unauthorized, MethodNotAllowed).
- **Deletion with finalizers**: ``DELETE`` on an object with finalizers only sets
  ``metadata.deletionTimestamp``; it stays (readable, listed) until the last finalizer is
  removed. ``propagationPolicy=Foreground`` adds the ``foregroundDeletion`` finalizer, which
  the garbage collector removes only after the dependents (the Experiment's Trials) are gone;
  ``Background`` (the default) deletes the object when its finalizers are gone and the Trials
  after it; ``Orphan`` leaves the Trials. A second ``DELETE`` of a terminating object answers
  200 with it. A ``DELETE`` that removes the object at once answers a ``Success`` Status.
- **Create while terminating**: 409 AlreadyExists, the message prefixed with
  ``object is being deleted: `` as the store does.
- **Updates** (``PUT``, merge ``PATCH``): 422 without ``metadata.resourceVersion`` on a PUT
  (custom resources allow no unconditional update), 409 Conflict on a stale one; a terminating
  object takes no new finalizers; removing its last finalizer deletes it.
- **Admission** in the API server's order: the namespace must exist (404), the name must be a
  DNS-1123 subdomain (422 Invalid), then Katib's defaulting webhook (``SetDefault``) and its
  validating webhook ``validator.experiment.katib.kubeflow.org``, whose denial is relayed as
  the API server relays ``admission.Errored(400, err)``: HTTP 400, ``status: Failure``, no
  ``reason``, message ``admission webhook "validator.experiment.katib.kubeflow.org" denied the
  request: <Katib's field errors>``.

The Katib rules are a port of kubeflow/katib v0.19.0 (commit
578e60f1ce83dbb5e7151026a3bdc4de233947fc): ``pkg/webhook/v1beta1/experiment/
validation_webhook.go`` (the namespace label), ``.../experiment/validator/validator.go`` (the
field rules, with Katib's messages) and ``pkg/apis/controller/experiments/v1beta1/
experiment_defaults.go`` (the defaults). Not ported: the check that a Job trial spec converts to
a ``batch/v1`` Job without loss (``validatePatchJob``), ConfigMap trial templates (the stand-in
serves no ConfigMaps), the ``FromVolume`` PersistentVolume check; JSON patch (only merge patch
is spoken). Go's ``%#v`` dumps of whole structs in messages are written as JSON.

What controllers do runs in :meth:`FakeKubeApi.reconcile`, one pass at a time: Katib's
experiment controller adds its ``update-prometheus-metrics`` finalizer to every Experiment and
removes it once deletion started; its trial controller does the same with
``clean-metrics-in-db`` on Trials; the garbage collector deletes a deleted Experiment's Trials
and drops ``foregroundDeletion``/``orphan`` when done. With ``controllers=True`` a background
thread runs a pass every ``controller_interval_s``; with False the test drives the passes.
``katib_controller_up = False`` stops Katib's part, as when ``katib-controller`` is down.

Katib's reporting of progress is scripted: :meth:`FakeKubeApi.script_status` gives an
Experiment a sequence of ``status`` values, one per GET (the last one repeats), and
:meth:`FakeKubeApi.add_trial` adds Trial objects. :meth:`FakeKubeApi.fail` makes the next
matching requests fail with a given Status. Every request is recorded (method, path, query,
JSON body, headers). The ``katib_*`` helpers build status and Trial objects in Katib's layout.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

API_PREFIX = "/apis/kubeflow.org/v1beta1"
_PATH = re.compile(
    r"^/apis/kubeflow\.org/v1beta1/namespaces/(?P<ns>[^/]+)/(?P<plural>experiments|trials)"
    r"(?:/(?P<name>[^/]+))?(?P<status>/status)?$"
)
_TIMESTAMP = "2025-01-01T00:00:00Z"

#: Finalizers: the API server's, and the ones Katib's controllers put on their objects.
FOREGROUND_DELETION = "foregroundDeletion"
ORPHAN = "orphan"
KATIB_EXPERIMENT_FINALIZER = "update-prometheus-metrics"
KATIB_TRIAL_FINALIZER = "clean-metrics-in-db"
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"

#: Katib's validating webhook and the namespace label it requires.
KATIB_WEBHOOK = "validator.experiment.katib.kubeflow.org"
KATIB_NAMESPACE_LABEL = "katib.kubeflow.org/metrics-collector-injection"
#: What Katib's default katib-config (v0.19.0 manifests) configures.
KATIB_ALGORITHMS = (
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
)
KATIB_EARLY_STOPPING = ("medianstop",)

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Katib matches this with Go's MatchString: a prefix match, as re.match does.
_KATIB_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")
_KATIB_NAME_MESSAGE = (
    "name must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex "
    "used for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 "
    "characters. "
)
_TRIAL_PARAMETER = re.compile(r"\$\{trialParameters\..+?\}")
_TRIAL_META = re.compile(r"\$\{trialSpec\.(.+?)\}")
_TRIAL_META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
_DEFAULT_JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_DEFAULT_JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'


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
    # The propagationPolicy each terminating Experiment was deleted with.
    deletion_policy: dict[tuple[str, str], str] = field(default_factory=dict)
    # Deleted Experiments whose Trials the garbage collector still has to delete.
    uncollected: set[tuple[str, str]] = field(default_factory=set)


Answer = tuple[int, dict[str, Any]]


def status_object(code: int, reason: str | None, message: str, **details: Any) -> dict[str, Any]:
    """A ``v1 Status`` failure object, as the API server returns for every error.

    Args:
        code: the HTTP status code.
        reason: the Status reason (``NotFound``, ...); None leaves it out, as for a webhook
            denial whose webhook gave none.
        message: the Status message.
        **details: ``details`` fields (``name``, ``group``, ``kind``, ``causes``, ...).
    """
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason is not None:
        status["reason"] = reason
    if details:
        status["details"] = details
    status["code"] = code
    return status


class FakeKubeApi:
    """The stand-in API server; use as a context manager or call :meth:`close`.

    Args:
        required_token: when set, every request must carry ``Authorization: Bearer <token>``
            or gets 401 Unauthorized, as a real API server does.
        namespaces: the namespaces that exist, with their labels; None for "every namespace
            exists and carries Katib's ``metrics-collector-injection: enabled`` label".
        controllers: run the simulated controllers on a background thread (False: the test
            calls :meth:`reconcile` itself).
        controller_interval_s: time between two passes of the background controllers.
    """

    def __init__(
        self,
        *,
        required_token: str | None = None,
        namespaces: Mapping[str, Mapping[str, str]] | None = None,
        controllers: bool = True,
        controller_interval_s: float = 0.01,
    ) -> None:
        self.required_token = required_token
        self.namespaces = (
            None if namespaces is None else {k: dict(v) for k, v in namespaces.items()}
        )
        #: False simulates katib-controller being down: its finalizers are never removed.
        self.katib_controller_up = True
        self._lock = threading.RLock()
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        self._stop = threading.Event()
        self._controllers: threading.Thread | None = None
        if controllers:
            self._controllers = threading.Thread(
                target=self._run_controllers, args=(controller_interval_s,), daemon=True
            )
            self._controllers.start()

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
        """Stop the controllers, stop serving and free the port."""
        self._stop.set()
        if self._controllers is not None:
            self._controllers.join(timeout=5)
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
        """Store an Experiment as if someone had created it before the test (no admission)."""
        with self._lock:
            stored = self._with_server_metadata(copy.deepcopy(dict(experiment)))
            key = (stored["metadata"]["namespace"], stored["metadata"]["name"])
            self._state.experiments[key] = stored

    def add_trial(self, namespace: str, trial: Mapping[str, Any]) -> None:
        """Store a Trial object (see :func:`katib_trial`)."""
        with self._lock:
            stored = copy.deepcopy(dict(trial))
            stored["metadata"].setdefault("namespace", namespace)
            self._bump(stored)
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
            method: HTTP method (``POST``, ``GET``, ``DELETE``, ``PUT``, ``PATCH``).
            resource: ``experiments`` (the collection), ``experiment``, ``experiment/status``
                or ``trials``.
            code: HTTP status code.
            reason: the Status reason (``Forbidden``, ``ServiceUnavailable``, ...).
            message: the Status message.
            times: how many requests fail; None for all of them.
        """
        with self._lock:
            self._state.faults.append(_Fault(method, resource, code, reason, message, times))

    # -- the controllers ----------------------------------------------------------------------

    def reconcile(self) -> bool:
        """One pass of the simulated controllers (Katib's two, and the garbage collector).

        Returns:
            Whether anything changed.
        """
        with self._lock:
            changed = False
            katib = self.katib_controller_up
            for trials in self._state.trials.values():
                for trial in list(trials):
                    finalizers = trial["metadata"].setdefault("finalizers", [])
                    deleting = bool(trial["metadata"].get("deletionTimestamp"))
                    if katib and not deleting and KATIB_TRIAL_FINALIZER not in finalizers:
                        finalizers.append(KATIB_TRIAL_FINALIZER)
                        changed = self._bump(trial)
                    elif katib and deleting and KATIB_TRIAL_FINALIZER in finalizers:
                        finalizers.remove(KATIB_TRIAL_FINALIZER)
                        changed = self._bump(trial)
                    if deleting and not finalizers:
                        trials.remove(trial)
                        changed = True
            for key, experiment in list(self._state.experiments.items()):
                namespace, name = key
                metadata = experiment["metadata"]
                finalizers = metadata.setdefault("finalizers", [])
                deleting = bool(metadata.get("deletionTimestamp"))
                if katib and not deleting and KATIB_EXPERIMENT_FINALIZER not in finalizers:
                    finalizers.append(KATIB_EXPERIMENT_FINALIZER)
                    changed = self._bump(experiment)
                elif katib and deleting and KATIB_EXPERIMENT_FINALIZER in finalizers:
                    finalizers.remove(KATIB_EXPERIMENT_FINALIZER)
                    changed = self._bump(experiment)
                if deleting and FOREGROUND_DELETION in finalizers:
                    owned = self._trials_of(namespace, name)
                    for trial in owned:
                        if not trial["metadata"].get("deletionTimestamp"):
                            trial["metadata"]["deletionTimestamp"] = _now()
                            changed = self._bump(trial)
                    if not owned:
                        finalizers.remove(FOREGROUND_DELETION)
                        changed = self._bump(experiment)
                if deleting and ORPHAN in finalizers:
                    finalizers.remove(ORPHAN)
                    changed = self._bump(experiment)
                if deleting and not finalizers:
                    self._remove_experiment(key)
                    changed = True
            for namespace, name in list(self._state.uncollected):
                owned = self._trials_of(namespace, name)
                for trial in owned:
                    if not trial["metadata"].get("deletionTimestamp"):
                        trial["metadata"]["deletionTimestamp"] = _now()
                        changed = self._bump(trial)
                if not owned:
                    self._state.uncollected.discard((namespace, name))
            return changed

    def _run_controllers(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.reconcile()

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
        """The stored Experiment (terminating ones included), or None once it is gone."""
        with self._lock:
            found = self._state.experiments.get((namespace, name))
            return copy.deepcopy(found) if found else None

    def trials(self, namespace: str) -> list[dict[str, Any]]:
        """The stored Trials of ``namespace`` (terminating ones included)."""
        with self._lock:
            return copy.deepcopy(self._state.trials.get(namespace, []))

    def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
        """Wait (polling) until ``condition()`` holds; AssertionError naming ``what`` if never."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() >= deadline:
                raise AssertionError(f"not within {timeout_s:g}s: {what}")
            time.sleep(0.005)

    def wait_gone(self, namespace: str, name: str, timeout_s: float = 30) -> None:
        """Wait until Experiment ``namespace/name`` is gone (its finalizers all removed)."""
        self.wait_until(
            lambda: self.experiment(namespace, name) is None,
            f"Experiment {namespace}/{name} gone",
            timeout_s,
        )

    # -- serving (called from the handler threads) --------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> bool:
        self._state.resource_version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._state.resource_version)
        return True

    def _with_server_metadata(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._state.resource_version += 1
        metadata = obj.setdefault("metadata", {})
        metadata.setdefault("namespace", "kubeflow")
        metadata.update(
            {
                "uid": str(uuid.UUID(int=self._state.resource_version)),
                "resourceVersion": str(self._state.resource_version),
                "generation": 1,
                "creationTimestamp": _now(),
            }
        )
        return obj

    def _trials_of(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [
            t
            for t in self._state.trials.get(namespace, [])
            if t["metadata"].get("labels", {}).get(EXPERIMENT_LABEL) == name
        ]

    def _remove_experiment(self, key: tuple[str, str]) -> None:
        """Remove a deleted Experiment; its Trials go after it unless it was orphaning them."""
        self._state.experiments.pop(key)
        if self._state.deletion_policy.pop(key, "") != "Orphan":
            self._state.uncollected.add(key)

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
            if self.namespaces is not None and namespace not in self.namespaces:
                return 404, status_object(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    name=namespace,
                    kind="namespaces",
                )
            if resource == "experiments" and method == "POST":
                return self._create(namespace, body)
            if resource in ("experiment", "experiment/status") and method == "GET":
                return self._get(namespace, name)
            if resource in ("experiment", "experiment/status") and method == "PUT":
                return self._replace(namespace, name, body, status_only=resource != "experiment")
            if resource == "experiment" and method == "PATCH":
                return self._patch(namespace, name, body, headers.get("content-type", ""))
            if resource == "experiment" and method == "DELETE":
                return self._delete(namespace, name, query, body)
            if resource == "trials" and method == "GET":
                return self._list_trials(namespace, query)
            return 405, status_object(
                405, "MethodNotAllowed", f"the server does not allow this method on {split.path}"
            )

    def _not_found(self, name: str) -> Answer:
        return 404, status_object(
            404,
            "NotFound",
            f'experiments.kubeflow.org "{name}" not found',
            name=name,
            group="kubeflow.org",
            kind="experiments",
        )

    def _check_kind(self, body: Any) -> Answer | None:
        if not isinstance(body, dict):
            return 400, status_object(400, "BadRequest", "the request body is not a JSON object")
        if body.get("apiVersion") != "kubeflow.org/v1beta1" or body.get("kind") != "Experiment":
            return 400, status_object(
                400,
                "BadRequest",
                f"the API version in the data ({body.get('apiVersion')}) / kind "
                f"({body.get('kind')}) does not match the expected kubeflow.org/v1beta1 Experiment",
            )
        return None

    def _admit(
        self, namespace: str, experiment: dict[str, Any], old: dict[str, Any] | None
    ) -> Answer | None:
        """Katib's defaulting then validating webhook, as the API server runs them."""
        katib_set_defaults(experiment)
        labels = (self.namespaces or {}).get(namespace, {KATIB_NAMESPACE_LABEL: "enabled"})
        name = experiment["metadata"].get("name", "")
        if labels.get(KATIB_NAMESPACE_LABEL) != "enabled":
            problem = (
                f'Cannot create the Experiment "{name}" in namespace "{namespace}": the '
                f'namespace lacks label "{KATIB_NAMESPACE_LABEL}: enabled"'
            )
        else:
            problem = _aggregate(katib_validate(experiment, old))
        if not problem:
            return None
        return 400, status_object(
            400, None, f'admission webhook "{KATIB_WEBHOOK}" denied the request: {problem}'
        )

    def _create(self, namespace: str, body: Any) -> Answer:
        refused = self._check_kind(body)
        if refused:
            return refused
        experiment = copy.deepcopy(body)
        metadata = experiment.setdefault("metadata", {})
        name = metadata.get("name")
        if not name:
            return 422, status_object(
                422,
                "Invalid",
                "Experiment.kubeflow.org is invalid: metadata.name: Required value: name or "
                "generateName is required",
            )
        if metadata.get("namespace", namespace) != namespace:
            return 400, status_object(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if not (_DNS1123_SUBDOMAIN.fullmatch(name) and len(name) <= 253):
            detail = (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
            return 422, status_object(
                422,
                "Invalid",
                f'Experiment.kubeflow.org "{name}" is invalid: metadata.name: Invalid value: '
                f'"{name}": {detail}',
                name=name,
                group="kubeflow.org",
                kind="Experiment",
                causes=[
                    {
                        "reason": "FieldValueInvalid",
                        "message": f'Invalid value: "{name}": {detail}',
                        "field": "metadata.name",
                    }
                ],
            )
        metadata["namespace"] = namespace
        for server_field in ("deletionTimestamp", "resourceVersion", "uid"):
            metadata.pop(server_field, None)
        denied = self._admit(namespace, experiment, None)
        if denied:
            return denied
        existing = self._state.experiments.get((namespace, name))
        if existing is not None:
            message = f'experiments.kubeflow.org "{name}" already exists'
            if existing["metadata"].get("deletionTimestamp"):
                message = f"object is being deleted: {message}"
            return 409, status_object(
                409, "AlreadyExists", message, name=name, group="kubeflow.org", kind="experiments"
            )
        experiment.pop("status", None)
        stored = self._with_server_metadata(experiment)
        self._state.experiments[(namespace, name)] = stored
        return 201, copy.deepcopy(stored)

    def _get(self, namespace: str, name: str) -> Answer:
        stored = self._state.experiments.get((namespace, name))
        if stored is None:
            return self._not_found(name)
        script = self._state.scripts.get(name)
        if script:
            reads = self._state.status_reads[name]
            stored["status"] = copy.deepcopy(script[min(reads, len(script) - 1)])
            self._state.status_reads[name] = reads + 1
        return 200, _public(stored)

    def _replace(self, namespace: str, name: str, body: Any, *, status_only: bool) -> Answer:
        refused = self._check_kind(body)
        if refused:
            return refused
        stored = self._state.experiments.get((namespace, name))
        if stored is None:
            return self._not_found(name)
        metadata = body.get("metadata") or {}
        if metadata.get("name") != name:
            return 400, status_object(
                400,
                "BadRequest",
                f"the name of the object ({metadata.get('name')}) does not match the name on "
                f"the URL ({name})",
            )
        if not metadata.get("resourceVersion"):
            return 422, status_object(
                422,
                "Invalid",
                f'Experiment.kubeflow.org "{name}" is invalid: metadata.resourceVersion: '
                "Invalid value: 0x0: must be specified for an update",
                name=name,
                group="kubeflow.org",
                kind="Experiment",
            )
        if status_only:
            updated = _public(stored)
            updated["status"] = copy.deepcopy(body.get("status"))
            return self._write(namespace, name, updated, metadata["resourceVersion"], status=True)
        return self._write(namespace, name, copy.deepcopy(body), metadata["resourceVersion"])

    def _patch(self, namespace: str, name: str, patch: Any, content_type: str) -> Answer:
        if not content_type.startswith("application/merge-patch+json"):
            return 415, status_object(
                415,
                "UnsupportedMediaType",
                f"the stand-in speaks merge patch only, got Content-Type {content_type!r}",
            )
        stored = self._state.experiments.get((namespace, name))
        if stored is None:
            return self._not_found(name)
        if not isinstance(patch, dict):
            return 400, status_object(400, "BadRequest", "the patch is not a JSON object")
        updated = _merge_patch(_public(stored), patch)
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        return self._write(namespace, name, updated, expected)

    def _write(
        self,
        namespace: str,
        name: str,
        updated: dict[str, Any],
        expected_version: str | None,
        *,
        status: bool = False,
    ) -> Answer:
        """Store an update of ``namespace/name`` the way the API server's store does.

        ``status`` is a write to the status subresource: it alone may change ``status``; a
        write to the main resource keeps the stored one.
        """
        stored = self._state.experiments[(namespace, name)]
        if (
            expected_version is not None
            and expected_version != stored["metadata"]["resourceVersion"]
        ):
            return 409, status_object(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on experiments.kubeflow.org "{name}": the '
                "object has been modified; please apply your changes to the latest version and "
                "try again",
                name=name,
                group="kubeflow.org",
                kind="experiments",
            )
        metadata = updated.setdefault("metadata", {})
        old_metadata = stored["metadata"]
        for immutable in ("uid", "creationTimestamp", "namespace", "deletionTimestamp"):
            if immutable in old_metadata:
                metadata[immutable] = old_metadata[immutable]
            else:
                metadata.pop(immutable, None)
        metadata["generation"] = old_metadata.get("generation", 1)
        finalizers = list(metadata.get("finalizers") or [])
        if old_metadata.get("deletionTimestamp"):
            added = [f for f in finalizers if f not in (old_metadata.get("finalizers") or [])]
            if added:
                return 422, status_object(
                    422,
                    "Invalid",
                    f'Experiment.kubeflow.org "{name}" is invalid: metadata.finalizers: '
                    "Forbidden: no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {_go_value(added)}",
                    name=name,
                    group="kubeflow.org",
                    kind="Experiment",
                )
        if not status:
            updated.pop("status", None)
            if "status" in stored:
                updated["status"] = copy.deepcopy(stored["status"])
        denied = self._admit(namespace, updated, _public(stored))
        if denied:
            return denied
        if updated.get("spec") != stored.get("spec"):
            metadata["generation"] += 1
        self._bump(updated)
        self._state.experiments[(namespace, name)] = updated
        if metadata.get("deletionTimestamp") and not finalizers:
            self._remove_experiment((namespace, name))
        return 200, _public(updated)

    def _delete(self, namespace: str, name: str, query: dict[str, list[str]], body: Any) -> Answer:
        stored = self._state.experiments.get((namespace, name))
        if stored is None:
            return self._not_found(name)
        policy = (query.get("propagationPolicy") or [""])[0]
        if not policy and isinstance(body, dict):
            policy = str(body.get("propagationPolicy") or "")
        if policy not in ("", "Foreground", "Background", "Orphan"):
            return 422, status_object(
                422,
                "Invalid",
                f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                f'"{policy}": supported values: "Foreground", "Background", "Orphan", "nil"',
            )
        metadata = stored["metadata"]
        finalizers = metadata.setdefault("finalizers", [])
        if policy == "Foreground" and FOREGROUND_DELETION not in finalizers:
            finalizers.append(FOREGROUND_DELETION)
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        if policy or (namespace, name) not in self._state.deletion_policy:
            self._state.deletion_policy[(namespace, name)] = policy or "Background"
        if not finalizers:
            self._remove_experiment((namespace, name))
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": "kubeflow.org",
                    "kind": "experiments",
                    "uid": metadata["uid"],
                },
            }
        if not metadata.get("deletionTimestamp"):
            metadata["deletionTimestamp"] = _now()
            metadata["deletionGracePeriodSeconds"] = 0
        self._bump(stored)
        return 200, _public(stored)

    def _list_trials(self, namespace: str, query: dict[str, list[str]]) -> Answer:
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


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the API server shows it (an empty finalizer list is left out)."""
    shown = copy.deepcopy(dict(obj))
    if not shown.get("metadata", {}).get("finalizers"):
        shown.get("metadata", {}).pop("finalizers", None)
    return shown


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _resource_of(path: str) -> str:
    match = _PATH.match(path)
    if not match:
        return ""
    if match["plural"] == "trials":
        return "trials"
    if match["name"] is None:
        return "experiments"
    return "experiment/status" if match["status"] else "experiment"


class JsonApi(Protocol):
    """A stand-in server's core: one request in, (status code, JSON answer) out."""

    def _serve(
        self, method: str, raw_path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]: ...


def _handler_for(api: JsonApi) -> type[BaseHTTPRequestHandler]:
    """An HTTP/1.1 handler that hands each request to ``api`` (the KServe stand-in uses it too)."""

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


# -- Katib's webhooks (a port of kubeflow/katib v0.19.0, see the module docstring) ----------


def katib_set_defaults(experiment: dict[str, Any]) -> None:
    """Katib's ``Experiment.SetDefault``: what its defaulting webhook fills in, in place."""
    spec = experiment.setdefault("spec", {})
    if spec.get("parallelTrialCount") is None:
        spec["parallelTrialCount"] = 3
    if not spec.get("resumePolicy"):
        spec["resumePolicy"] = "Never"
    objective = spec.get("objective")
    if isinstance(objective, dict):
        strategies = objective.setdefault("metricStrategies", [])
        named = {s.get("name") for s in strategies}
        by_type = {"minimize": "min", "maximize": "max"}.get(objective.get("type"), "latest")
        if objective.get("objectiveMetricName") not in named:
            strategies.append({"name": objective.get("objectiveMetricName"), "value": by_type})
        for metric in objective.get("additionalMetricNames") or []:
            if metric not in named:
                strategies.append({"name": metric, "value": by_type})
    template = spec.get("trialTemplate")
    trial_spec = template.get("trialSpec") if isinstance(template, dict) else None
    if isinstance(trial_spec, dict) and trial_spec.get("kind") == "Job":
        template.setdefault("successCondition", _DEFAULT_JOB_SUCCESS)
        template.setdefault("failureCondition", _DEFAULT_JOB_FAILURE)
    collector_spec = spec.setdefault("metricsCollectorSpec", {})
    if isinstance(collector_spec, dict) and not collector_spec.get("collector"):
        collector_spec["collector"] = {"kind": "StdOut"}
    for parameter in spec.get("parameters") or []:
        space = parameter.get("feasibleSpace")
        if isinstance(space, dict) and not space.get("distribution"):
            space["distribution"] = "uniform"


def katib_validate(experiment: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[str]:
    """Katib's ``ValidateExperiment``: its field errors, in its order and wording.

    Args:
        experiment: the defaulted Experiment.
        old: the stored Experiment on an update, None on a create.

    Returns:
        One ``<path>: <type>: <detail>`` per problem, as Go's ``field.Error`` prints it.
    """
    errors: list[str] = []
    name = str((experiment.get("metadata") or {}).get("name", ""))
    if not _KATIB_NAME.match(name) or len(name) > 40:
        errors.append(_invalid("metadata.name", name, _KATIB_NAME_MESSAGE))
    spec: dict[str, Any] = dict(experiment.get("spec") or {})
    max_failed = spec.get("maxFailedTrialCount")
    max_trials = spec.get("maxTrialCount")
    parallel = spec.get("parallelTrialCount")
    if max_failed is not None and max_failed < 0:
        errors.append(_invalid("spec.maxFailedTrialCount", max_failed, "should not be less than 0"))
    if max_trials is not None and max_trials <= 0:
        errors.append(_invalid("spec.maxTrialCount", max_trials, "must be greater than 0"))
    if parallel is not None and parallel <= 0:
        errors.append(_invalid("spec.parallelTrialCount", parallel, "must be greater than 0"))
    if max_failed is not None and max_trials is not None and max_failed > max_trials:
        errors.append(
            _invalid(
                "spec.maxFailedTrialCount",
                max_failed,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    if parallel is not None and max_trials is not None and parallel > max_trials:
        errors.append(
            _invalid(
                "spec.parallelTrialCount",
                parallel,
                "should be less than or equal to spec.maxTrialCount",
            )
        )
    if old is not None:
        errors.extend(_update_errors(spec, old))
    objective_errors = _objective_errors(spec.get("objective"))
    if objective_errors:
        return errors + objective_errors
    errors.extend(_algorithm_errors(spec.get("algorithm")))
    errors.extend(_early_stopping_errors(spec.get("earlyStopping")))
    if spec.get("resumePolicy", "") not in ("", "Never", "LongRunning", "FromVolume"):
        errors.append(
            _invalid("spec.resumePolicy", spec["resumePolicy"], "invalid ResumePolicyType")
        )
    errors.extend(_trial_template_errors(spec))
    parameters = spec.get("parameters") or []
    if not parameters and spec.get("nasConfig") is None:
        errors.append(_required("spec", "spec.parameters or spec.nasConfig must be specified"))
    if parameters and spec.get("nasConfig") is not None:
        errors.append(
            _invalid(
                "spec", spec, "only one of spec.parameters and spec.nasConfig can be specified"
            )
        )
    errors.extend(_parameter_errors(parameters))
    errors.extend(_collector_errors(spec.get("metricsCollectorSpec") or {}))
    return errors


def _update_errors(spec: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    errors: list[str] = []
    old_spec = dict(old.get("spec") or {})
    restarting = dict(spec) != old_spec
    conditions = {
        c.get("type"): c
        for c in (old.get("status") or {}).get("conditions") or []
        if str(c.get("status")).lower() == "true"
    }
    completed = "Succeeded" in conditions or "Failed" in conditions
    restartable = (
        "Succeeded" in conditions
        and conditions["Succeeded"].get("reason") == "ExperimentMaxTrialsReached"
        and old_spec.get("resumePolicy") in ("LongRunning", "FromVolume")
    )
    if restarting and completed and not restartable:
        errors.append(
            _invalid(
                "spec.resumePolicy",
                spec.get("resumePolicy", ""),
                "Experiment can be restarted if it is in succeeded state by reaching max trials "
                "and spec.resumePolicy = LongRunning or spec.resumePolicy = FromVolume, when "
                "experiment is completed",
            )
        )
    trials = int((old.get("status") or {}).get("trials") or 0)
    if restarting and spec.get("maxTrialCount") is not None and spec["maxTrialCount"] <= trials:
        errors.append(
            _invalid(
                "spec.maxTrialCount",
                spec["maxTrialCount"],
                "must be greater than status.trials count",
            )
        )
    editable = ("maxFailedTrialCount", "maxTrialCount", "parallelTrialCount")
    if {k: v for k, v in spec.items() if k not in editable} != {
        k: v for k, v in old_spec.items() if k not in editable
    }:
        errors.append(
            _forbidden(
                "spec",
                "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount "
                "are editable",
            )
        )
    return errors


def _objective_errors(objective: Any) -> list[str]:
    if objective is None:
        return [_required("spec.objective", "must be specified")]
    errors = []
    if objective.get("type") not in ("minimize", "maximize"):
        errors.append(
            _invalid(
                "spec.objective.type", objective.get("type", ""), "must be minimize or maximize"
            )
        )
    metric = objective.get("objectiveMetricName") or ""
    if not metric:
        errors.append(_required("spec.objective.objectiveMetricName", "must be specified"))
    additional = objective.get("additionalMetricNames") or []
    if metric in additional:
        errors.append(
            _invalid(
                "spec.objective.additionalMetricNames",
                additional,
                "should not contain spec.objective.objectiveMetricName",
            )
        )
    return errors


def _algorithm_errors(algorithm: Any) -> list[str]:
    if algorithm is None:
        return [_required("spec.algorithm", "must be specified")]
    errors = []
    name = algorithm.get("algorithmName") or ""
    if not name:
        errors.append(_required("spec.algorithm.algorithmName", "must be specified"))
    if name not in KATIB_ALGORITHMS:
        errors.append(
            _invalid(
                "spec.algorithm.algorithmName",
                name,
                f"unable to get Suggestion config data for algorithm {name}: failed to find "
                f"suggestion config for algorithm: {name} in ConfigMap: katib-config",
            )
        )
    return errors


def _early_stopping_errors(early_stopping: Any) -> list[str]:
    if early_stopping is None:
        return []
    errors = []
    name = early_stopping.get("algorithmName") or ""
    if not name:
        errors.append(_required("spec.earlyStopping.algorithmName", "must be specified"))
    if name not in KATIB_EARLY_STOPPING:
        errors.append(
            _invalid(
                "spec.earlyStopping.algorithmName",
                name,
                f"unable to get EarlyStopping config data for algorithm {name}: failed to find "
                f"early stopping config for algorithm: {name} in ConfigMap: katib-config",
            )
        )
    return errors


def _trial_template_errors(spec: Mapping[str, Any]) -> list[str]:
    path = "spec.trialTemplate"
    template = spec.get("trialTemplate")
    if template is None:
        return [_required(path, "must be specified")]
    errors = []
    if not template.get("primaryContainerName"):
        errors.append(_required(f"{path}.primaryContainerName", "must be specified"))
    if not template.get("successCondition") or not template.get("failureCondition"):
        errors.append(_required(path, "successCondition and failureCondition must be specified"))
    trial_parameters = template.get("trialParameters")
    if trial_parameters is None:
        return [*errors, _required(f"{path}.trialParameters", "must be specified")]
    trial_spec, config_map = template.get("trialSpec"), template.get("configMap")
    if trial_spec is None and config_map is None:
        return [
            *errors,
            _required(
                f"{path}.TrialSource",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            ),
        ]
    if trial_spec is not None and config_map is not None:
        return [
            *errors,
            _required(
                path,
                "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be "
                "specified",
            ),
        ]
    if config_map is not None:
        return [
            *errors,
            _invalid(
                path,
                "",
                "unable to parse spec.trialTemplate: the stand-in serves no ConfigMap templates",
            ),
        ]
    text = json.dumps(trial_spec, sort_keys=True, separators=(",", ":"))
    names: set[str] = set()
    references: set[str] = set()
    search_names = {p.get("name") for p in spec.get("parameters") or []}
    listed = _go_value(trial_parameters)
    for index, parameter in enumerate(trial_parameters):
        where = f"{path}.trialParameters[{index}]"
        name, reference = parameter.get("name") or "", parameter.get("reference") or ""
        if not name or not reference or "{" in name or "}" in name:
            errors.append(
                _invalid(
                    where,
                    "",
                    "name and reference must be specified and name must not contain '{' or '}'",
                )
            )
            continue
        if name in names:
            errors.append(
                _invalid(
                    f"{where}.name",
                    name,
                    f"parameter name {name} can't be duplicated in "
                    f"spec.trialTemplate.trialParameters: {listed}",
                )
            )
            continue
        if reference in references:
            errors.append(
                _invalid(
                    f"{where}.reference",
                    reference,
                    f"parameter reference {reference} can't be duplicated in "
                    f"spec.trialTemplate.trialParameters: {listed}",
                )
            )
            continue
        names.add(name)
        references.add(reference)
        if search_names and not _is_meta_key(reference) and reference not in search_names:
            errors.append(
                _invalid(
                    f"{where}.reference",
                    reference,
                    f"parameter reference {reference} does not exist in spec.parameters: "
                    f"{_go_value(spec.get('parameters'))}",
                )
            )
        placeholder = f"${{trialParameters.{name}}}"
        if placeholder not in text:
            errors.append(
                _invalid(
                    f"{where}.name",
                    name,
                    f"parameter name: {name} in spec.trialParameters not found in "
                    f"spec.trialTemplate: {text}",
                )
            )
            return errors
        text = text.replace(placeholder, "test-value")
    left = _TRIAL_PARAMETER.findall(text)
    if left:
        errors.append(
            _invalid(
                path,
                "",
                f"parameters: [{' '.join(left)}] in spec.trialTemplate not found in "
                f"spec.trialParameters: {listed}",
            )
        )
    job_metadata = trial_spec.get("metadata") or {}
    if job_metadata.get("name") or job_metadata.get("namespace"):
        errors.append(
            _invalid(
                path,
                "",
                "metadata.name and metadata.namespace in spec.trialTemplate must be omitted",
            )
        )
    if not trial_spec.get("apiVersion") or not trial_spec.get("kind"):
        errors.append(
            _required(path, "APIVersion and Kind in spec.trialTemplate must be specified")
        )
    return errors


def _is_meta_key(reference: str) -> bool:
    match = _TRIAL_META.search(reference)
    if not match:
        return False
    key = match.group(1)
    indexed = re.fullmatch(r"(.+)\[(.+)]", key)
    return key in _TRIAL_META_KEYS or bool(indexed and indexed.group(1) in _TRIAL_META_KEYS)


def _parameter_errors(parameters: Sequence[Mapping[str, Any]]) -> list[str]:
    errors = []
    for index, parameter in enumerate(parameters):
        where = f"spec.parameters[{index}]"
        kind = parameter.get("parameterType", "")
        if kind not in ("int", "double", "categorical", "discrete", ""):
            errors.append(
                _invalid(f"{where}.parameterType", kind, f"parameterType: {kind} is not supported")
            )
        space = dict(parameter.get("feasibleSpace") or {})
        distribution = space.get("distribution", "")
        if distribution and distribution not in ("uniform", "logUniform", "normal", "logNormal"):
            errors.append(
                _invalid(
                    f"{where}.feasibleSpace.distribution",
                    distribution,
                    f"distribution: {distribution} is not supported",
                )
            )
        if not any(space.values()):
            errors.append(_required(f"{where}.feasibleSpace", "feasibleSpace must be specified"))
        elif kind in ("double", "int"):
            if space.get("list"):
                errors.append(
                    _invalid(
                        f"{where}.feasibleSpace.list",
                        space["list"],
                        f"feasibleSpace.list is not supported for parameterType: {kind}",
                    )
                )
            if not space.get("max") or not space.get("min"):
                errors.append(
                    _required(
                        f"{where}.feasibleSpace.max",
                        "feasibleSpace.max or feasibleSpace.min must be specified for "
                        f"parameterType: {kind}",
                    )
                )
        elif kind in ("categorical", "discrete") and (
            space.get("max") or space.get("min") or space.get("step")
        ):
            errors.append(
                _invalid(
                    f"{where}.feasibleSpace",
                    space,
                    "feasibleSpace .max, .min and .step is not supported for parameterType: "
                    f"{kind}",
                )
            )
    return errors


def _collector_errors(collector_spec: Mapping[str, Any]) -> list[str]:
    path = "spec.metricsCollectorSpec"
    kind = (collector_spec.get("collector") or {}).get("kind", "")
    source = collector_spec.get("source") or {}
    file_path = source.get("fileSystemPath") or {}
    errors = []
    if kind in ("StdOut", "Push"):
        pass
    elif kind == "File":
        if file_path.get("kind") != "File" or not str(file_path.get("path", "")).startswith("/"):
            errors.append(
                _required(
                    f"{path}.source.fileSystemPath.path",
                    "file path where metrics file exists is required",
                )
            )
        if file_path.get("format") not in ("TEXT", "JSON"):
            errors.append(
                _required(
                    f"{path}.source.fileSystemPath.format",
                    "format of metrics file is required for metrics collector",
                )
            )
    elif kind == "TensorFlowEvent":
        if file_path.get("kind") != "Directory" or not str(file_path.get("path", "")).startswith(
            "/"
        ):
            errors.append(
                _required(
                    f"{path}.source",
                    "directory path where tensorflow event files exist is required by "
                    ".spec.metricsCollectorSpec.source.fileSystemPath.path",
                )
            )
    elif kind == "PrometheusMetric":
        http_get = source.get("httpGet") or {}
        if not str(http_get.get("port", "")).isdigit() or int(http_get["port"]) <= 0:
            errors.append(
                _invalid(
                    f"{path}.source.httpGet.port",
                    str(http_get.get("port", "")),
                    f"must be a positive integer value for metrics collector kind: {kind}",
                )
            )
        if not str(http_get.get("path", "")).startswith("/"):
            errors.append(
                _invalid(
                    f"{path}.source.httpGet.path",
                    str(http_get.get("path", "")),
                    f"path is invalid for metrics collector kind: {kind}",
                )
            )
    elif kind == "Custom":
        if not (collector_spec.get("collector") or {}).get("customCollector"):
            errors.append(
                _required(
                    f"{path}.collector.customCollector",
                    f"metrics collector kind: {kind} is required",
                )
            )
    else:
        errors.append(
            _invalid(f"{path}.collector.kind", kind, f"invalid metrics collector kind: {kind}")
        )
    for pattern in (source.get("filter") or {}).get("metricsFormat") or []:
        try:
            re.compile(pattern)
        except re.error as error:
            errors.append(
                _invalid(f"{path}.source.filter.metricsFormat", pattern, f"invalid filter: {error}")
            )
            continue
        if not re.match(r".*\(.*\).*\(.*\).*", pattern):
            errors.append(
                _invalid(
                    f"{path}.source.filter.metricsFormat",
                    pattern,
                    "two top subexpressions are required",
                )
            )
    return errors


def _go_value(value: Any) -> str:
    """A bad value as Go's ``field.Error`` prints it (``%q`` strings, ``%v`` numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[]string{" + ", ".join(json.dumps(item) for item in value) + "}"
    return json.dumps(value, sort_keys=True)


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def _forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


def _aggregate(errors: Sequence[str]) -> str:
    """``ErrorList.ToAggregate().Error()``: one error as is, several as ``[a, b]``."""
    unique = list(dict.fromkeys(errors))
    if len(unique) <= 1:
        return unique[0] if unique else ""
    return "[" + ", ".join(unique) + "]"


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
            "labels": {EXPERIMENT_LABEL: experiment},
            "creationTimestamp": created,
        },
        "spec": {
            "parameterAssignments": [{"name": k, "value": v} for k, v in parameters.items()],
        },
        "status": status,
    }
