"""Roll a KServe InferenceService to a new model version through the Kubernetes API.

The deploy step's cluster half. Our own model server does the champion/challenger canary
(it reads the registry's aliases), so KServe only has to run fresh pods when a new version is
registered: :meth:`InferenceServiceRollout.deploy` writes the version into an annotation of the
predictor's pod template (``spec.predictor.annotations``, which KServe copies onto the pods),
KServe updates the predictor Deployment, and Kubernetes rolls its pods.

Decisions worth knowing:

- **Idempotent.** The annotation is compared first; when it already names the version nothing
  is written (a retried step only waits again). The write is a JSON merge patch carrying the
  ``resourceVersion`` it was decided on, so a concurrent change answers 409 Conflict and the
  decision is taken again on a fresh read (a bounded number of times).
- **When is it rolled out?** Not when the InferenceService says ``Ready``: in KServe 0.20's
  Standard (RawDeployment) mode ``Ready`` stays True while old pods are still available, and
  ``status.observedGeneration`` is copied from the predictor Deployment's status
  (``PropagateRawStatus`` in ``pkg/apis/serving/v1beta1/inference_service_status.go``), so it is
  never the InferenceService's own ``metadata.generation``. The rollout is done when every
  predictor Deployment (label ``serving.kserve.io/inferenceservice=<name>``,
  ``component=predictor``) carries the annotation in its pod template, its controller has
  observed that generation, all its replicas are updated and available and no old replica is
  left (``kubectl rollout status``'s rule), *and* the InferenceService's ``Ready`` condition is
  True. A Deployment whose ``Progressing`` condition says ``ProgressDeadlineExceeded`` fails at
  once; anything else is waited for until the timeout, whose error names what was last seen
  (the Deployment's progress, the ``Ready`` condition's reason and message, KServe's
  ``modelStatus.lastFailureInfo``).
- **Standard mode only.** In Serverless mode every Knative revision has its own Deployment, so
  the rule above does not apply; such an InferenceService is refused with a clear error.
- **Permissions.** ``get`` and ``patch`` on ``inferenceservices.serving.kserve.io`` and ``list``
  on ``deployments.apps``, in the InferenceService's namespace; a 403 names them.
- **Credentials.** In a pod (``KUBERNETES_SERVICE_HOST`` set) the ServiceAccount's token and CA
  under ``/var/run/secrets/kubernetes.io/serviceaccount``, else the kubeconfig (``$KUBECONFIG``
  or ``~/.kube/config``), each loaded into a fresh client configuration (the ``kubernetes``
  client's process-wide default is never touched). Messages never include a token, and a
  server URL is shown without any user:password part.

The ``kubernetes`` client is imported only when a client is built or an API is called.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from kaizen.platform.kube_errors import status_fields, transport_cause

if TYPE_CHECKING:
    import kubernetes.client

logger = logging.getLogger("kaizen.platform.inference_service")

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
#: The predictor pod-template annotation that names the model version the pods serve.
VERSION_ANNOTATION = "serving.kaizen.io/model-version"
#: Labels KServe puts on the predictor Deployment (and its pods) of an InferenceService.
INFERENCE_SERVICE_LABEL = "serving.kserve.io/inferenceservice"
COMPONENT_LABEL = "component"
#: The annotation (and ``status.deploymentMode`` value) naming KServe's deployment mode.
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
SERVERLESS = "Serverless"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PERMISSIONS = "[get, patch] on inferenceservices.serving.kserve.io and [list] on deployments.apps"
#: Answers worth retrying: the API server or a proxy in front of it is busy or restarting.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 10.0

T = TypeVar("T")
Phase = Literal["pending", "rolling", "ready", "failed"]


class InferenceServiceError(RuntimeError):
    """Base class of every error this module raises on purpose."""


class ClusterConfigError(InferenceServiceError):
    """No usable cluster credentials (not in a pod, no kubeconfig, an unknown context)."""


class InferenceServiceNotFoundError(InferenceServiceError, LookupError):
    """The InferenceService (or its namespace, or KServe's CRD) does not exist."""


class InferenceServiceAccessError(InferenceServiceError, PermissionError):
    """The API server refused the credentials (401) or the permissions (403)."""


class InferenceServiceRejectedError(InferenceServiceError):
    """The API server refused the request as invalid (400, 415, 422) or the mode is unsupported."""


class InferenceServiceConflictError(InferenceServiceError):
    """Every patch attempt met a newer version of the InferenceService (409)."""


class InferenceServiceUnreachableError(InferenceServiceError):
    """The API server did not answer usefully within the bounded retries."""


class RolloutFailedError(InferenceServiceError):
    """Kubernetes gave up on the rollout (the Deployment's progress deadline passed)."""


class RolloutTimeoutError(InferenceServiceError, TimeoutError):
    """The rollout did not finish within the timeout; the message says what was last seen."""


@dataclass(frozen=True)
class RolloutState:
    """How far a rollout got, read from the InferenceService and its predictor Deployments.

    Attributes:
        phase: ``pending`` (KServe has not applied the version yet), ``rolling`` (pods are
            being replaced, or KServe has not reported Ready), ``ready`` or ``failed``.
        summary: one line on what was seen, for logs and errors.
        reason: the reason of the condition that explains a wait or a failure, if any.
        message: that condition's message.
        model_failure: KServe's ``modelStatus.lastFailureInfo`` while the rollout is not done
            (``ModelLoadFailed: ...``), empty otherwise.
    """

    phase: Phase
    summary: str
    reason: str = ""
    message: str = ""
    model_failure: str = ""

    def describe(self) -> str:
        """The summary with the reason, message and model failure, as errors show it."""
        details = [": ".join(part for part in (self.reason, self.message) if part)]
        if self.model_failure:
            details.append(f"KServe's last model failure: {self.model_failure}")
        detail = "; ".join(part for part in details if part)
        return f"{self.summary} ({detail})" if detail else self.summary


@dataclass(frozen=True)
class RolloutResult:
    """What :meth:`InferenceServiceRollout.deploy` did.

    Attributes:
        namespace: the InferenceService's namespace.
        name: its name.
        version: the model version its predictor pods now carry.
        changed: True when this call patched it, False when it already named the version.
        generation: the InferenceService's ``metadata.generation`` after the patch.
        waited_s: seconds spent waiting for the rollout.
        summary: the final state, e.g. ``1/1 replicas of fraud-detector-predictor updated``.
    """

    namespace: str
    name: str
    version: str
    changed: bool
    generation: int
    waited_s: float
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Reading KServe and Deployment objects (no API calls)
# --------------------------------------------------------------------------------------------


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The ``status.conditions`` entry of ``type_``, or None."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return None


def predictor_version(isvc: Mapping[str, Any]) -> str | None:
    """The version annotation in the InferenceService's predictor spec, or None."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    value = (predictor.get("annotations") or {}).get(VERSION_ANNOTATION)
    return None if value is None else str(value)


def deployment_mode(isvc: Mapping[str, Any]) -> str | None:
    """KServe's deployment mode: the status KServe wrote, else the annotation asking for one."""
    status_mode = (isvc.get("status") or {}).get("deploymentMode")
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    mode = status_mode or annotations.get(DEPLOYMENT_MODE_ANNOTATION)
    return str(mode) if mode else None


def rollout_state(
    isvc: Mapping[str, Any], deployments: Sequence[Mapping[str, Any]], version: str
) -> RolloutState:
    """How far the rollout of ``version`` got.

    Args:
        isvc: the InferenceService as the API server returns it.
        deployments: its predictor Deployments (see :data:`INFERENCE_SERVICE_LABEL`).
        version: the value of :data:`VERSION_ANNOTATION` being rolled out.

    Returns:
        The state; ``ready`` only when every Deployment has finished rolling out pods that
        carry ``version`` and KServe reports the InferenceService Ready.
    """
    failure = _failure_info(isvc)
    if not deployments:
        return RolloutState(
            "pending",
            "waiting for KServe to create the predictor Deployment",
            model_failure=failure,
        )
    for deployment in sorted(deployments, key=_name):
        state = _deployment_state(deployment, version)
        if state.phase != "ready":
            return replace(state, model_failure=failure)
    ready = condition(isvc, "Ready")
    names = ", ".join(_name(d) for d in sorted(deployments, key=_name))
    if ready is None or str(ready.get("status")) != "True":
        status = "not reported" if ready is None else str(ready.get("status"))
        return RolloutState(
            "rolling",
            f"pods of {names} rolled out; waiting for KServe to report the InferenceService "
            f"Ready (Ready={status})",
            str((ready or {}).get("reason") or ""),
            str((ready or {}).get("message") or ""),
            failure,
        )
    replicas = sum(_desired_replicas(d) for d in deployments)
    return RolloutState("ready", f"{replicas} replica(s) of {names} serve version {version}")


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", "?"))


def _desired_replicas(deployment: Mapping[str, Any]) -> int:
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _deployment_state(deployment: Mapping[str, Any], version: str) -> RolloutState:
    """``kubectl rollout status``'s rule for one Deployment, plus our annotation."""
    name = _name(deployment)
    template = ((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}
    carried = (template.get("annotations") or {}).get(VERSION_ANNOTATION)
    if carried != version:
        return RolloutState(
            "pending",
            f"KServe has not yet applied version {version} to Deployment {name} "
            f"(its pods carry {carried or 'no version'})",
        )
    status = deployment.get("status") or {}
    progressing = condition(deployment, "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutState(
            "failed",
            f"Deployment {name} exceeded its progress deadline",
            "ProgressDeadlineExceeded",
            str(progressing.get("message", "")),
        )
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return RolloutState(
            "rolling", f"waiting for the Deployment controller to observe {name} ({generation})"
        )
    desired = _desired_replicas(deployment)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    failure = condition(deployment, "ReplicaFailure") or {}
    reason, message = "", ""
    if str(failure.get("status")) == "True":
        reason, message = str(failure.get("reason", "")), str(failure.get("message", ""))
    elif progressing:
        reason, message = str(progressing.get("reason", "")), str(progressing.get("message", ""))
    if updated < desired:
        return RolloutState(
            "rolling", f"{updated} of {desired} replicas of {name} updated", reason, message
        )
    if total > updated:
        return RolloutState(
            "rolling",
            f"{total - updated} old replica(s) of {name} pending termination",
            reason,
            message,
        )
    if available < updated:
        return RolloutState(
            "rolling",
            f"{available} of {updated} updated replicas of {name} available",
            reason,
            message,
        )
    return RolloutState("ready", f"{updated}/{desired} replicas of {name} updated and available")


def _failure_info(isvc: Mapping[str, Any]) -> str:
    """KServe's ``modelStatus.lastFailureInfo`` as ``reason: message``, or an empty string."""
    info = ((isvc.get("status") or {}).get("modelStatus") or {}).get("lastFailureInfo") or {}
    return ": ".join(str(info[key]) for key in ("reason", "message") if info.get(key))


# --------------------------------------------------------------------------------------------
# Credentials
# --------------------------------------------------------------------------------------------


def cluster_api_client(
    *,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    kubeconfig: str | os.PathLike[str] | None = None,
    context: str | None = None,
) -> kubernetes.client.ApiClient:
    """An API client with the pod's ServiceAccount inside a cluster, else the kubeconfig's.

    Args:
        service_account_dir: where the pod's ``token`` and ``ca.crt`` are mounted.
        kubeconfig: kubeconfig path; None for ``$KUBECONFIG`` or ``~/.kube/config``.
        context: kubeconfig context; None for the current one.

    Raises:
        ClusterConfigError: the token, the CA or the kubeconfig cannot be used.
    """
    import kubernetes.client
    import kubernetes.config
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    configuration = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        folder = Path(service_account_dir)
        try:
            InClusterConfigLoader(
                token_filename=str(folder / "token"), cert_filename=str(folder / "ca.crt")
            ).load_and_set(configuration)
        except ConfigException as err:
            raise ClusterConfigError(
                f"cannot use the pod's service account in {folder}: {err} (is "
                "automountServiceAccountToken off for this pod?)"
            ) from None
        return kubernetes.client.ApiClient(configuration)
    path = str(kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config")
    try:
        kubernetes.config.load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError) as err:
        raise ClusterConfigError(
            f"not inside a pod (KUBERNETES_SERVICE_HOST is not set) and cannot load kubeconfig "
            f"{path!r}{f' context {context!r}' if context else ''}: {err}"
        ) from None
    return kubernetes.client.ApiClient(configuration)


# --------------------------------------------------------------------------------------------
# The rollout
# --------------------------------------------------------------------------------------------


class InferenceServiceRollout:
    """Patches one InferenceService's predictor to a model version and waits for its pods.

    Args:
        api_client: a configured ``kubernetes.client.ApiClient`` (:func:`cluster_api_client`).
        namespace: the InferenceService's namespace.
        name: its name.
        attempts: tries per API call on connection errors, 429 and 5xx answers, and patch
            attempts on 409 Conflict (>= 1).
        backoff_s: wait before the second try; doubled each time, capped at 10 s.
        request_timeout_s: per-request connect/read timeout.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        namespace: str,
        name: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        request_timeout_s: float = 30.0,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if not namespace or not name:
            raise ValueError("the InferenceService needs a namespace and a name")
        import kubernetes.client

        self.api_client = api_client
        self.namespace = namespace
        self.name = name
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.request_timeout_s = request_timeout_s
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._apps = kubernetes.client.AppsV1Api(api_client)

    @property
    def where(self) -> str:
        """``InferenceService <namespace>/<name>``, as messages name it."""
        return f"InferenceService {self.namespace}/{self.name}"

    def get(self) -> dict[str, Any]:
        """The InferenceService as the API server has it.

        Raises:
            InferenceServiceNotFoundError: it does not exist.
            InferenceServiceError: any other refusal (see the class hierarchy).
        """
        return dict(
            self._call(
                "get",
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
            )
        )

    def predictor_deployments(self) -> list[dict[str, Any]]:
        """The predictor Deployments KServe made for it, as JSON-shaped dicts."""
        selector = f"{INFERENCE_SERVICE_LABEL}={self.name},{COMPONENT_LABEL}=predictor"
        # The raw JSON, not the client's models: they refuse objects with fields they do not
        # know the rules of, and a dict is what rollout_state reads.
        answer = self._call(
            "list predictor deployments of",
            self._apps.list_namespaced_deployment,
            self.namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items = json.loads(answer.data).get("items") or []
        return [dict(item) for item in items]

    def set_version(self, version: str) -> tuple[bool, dict[str, Any]]:
        """Make the predictor's pod template carry ``version``; nothing is written if it does.

        Returns:
            ``(changed, isvc)``: whether a patch was sent, and the InferenceService after it.

        Raises:
            InferenceServiceConflictError: a 409 on every attempt.
            InferenceServiceRejectedError: Serverless mode, or the API server refused the patch.
            InferenceServiceError: any other refusal.
        """
        for attempt in range(1, self.attempts + 1):
            isvc = self.get()
            mode = deployment_mode(isvc)
            if mode == SERVERLESS:
                raise InferenceServiceRejectedError(
                    f"{self.where} runs in KServe's Serverless mode; the deploy step rolls "
                    "Standard (RawDeployment) mode InferenceServices only, where one Deployment "
                    f"holds the predictor pods (set the annotation {DEPLOYMENT_MODE_ANNOTATION}: "
                    "Standard)"
                )
            if predictor_version(isvc) == version:
                logger.info("%s already serves model version %s", self.where, version)
                return False, isvc
            resource_version = str((isvc.get("metadata") or {}).get("resourceVersion", ""))
            body = {
                "metadata": {"resourceVersion": resource_version},
                "spec": {"predictor": {"annotations": {VERSION_ANNOTATION: version}}},
            }
            try:
                patched = self._call(
                    "patch",
                    self._custom.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    self.name,
                    body,
                    conflicts_ok=True,
                )
            except _Conflict as conflict:
                logger.info(
                    "%s changed since it was read (%s); reading it again (attempt %d of %d)",
                    self.where,
                    conflict.message,
                    attempt,
                    self.attempts,
                )
                continue
            generation = int((patched.get("metadata") or {}).get("generation") or 0)
            logger.info(
                "%s: predictor pods annotated %s=%s (generation %d)",
                self.where,
                VERSION_ANNOTATION,
                version,
                generation,
            )
            return True, dict(patched)
        raise InferenceServiceConflictError(
            f"{self.where} kept changing while version {version} was being set: {self.attempts} "
            "patches met 409 Conflict. Something else is writing it; look with `kubectl -n "
            f"{self.namespace} get inferenceservice {self.name} -o yaml`"
        )

    def state(self, version: str) -> RolloutState:
        """One look at how far the rollout of ``version`` got."""
        return rollout_state(self.get(), self.predictor_deployments(), version)

    def wait(
        self,
        version: str,
        timeout_s: float,
        poll_s: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> RolloutState:
        """Poll until the rollout of ``version`` is done, failed or out of time.

        Raises:
            RolloutFailedError: a Deployment exceeded its progress deadline.
            RolloutTimeoutError: not done within ``timeout_s``, naming what was last seen.
        """
        deadline = clock() + timeout_s
        last: RolloutState | None = None
        while True:
            state = self.state(version)
            if last is None or state.describe() != last.describe():
                logger.info("%s: %s", self.where, state.describe())
            last = state
            if state.phase == "ready":
                return state
            if state.phase == "failed":
                raise RolloutFailedError(
                    f"{self.where} failed to roll out model version {version}: "
                    f"{state.describe()}. {self._look()}"
                )
            if clock() >= deadline:
                raise RolloutTimeoutError(
                    f"{self.where} did not roll out model version {version} within "
                    f"{timeout_s:g}s: {state.describe()}. {self._look()}"
                )
            time.sleep(max(0.0, min(poll_s, deadline - clock())))

    def deploy(self, version: int | str, *, timeout_s: float, poll_s: float = 2.0) -> RolloutResult:
        """Set the version on the predictor's pod template and wait for the pods to serve it.

        Args:
            version: the registry version.
            timeout_s: how long to wait for the rollout.
            poll_s: time between looks at its progress.

        Returns:
            What was done and the final state.

        Raises:
            InferenceServiceError: any of the errors of :meth:`set_version` and :meth:`wait`.
        """
        text = str(version)
        changed, isvc = self.set_version(text)
        started = time.monotonic()
        final = self.wait(text, timeout_s, poll_s)
        return RolloutResult(
            namespace=self.namespace,
            name=self.name,
            version=text,
            changed=changed,
            generation=int((isvc.get("metadata") or {}).get("generation") or 0),
            waited_s=round(time.monotonic() - started, 3),
            summary=final.summary,
        )

    def close(self) -> None:
        """Release the API client's connection pool."""
        self.api_client.close()

    def __enter__(self) -> InferenceServiceRollout:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _look(self) -> str:
        return (
            f"Look with `kubectl -n {self.namespace} describe inferenceservice {self.name}` and "
            f"`kubectl -n {self.namespace} get pods -l {INFERENCE_SERVICE_LABEL}={self.name}`"
        )

    def _call(
        self,
        verb: str,
        method: Callable[..., T],
        *args: Any,
        conflicts_ok: bool = False,
        **kwargs: Any,
    ) -> T:
        """Call the API with bounded retries on transport errors, 429 and 5xx."""
        import urllib3.exceptions
        from kubernetes.client.exceptions import ApiException

        for attempt in range(1, self.attempts + 1):
            try:
                return method(*args, _request_timeout=self.request_timeout_s, **kwargs)
            except ApiException as err:
                code, reason, message = status_fields(err)
                if code == 409 and conflicts_ok:
                    raise _Conflict(message) from None
                if code not in RETRYABLE_STATUSES or attempt == self.attempts:
                    raise self._api_error(verb, code, reason, message) from None
                cause = f"{code} {reason}"
            except urllib3.exceptions.HTTPError as err:
                if attempt == self.attempts:
                    raise InferenceServiceUnreachableError(
                        f"Kubernetes API at {self._host()} unreachable: could not {verb} "
                        f"{self.where} after {self.attempts} attempts ({transport_cause(err)})"
                    ) from None
                cause = transport_cause(err)
            delay = min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
            logger.warning(
                "%s %s: %s; retry %d of %d in %.2fs",
                verb,
                self.where,
                cause,
                attempt,
                self.attempts - 1,
                delay,
            )
            time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _api_error(self, verb: str, code: int, reason: str, message: str) -> InferenceServiceError:
        server = f"({code} {reason}: {message})"
        if code == 401:
            return InferenceServiceAccessError(
                f"Kubernetes API at {self._host()} rejected the credentials on {verb} "
                f"{self.where} {server}: the token is missing, expired or invalid"
            )
        if code == 403:
            return InferenceServiceAccessError(
                f"not allowed to {verb} {self.where} {server}. The identity in use needs an RBAC "
                f"Role in namespace {self.namespace!r} granting {PERMISSIONS}; check with "
                f"`kubectl auth can-i patch inferenceservices.serving.kserve.io -n "
                f"{self.namespace}`"
            )
        if code == 404:
            return InferenceServiceNotFoundError(
                f"{self.where} not found on {verb} {server}. Create it first (the manifests' "
                "InferenceService), or point KAIZEN_DEPLOY_NAMESPACE and "
                "KAIZEN_DEPLOY_INFERENCE_SERVICE at the one that serves the model"
            )
        if code in (400, 415, 422):
            return InferenceServiceRejectedError(
                f"Kubernetes API refused to {verb} {self.where} {server}"
            )
        if code in RETRYABLE_STATUSES:
            return InferenceServiceUnreachableError(
                f"Kubernetes API at {self._host()} kept failing: could not {verb} {self.where} "
                f"after {self.attempts} attempts {server}"
            )
        return InferenceServiceError(f"could not {verb} {self.where} {server}")

    def _host(self) -> str:
        host = str(self.api_client.configuration.host)
        scheme, sep, rest = host.partition("://")
        return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else host.rpartition("@")[2]


class _Conflict(Exception):
    """A 409 answer to a patch, handled by :meth:`InferenceServiceRollout.set_version`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
