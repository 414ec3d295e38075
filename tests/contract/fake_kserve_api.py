"""A stand-in for the Kubernetes API server and KServe, for contract tests of the deploy step.

Not a cluster. It is a real HTTP(S) server on 127.0.0.1 (``http.server`` in a thread) that
speaks the part of the Kubernetes API the rollout uses, and answers as the API server does:

- ``GET   /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}``
- ``PATCH /apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices/{name}``: JSON
  merge patches (RFC 7386) only, as for every custom resource (a strategic merge patch gets
  415; JSON patches are not implemented here and get 415 too); a ``metadata.resourceVersion``
  in the body is a precondition (409 Conflict when stale); ``status`` is a subresource, so a
  patch cannot change it; the result is validated against KServe 0.20's CRD schema
  (``tests/data/crds``; 422 Invalid naming the field) and ObjectMeta's types (400);
  ``metadata.generation`` grows when ``spec`` changes, ``resourceVersion`` on every change,
  and a patch that changes nothing changes neither.
- ``GET   /apis/apps/v1/namespaces/{ns}/deployments[?labelSelector=k=v,...]`` and
  ``GET   /apis/apps/v1/namespaces/{ns}/deployments/{name}``

Errors are ``v1 Status`` objects with the API server's reasons and messages (NotFound,
Unauthorized, Forbidden, Conflict, Invalid, UnsupportedMediaType). With ``tokens`` every
request needs ``Authorization: Bearer <token>`` (401 otherwise) and the token's user needs the
verb on the resource (403 otherwise, in RBAC's words).

A controller thread does what KServe 0.20 (Standard mode), the Deployment controller and the
kubelet would: KServe copies ``spec.predictor.annotations`` onto the predictor Deployment's pod
template (``<name>-predictor``, labels ``serving.kserve.io/inferenceservice=<name>`` and
``component=predictor``), which bumps the Deployment's generation; the Deployment controller
rolls its replicas one by one; KServe derives the InferenceService's ``PredictorReady`` and
``Ready`` conditions from the Deployment's ``Available``/``Progressing``/``ReplicaFailure``
conditions as ``PropagateRawStatus`` does (so ``Ready`` stays True while old pods serve) and
copies the *Deployment's* ``status.observedGeneration`` into the InferenceService's. Each
status write bumps ``resourceVersion``, as a real controller's does. :meth:`break_rollout`
makes new pods never become available (a bad image, a model that fails to load), optionally
until a progress deadline passes (``Progressing=False``, ``ProgressDeadlineExceeded``).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.contract.fake_kube_api import RecordedRequest, _Fault, _handler_for, status_object

CRD_FILE = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "crds"
    / "kserve_v0.20.0_inferenceservices.full.yaml"
)
MERGE_PATCH = "application/merge-patch+json"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
STANDARD = "Standard"
_ISVC_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices"
    r"(?:/(?P<name>[^/]+))?$"
)
_DEPLOYMENT_PATH = re.compile(
    r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments(?:/(?P<name>[^/]+))?$"
)
_TIMESTAMP = "2026-01-01T00:00:00Z"
#: What the ServiceAccount of the manifests' Role may do, as ``"<verb> <resource>"``.
DEPLOY_PERMISSIONS = frozenset(
    {"get inferenceservices", "patch inferenceservices", "list deployments"}
)


@functools.cache
def isvc_schema() -> dict[str, Any]:
    """KServe 0.20's InferenceService schema (``openAPIV3Schema``), read once."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(CRD_FILE.read_text(), Loader=loader)  # a safe loader, C-accelerated
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return dict(version["schema"]["openAPIV3Schema"])


@functools.cache
def _validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(isvc_schema())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class _Rollout:
    """The Deployment controller's view of one Deployment's current rollout."""

    broken: bool = False
    deadline_ticks: int | None = None
    failure: tuple[str, str] = ("", "")
    ticks: int = 0


@dataclass
class _Identity:
    user: str
    permissions: frozenset[str]


@dataclass
class _State:
    isvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rollouts: dict[tuple[str, str], _Rollout] = field(default_factory=dict)
    concurrent_writes: dict[tuple[str, str], int] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    resource_version: int = 5000


class FakeKServeApi:
    """The stand-in server; use as a context manager or call :meth:`close`.

    Args:
        tokens: bearer token -> ``(user, permissions)``, permissions as ``"<verb> <resource>"``
            (e.g. :data:`DEPLOY_PERMISSIONS`). None lets every request through.
        tls: serve HTTPS with a fresh self-signed certificate for 127.0.0.1 (its CA file is
            :attr:`ca_file`), as the in-cluster API server does.
        tick_s: how often the controller thread acts.
    """

    def __init__(
        self,
        *,
        tokens: Mapping[str, tuple[str, Iterable[str]]] | None = None,
        tls: bool = False,
        tick_s: float = 0.02,
    ) -> None:
        self._identities = (
            None
            if tokens is None
            else {t: _Identity(user, frozenset(perms)) for t, (user, perms) in tokens.items()}
        )
        self._lock = threading.Lock()
        self._state = _State()
        self._stopped = threading.Event()
        self._scratch = tempfile.TemporaryDirectory(prefix="fake-kserve-")
        self.ca_file: Path | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        if tls:
            self.ca_file, key_file = _self_signed_certificate(Path(self._scratch.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._tls = tls
        self._threads = [
            threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            ),
            threading.Thread(target=self._control_loop, args=(tick_s,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, as a kubeconfig's ``server``."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, token: str | None = None, namespace: str = "kaizen") -> Path:
        """Write a kubeconfig for this server (one context, bearer token) to ``path``."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_file is not None:
            cluster["certificate-authority"] = str(self.ca_file)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "runner", "user": {"token": token} if token else {}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "runner", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def close(self) -> None:
        """Stop the controller and the server, free the port."""
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._scratch.cleanup()

    def __enter__(self) -> FakeKServeApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- setting the scene --------------------------------------------------------------------

    def add_inference_service(
        self,
        body: Mapping[str, Any],
        *,
        replicas: int = 2,
        deployment_generation: int = 1,
    ) -> None:
        """Store an InferenceService as ``kubectl apply`` left it, rolled out and Ready.

        Args:
            body: the InferenceService (e.g. the manifests' own); validated like a write.
            replicas: the predictor Deployment's replicas.
            deployment_generation: the Deployment's generation; it is unrelated to the
                InferenceService's on a real cluster (HPA, edits, KServe's own updates).
        """
        with self._lock:
            isvc = copy.deepcopy(dict(body))
            metadata = isvc.setdefault("metadata", {})
            namespace = metadata.setdefault("namespace", "kaizen")
            name = metadata["name"]
            problem = _invalid(isvc)
            if problem:
                raise ValueError(f"the InferenceService is invalid: {problem}")
            metadata.update(uid=f"uid-{name}", generation=1, creationTimestamp=_TIMESTAMP)
            metadata["resourceVersion"] = self._next_version()
            isvc["status"] = {}
            self._state.isvcs[(namespace, name)] = isvc
            mode = (metadata.get("annotations") or {}).get(DEPLOYMENT_MODE, STANDARD)
            if mode != STANDARD:
                # Knative's revisions are not emulated: KServe only records the mode here.
                isvc["status"] = {"deploymentMode": mode}
                return
            template = self._desired_template(isvc)
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": f"{name}-predictor",
                    "namespace": namespace,
                    "labels": _predictor_labels(name),
                    "generation": deployment_generation,
                    "resourceVersion": self._next_version(),
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": f"isvc.{name}-predictor"}},
                    "template": template,
                },
                "status": {
                    "observedGeneration": deployment_generation,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "conditions": [
                        _condition(
                            "Available",
                            "True",
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability.",
                        ),
                        _condition(
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            f'ReplicaSet "{name}-predictor-1" has successfully progressed.',
                        ),
                    ],
                },
            }
            self._state.deployments[(namespace, f"{name}-predictor")] = deployment
            self._propagate_status(isvc, deployment, _Rollout())

    def break_rollout(
        self,
        namespace: str,
        name: str,
        *,
        reason: str = "ModelLoadFailed",
        message: str = "container kserve-container: back-off restarting failed container",
        deadline_ticks: int | None = None,
    ) -> None:
        """From now on, new predictor pods of ``name`` never become available.

        Args:
            namespace: the InferenceService's namespace.
            name: its name.
            reason: KServe's ``modelStatus.lastFailureInfo.reason`` for the failing pods.
            message: and its message.
            deadline_ticks: controller ticks after which the Deployment's progress deadline
                passes (``ProgressDeadlineExceeded``); None for never.
        """
        with self._lock:
            key = (namespace, f"{name}-predictor")
            self._state.rollouts[key] = _Rollout(
                broken=True, deadline_ticks=deadline_ticks, failure=(reason, message)
            )

    def write_concurrently(self, namespace: str, name: str, times: int = 1) -> None:
        """After each of the next ``times`` GETs of the InferenceService, someone else changes
        it (a label), so a patch decided on that read meets a newer resourceVersion."""
        with self._lock:
            self._state.concurrent_writes[(namespace, name)] = times

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
        """Answer matching requests (``resource``: ``inferenceservices`` or ``deployments``) with
        a Status error instead of serving them; ``times`` None for all of them."""
        with self._lock:
            self._state.faults.append(_Fault(method, resource, code, reason, message, times))

    # -- inspection ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, method: str, resource: str) -> list[RecordedRequest]:
        """Recorded requests with this method to ``inferenceservices`` or ``deployments``."""
        return [r for r in self.requests if r.method == method and _resource_of(r.path) == resource]

    def inference_service(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._state.isvcs[(namespace, name)])

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._state.deployments[(namespace, name)])

    # -- the controllers ----------------------------------------------------------------------

    def _next_version(self) -> str:
        self._state.resource_version += 1
        return str(self._state.resource_version)

    def _desired_template(self, isvc: Mapping[str, Any]) -> dict[str, Any]:
        predictor = (isvc.get("spec") or {}).get("predictor") or {}
        name = isvc["metadata"]["name"]
        return {
            "metadata": {
                "labels": {**_predictor_labels(name), "app": f"isvc.{name}-predictor"},
                "annotations": dict(predictor.get("annotations") or {}),
            },
            "spec": {"containers": copy.deepcopy(predictor.get("containers") or [])},
        }

    def _control_loop(self, tick_s: float) -> None:
        while not self._stopped.wait(tick_s):
            with self._lock:
                for (namespace, name), isvc in self._state.isvcs.items():
                    key = (namespace, f"{name}-predictor")
                    deployment = self._state.deployments.get(key)
                    if deployment is None:
                        continue
                    rollout = self._state.rollouts.setdefault(key, _Rollout())
                    self._reconcile_kserve(isvc, deployment)
                    self._roll(deployment, rollout)
                    self._propagate_status(isvc, deployment, rollout)

    def _reconcile_kserve(self, isvc: dict[str, Any], deployment: dict[str, Any]) -> None:
        """KServe: the predictor's annotations go onto the Deployment's pod template."""
        desired = self._desired_template(isvc)
        if deployment["spec"]["template"] != desired:
            deployment["spec"]["template"] = desired
            deployment["metadata"]["generation"] += 1
            deployment["metadata"]["resourceVersion"] = self._next_version()

    def _roll(self, deployment: dict[str, Any], rollout: _Rollout) -> None:
        """The Deployment controller and the kubelet, one step per tick."""
        status = deployment["status"]
        before = copy.deepcopy(status)
        name = deployment["metadata"]["name"]
        desired = int(deployment["spec"]["replicas"])
        generation = deployment["metadata"]["generation"]
        replica_set = f'ReplicaSet "{name}-{generation}"'
        if status["observedGeneration"] < generation:
            status["observedGeneration"] = generation
            status["updatedReplicas"] = 0
            rollout.ticks = 0
            _set_condition(
                status, "Progressing", "True", "ReplicaSetUpdated", f"{replica_set} is progressing."
            )
        elif status["updatedReplicas"] < desired or status["replicas"] > desired:
            rollout.ticks += 1
            if rollout.broken:
                # One surge pod of the new ReplicaSet that never becomes ready; the old serve.
                status.update(updatedReplicas=1, replicas=desired + 1, availableReplicas=desired)
                progressing = _get_condition(status, "Progressing")
                deadline = rollout.deadline_ticks
                if (
                    deadline is not None
                    and rollout.ticks >= deadline
                    and progressing["status"] == "True"
                ):
                    _set_condition(
                        status,
                        "Progressing",
                        "False",
                        "ProgressDeadlineExceeded",
                        f"{replica_set} has timed out progressing.",
                    )
            elif status["updatedReplicas"] < desired:
                # Surge one new pod, then retire one old pod once it is available.
                updated = status["updatedReplicas"] + 1
                status.update(updatedReplicas=updated, replicas=desired + 1)
                status["availableReplicas"] = desired
            else:
                status.update(replicas=desired, availableReplicas=desired, readyReplicas=desired)
                _set_condition(
                    status,
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f"{replica_set} has successfully progressed.",
                )
        if status != before:
            deployment["metadata"]["resourceVersion"] = self._next_version()

    def _propagate_status(
        self, isvc: dict[str, Any], deployment: dict[str, Any], rollout: _Rollout
    ) -> None:
        """KServe 0.20's ``PropagateRawStatus`` for one predictor Deployment, then Ready."""
        before = copy.deepcopy(isvc.get("status") or {})
        status: dict[str, Any] = copy.deepcopy(before)
        conditions = deployment["status"].get("conditions") or []
        available = next((c for c in conditions if c["type"] == "Available"), None)
        progressing = next((c for c in conditions if c["type"] == "Progressing"), None)
        ready: dict[str, str] = {"status": "False", "reason": "", "message": ""}
        if available and available["status"] == "True":
            ready = _pick(available, "True")
        if progressing:
            if progressing["status"] == "False" and progressing.get("message"):
                ready = _pick(progressing, "False")
            elif progressing["status"] == "True":
                if progressing["reason"] == "NewReplicaSetAvailable":
                    ready = _pick(progressing, "True")
                elif not available or available["status"] != "True":
                    ready = _pick(progressing, "Unknown")
        if available and available["status"] == "False":
            ready = _pick(available, "False")
        entries = {c["type"]: c for c in status.get("conditions") or []}
        for type_ in ("PredictorReady", "Ready"):
            entries[type_] = {"type": type_, "lastTransitionTime": _TIMESTAMP, **ready}
        entries["IngressReady"] = {
            "type": "IngressReady",
            "status": "True",
            "lastTransitionTime": _TIMESTAMP,
        }
        status["conditions"] = [entries[t] for t in sorted(entries)]
        status["observedGeneration"] = deployment["status"]["observedGeneration"]
        status["deploymentMode"] = STANDARD
        model_status: dict[str, Any] = {"transitionStatus": "UpToDate"}
        rolling = deployment["status"]["availableReplicas"] < deployment["status"]["replicas"]
        if rollout.broken and rolling:
            reason, message = rollout.failure
            model_status = {
                "transitionStatus": "BlockedByFailedLoad",
                "lastFailureInfo": {"reason": reason, "message": message},
            }
        status["modelStatus"] = model_status
        if status != before:
            isvc["status"] = status
            isvc["metadata"]["resourceVersion"] = self._next_version()

    # -- serving (called from the handler threads) --------------------------------------------

    def _serve(
        self, method: str, raw_path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query)
        with self._lock:
            self._state.requests.append(
                RecordedRequest(method, split.path, query, copy.deepcopy(body), headers)
            )
            resource = _resource_of(split.path)
            if not resource:
                return 404, status_object(
                    404, "NotFound", "the server could not find the requested resource"
                )
            isvc_match = _ISVC_PATH.match(split.path)
            match = isvc_match or _DEPLOYMENT_PATH.match(split.path)
            assert match is not None
            namespace, name = match["ns"], match["name"]
            verb = {"GET": "get" if name else "list", "PATCH": "patch"}.get(method, method.lower())
            denied = self._authorize(headers, verb, resource, namespace, name)
            if denied:
                return denied
            for fault in self._state.faults:
                if fault.method == method and fault.resource == resource and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault.code, status_object(fault.code, fault.reason, fault.message)
            if resource == "inferenceservices" and name and method == "GET":
                return self._get_isvc(namespace, name)
            if resource == "inferenceservices" and name and method == "PATCH":
                return self._patch_isvc(namespace, name, body, headers.get("content-type", ""))
            if resource == "deployments" and method == "GET":
                return self._deployments(namespace, name, query)
            return 405, status_object(
                405, "MethodNotAllowed", f"the server does not allow this method on {split.path}"
            )

    def _authorize(
        self, headers: dict[str, str], verb: str, resource: str, namespace: str, name: str | None
    ) -> tuple[int, dict[str, Any]] | None:
        if self._identities is None:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        identity = self._identities.get(token.strip()) if scheme.lower() == "bearer" else None
        if identity is None:
            return 401, status_object(401, "Unauthorized", "Unauthorized")
        if f"{verb} {resource}" in identity.permissions:
            return None
        group = "serving.kserve.io" if resource == "inferenceservices" else "apps"
        subject = f'{resource}.{group} "{name}"' if name else f"{resource}.{group}"
        return 403, status_object(
            403,
            "Forbidden",
            f'{subject} is forbidden: User "{identity.user}" cannot {verb} resource '
            f'"{resource}" in API group "{group}" in the namespace "{namespace}"',
            **({"name": name} if name else {}),
            group=group,
            kind=resource,
        )

    def _not_found(self, name: str) -> tuple[int, dict[str, Any]]:
        return 404, status_object(
            404,
            "NotFound",
            f'inferenceservices.serving.kserve.io "{name}" not found',
            name=name,
            group="serving.kserve.io",
            kind="inferenceservices",
        )

    def _get_isvc(self, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
        isvc = self._state.isvcs.get((namespace, name))
        if isvc is None:
            return self._not_found(name)
        answer = copy.deepcopy(isvc)
        pending = self._state.concurrent_writes.get((namespace, name), 0)
        if pending:
            self._state.concurrent_writes[(namespace, name)] = pending - 1
            labels = isvc["metadata"].setdefault("labels", {})
            labels["touched-by"] = f"someone-else-{pending}"
            isvc["metadata"]["resourceVersion"] = self._next_version()
        return 200, answer

    def _patch_isvc(
        self, namespace: str, name: str, body: Any, content_type: str
    ) -> tuple[int, dict[str, Any]]:
        if content_type.split(";", 1)[0].strip() != MERGE_PATCH:
            return 415, status_object(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {MERGE_PATCH} (this stand-in implements merge patches only; the API "
                "server refuses strategic merge patches on custom resources)",
            )
        isvc = self._state.isvcs.get((namespace, name))
        if isvc is None:
            return self._not_found(name)
        if not isinstance(body, dict):
            return 400, status_object(400, "BadRequest", "the patch body is not a JSON object")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        current = isvc["metadata"]["resourceVersion"]
        if wanted not in (None, "") and str(wanted) != current:
            return 409, status_object(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "{name}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
                name=name,
                group="serving.kserve.io",
                kind="inferenceservices",
            )
        merged = merge_patch(isvc, body)
        merged["status"] = copy.deepcopy(isvc.get("status") or {})  # the status subresource
        merged["metadata"]["resourceVersion"] = current
        for fixed in ("name", "namespace", "uid", "generation", "creationTimestamp"):
            if merged["metadata"].get(fixed) != isvc["metadata"].get(fixed):
                if fixed in ("name", "namespace"):
                    return 400, status_object(
                        400,
                        "BadRequest",
                        f"the {fixed} of the object ({merged['metadata'].get(fixed)}) does not "
                        f"match the {fixed} on the URL ({isvc['metadata'][fixed]})",
                    )
                merged["metadata"][fixed] = isvc["metadata"].get(fixed)
        problem = _invalid(merged)
        if problem:
            return problem[0], status_object(problem[0], problem[1], problem[2])
        if merged == isvc:
            return 200, copy.deepcopy(isvc)
        if merged.get("spec") != isvc.get("spec"):
            merged["metadata"]["generation"] = int(isvc["metadata"]["generation"]) + 1
        merged["metadata"]["resourceVersion"] = self._next_version()
        self._state.isvcs[(namespace, name)] = merged
        return 200, copy.deepcopy(merged)

    def _deployments(
        self, namespace: str, name: str | None, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any]]:
        if name is not None:
            found = self._state.deployments.get((namespace, name))
            if found is None:
                return 404, status_object(
                    404, "NotFound", f'deployments.apps "{name}" not found', name=name
                )
            return 200, copy.deepcopy(found)
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
            copy.deepcopy(d)
            for (ns, _), d in sorted(self._state.deployments.items())
            if ns == namespace
            and all(d["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return 200, {
            "apiVersion": "apps/v1",
            "kind": "DeploymentList",
            "metadata": {"resourceVersion": str(self._state.resource_version)},
            "items": items,
        }


def _invalid(isvc: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """``(code, reason, message)`` when the API server would refuse ``isvc``, else None."""
    name = (isvc.get("metadata") or {}).get("name", "")
    for part in ("labels", "annotations"):
        values = (isvc.get("metadata") or {}).get(part) or {}
        for key, value in values.items():
            if not isinstance(value, str):
                return (
                    400,
                    "BadRequest",
                    f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                    f"ObjectMeta.metadata.{part} of type string (key {key!r})",
                )
    errors = sorted(_validator().iter_errors(isvc), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    causes = []
    for error in errors:
        path = ".".join(str(p) for p in error.absolute_path)
        causes.append(f"{path}: Invalid value: {json.dumps(error.instance)}: {error.message}")
    return (
        422,
        "Invalid",
        f'InferenceService.serving.kserve.io "{name}" is invalid: ' + "; ".join(causes),
    )


def _predictor_labels(name: str) -> dict[str, str]:
    return {"serving.kserve.io/inferenceservice": name, "component": "predictor"}


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": _TIMESTAMP,
        "lastTransitionTime": _TIMESTAMP,
    }


def _get_condition(status: Mapping[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def _set_condition(
    status: dict[str, Any], type_: str, value: str, reason: str, message: str
) -> None:
    conditions = [c for c in status.get("conditions") or [] if c["type"] != type_]
    conditions.append(_condition(type_, value, reason, message))
    status["conditions"] = sorted(conditions, key=lambda c: c["type"])


def _pick(condition: Mapping[str, Any], status: str) -> dict[str, str]:
    return {
        "status": status,
        "reason": str(condition.get("reason", "")),
        "message": str(condition.get("message", "")),
    }


def _resource_of(path: str) -> str:
    if _ISVC_PATH.match(path):
        return "inferenceservices"
    if _DEPLOYMENT_PATH.match(path):
        return "deployments"
    return ""


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, made with the openssl CLI."""
    cert, key = folder / "ca.crt", folder / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
