"""Cluster backend of the tuning step: the Experiment YAML created as a Katib CR.

The launcher takes the same Experiment body the local executor runs (a plain dict in
Kubernetes camelCase form), applies the per-run overrides with
:func:`kaizen.tuning.spec.apply_overrides`, creates it as a ``kubeflow.org/v1beta1``
Experiment through the official ``kubernetes`` client's ``CustomObjectsApi``, polls its
status until Katib marks it Succeeded or Failed, and returns the same
:class:`~kaizen.tuning.result.ExperimentResult` the local executor returns.

Decisions worth knowing:

- **Re-running is safe.** Every Experiment we create carries the annotation
  :data:`SPEC_DIGEST_ANNOTATION`, the SHA-256 of its ``spec`` as we sent it. When the
  create call answers 409 AlreadyExists, the launcher reads the existing Experiment and
  *adopts* it (waits for it instead of creating a new one) only when that digest matches,
  i.e. it is the very same experiment, for example after a create whose answer was lost.
  A digest is used rather than comparing specs because Katib's webhook fills in defaults
  on the server. Anything else with the same name is refused with a
  :class:`KatibConflictError`; nothing is overwritten.
- **A terminating Experiment is never adopted.** Deleting an Experiment on a real API server
  is not instant: it gets a ``metadata.deletionTimestamp`` and stays, with its finalizers
  (``foregroundDeletion`` while its Trials go under foreground deletion, Katib's
  ``update-prometheus-metrics`` until Katib's controller has seen the delete), and creating
  one with its name answers 409 meanwhile. A retried tune step whose earlier attempt
  deleted its Experiment therefore waits (polling, up to ``deletion_timeout_s``) until that
  Experiment is gone, then creates it anew; on timeout :class:`KatibTerminatingError` names
  the Experiment and the finalizers still holding it.
- **Errors name the cause.** 401/403 become :class:`KatibAccessError` naming the
  namespace and the RBAC permission that is missing. An admission-webhook denial becomes
  :class:`KatibRejectedError` with the webhook's message, whatever its code: Katib's own
  validator answers 400 (``admission webhook "validator.experiment.katib.kubeflow.org"
  denied the request: ...``), policy webhooks such as Gatekeeper's answer 403;
  connection failures, 429 and 5xx answers are retried a bounded number of times with
  exponential backoff, then raise :class:`KatibUnreachableError`.
- **Cleanup.** :meth:`KatibLauncher.run` deletes the Experiment (propagation Foreground,
  so its Trials and their Jobs go too) after it finished, failed, timed out or was
  interrupted, unless ``keep=True``. :meth:`KatibLauncher.wait` on its own never deletes:
  on timeout the Experiment is left running and the error says how to look at it.
- **No secrets in output.** Messages never include request headers; any bearer token or
  password of the client configuration that could still slip into a message, and any
  credential in a URI (the API server address included), is replaced by ``***``
  (:func:`kaizen.platform.redaction.redact_text`).
- **No global state.** Constructors load kubeconfig / in-cluster credentials into a fresh
  ``kubernetes.client.Configuration``; the client's process-wide default is never touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, Unpack, cast

import kubernetes.client
import kubernetes.config
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from kaizen.platform.kube_errors import status_fields, transport_cause
from kaizen.platform.redaction import redact_text, redact_uri
from kaizen.tuning.result import (
    ExperimentResult,
    ExperimentStatus,
    GoalType,
    MetricStrategy,
    TrialRecord,
    TrialStatus,
    default_metric_strategies,
)
from kaizen.tuning.spec import ExperimentOverrides, apply_overrides

logger = logging.getLogger("kaizen.tuning.katib")

GROUP = "kubeflow.org"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
EXPERIMENTS = "experiments"
TRIALS = "trials"
#: Label Katib puts on every Trial of an Experiment.
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"
#: Annotation holding the SHA-256 of the spec we created; used to adopt our own Experiment on 409.
SPEC_DIGEST_ANNOTATION = "kaizen-mlops/spec-sha256"
#: Katib's condition reason when the objective goal ended the Experiment.
GOAL_REACHED_REASON = "ExperimentGoalReached"
#: The finalizer the API server adds while a foreground deletion removes the dependents.
FOREGROUND_DELETION_FINALIZER = "foregroundDeletion"
#: The finalizer Katib's experiment controller puts on every Experiment (removed on delete).
KATIB_EXPERIMENT_FINALIZER = "update-prometheus-metrics"
#: Katib writes this string for a metric that was never reported.
UNAVAILABLE_METRIC = "unavailable"
DEFAULT_NAMESPACE = "kubeflow"
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

#: Answers worth retrying: the API server or a proxy in front of it is busy or restarting.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_BACKOFF_S = 10.0

T = TypeVar("T")


class KatibError(RuntimeError):
    """Base class of every error the launcher raises on purpose."""


class KatibConfigError(KatibError):
    """No usable cluster configuration (kubeconfig missing, not inside a pod, ...)."""


class KatibConflictError(KatibError):
    """An Experiment with the same name but a different spec already exists."""


class KatibAccessError(KatibError):
    """The API server refused our credentials (401) or our permissions (403)."""


class KatibRejectedError(KatibError):
    """The API server or Katib's admission webhook refused the Experiment as invalid."""


class KatibNotFoundError(KatibError):
    """The Experiment, the namespace or the Katib CRDs do not exist."""


class KatibUnreachableError(KatibError):
    """The API server did not answer usefully within the bounded retries."""


class KatibTerminatingError(KatibError, TimeoutError):
    """An Experiment of the same name was still being deleted when the wait for it ran out.

    Attributes:
        name: the Experiment's name.
        namespace: its namespace.
        timeout_s: how long we waited for it to go.
        finalizers: the finalizers still holding it when we gave up.
    """

    def __init__(
        self, *, name: str, namespace: str, timeout_s: float, finalizers: Sequence[str]
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.finalizers = list(finalizers)
        held_by = ", ".join(self.finalizers) or "none (the API server should remove it soon)"
        hints = []
        if FOREGROUND_DELETION_FINALIZER in self.finalizers:
            hints.append(
                f"'{FOREGROUND_DELETION_FINALIZER}' stays until its Trials are gone: `kubectl "
                f"-n {namespace} get trials -l {EXPERIMENT_LABEL}={name}`"
            )
        if KATIB_EXPERIMENT_FINALIZER in self.finalizers:
            hints.append(
                f"'{KATIB_EXPERIMENT_FINALIZER}' is removed by Katib's controller: check that "
                "katib-controller is running (`kubectl -n kubeflow get deploy katib-controller`)"
            )
        super().__init__(
            f"Katib Experiment {namespace}/{name} is still being deleted after "
            f"{timeout_s:g}s (finalizers: {held_by}); a new Experiment with that name cannot "
            f"be created until it is gone. {'; '.join(hints) + '. ' if hints else ''}"
            f"Look at it with `kubectl -n {namespace} get experiment {name} -o yaml`, then run "
            "the step again"
        )


class KatibTimeoutError(KatibError, TimeoutError):
    """The Experiment did not finish in time.

    Attributes:
        name: the Experiment's name.
        namespace: its namespace.
        timeout_s: how long we waited.
        progress: how far it got (:func:`progress_summary`).
        deleted: True when :meth:`KatibLauncher.run` deleted it afterwards (``keep=False``);
            False when it is still on the cluster.
    """

    def __init__(
        self, *, name: str, namespace: str, timeout_s: float, progress: str, deleted: bool
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.timeout_s = timeout_s
        self.progress = progress
        self.deleted = deleted
        where = f"Katib Experiment {namespace}/{name}"
        if deleted:
            after = "It was deleted because keep=False."
        else:
            after = (
                f"It is left running on the cluster; look at it with `kubectl -n {namespace} "
                f"get experiment {name}` and `kubectl -n {namespace} get trials -l "
                f"{EXPERIMENT_LABEL}={name}`, delete it with `kubectl -n {namespace} delete "
                f"experiment {name}`."
            )
        super().__init__(f"{where} did not finish within {timeout_s:g}s ({progress}). {after}")


# --------------------------------------------------------------------------------------------
# Pure parsing of Katib objects (no API calls): shared by wait() and usable on saved objects.
# --------------------------------------------------------------------------------------------


def spec_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 of the Experiment's ``spec`` in canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(body.get("spec") or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def experiment_state(experiment: Mapping[str, Any]) -> tuple[str, str, str]:
    """The state Katib's conditions say an Experiment is in.

    Args:
        experiment: an Experiment object as returned by the API server.

    Returns:
        ``(state, reason, message)``: state is ``Succeeded`` or ``Failed`` once finished,
        else the type of the newest true condition (``Created``, ``Running``, ``Restarting``)
        or ``Pending`` before Katib wrote any.
    """
    conditions = [
        c for c in (experiment.get("status") or {}).get("conditions") or [] if _is_true(c)
    ]
    for terminal in ("Failed", "Succeeded"):
        for condition in conditions:
            if condition.get("type") == terminal:
                return terminal, str(condition.get("reason", "")), str(condition.get("message", ""))
    if conditions:
        newest = conditions[-1]
        return (
            str(newest.get("type", "Unknown")),
            str(newest.get("reason", "")),
            str(newest.get("message", "")),
        )
    return "Pending", "", ""


def optimal_trial_from_status(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """``status.currentOptimalTrial`` normalized to the shape of ``ExperimentResult.optimal_trial``.

    Returns:
        The dict with string values, or None while Katib has no best trial (it writes an empty
        ``bestTrialName`` until a trial reports the objective).
    """
    current = status.get("currentOptimalTrial") or {}
    best_name = current.get("bestTrialName")
    if not best_name:
        return None
    return {
        "bestTrialName": str(best_name),
        "parameterAssignments": [
            {"name": str(item.get("name")), "value": str(item.get("value"))}
            for item in current.get("parameterAssignments") or []
        ],
        "observation": {
            "metrics": [
                {
                    "name": str(metric.get("name")),
                    "latest": str(metric.get("latest", UNAVAILABLE_METRIC)),
                    "max": str(metric.get("max", UNAVAILABLE_METRIC)),
                    "min": str(metric.get("min", UNAVAILABLE_METRIC)),
                }
                for metric in (current.get("observation") or {}).get("metrics") or []
            ]
        },
    }


def objective_value(
    optimal_trial: Mapping[str, Any] | None, objective: Mapping[str, Any]
) -> float | None:
    """The optimal trial's objective value as Katib compares it (its metric strategy).

    Args:
        optimal_trial: the normalized ``currentOptimalTrial`` or None.
        objective: the Experiment's ``spec.objective``.

    Returns:
        The value, or None when the objective metric was not reported or is not a number.
    """
    if not optimal_trial:
        return None
    metric_name = objective.get("objectiveMetricName")
    goal_type = cast(GoalType, objective.get("type", "maximize"))
    strategy: MetricStrategy = default_metric_strategies(str(metric_name), goal_type)[
        str(metric_name)
    ]
    for item in objective.get("metricStrategies") or []:
        if item.get("name") == metric_name and item.get("value") in ("min", "max", "latest"):
            strategy = item["value"]
    for metric in optimal_trial["observation"]["metrics"]:
        if metric["name"] != metric_name:
            continue
        # Katib falls back to latest when min/max were never computed.
        for raw in (metric.get(strategy), metric.get("latest")):
            value = _to_float(raw)
            if value is not None:
                return value
    return None


def goal_reached(
    reason: str, optimal_trial: Mapping[str, Any] | None, objective: Mapping[str, Any]
) -> bool:
    """True when Katib says the goal ended the Experiment, or the best value meets the goal."""
    if reason == GOAL_REACHED_REASON:
        return True
    goal = _to_float(objective.get("goal"))
    best = objective_value(optimal_trial, objective)
    if goal is None or best is None:
        return False
    return best <= goal if objective.get("type") == "minimize" else best >= goal


def trial_record_from_cr(trial: Mapping[str, Any]) -> TrialRecord:
    """A Katib Trial CR as a :class:`TrialRecord`.

    Katib keeps intermediate reports in its database, not in the CR, so ``intermediate`` is
    empty and ``metrics`` holds each metric's latest numeric value.
    """
    metadata = trial.get("metadata") or {}
    status = trial.get("status") or {}
    parameters = {
        str(item.get("name")): str(item.get("value"))
        for item in (trial.get("spec") or {}).get("parameterAssignments") or []
    }
    metrics: dict[str, float] = {}
    for metric in (status.get("observation") or {}).get("metrics") or []:
        value = _to_float(metric.get("latest"))
        if value is not None:
            metrics[str(metric.get("name"))] = value
    trial_status, message = _trial_status(status.get("conditions") or [])
    started_at = status.get("startTime")
    finished_at = status.get("completionTime") if trial_status != "Running" else None
    return TrialRecord(
        name=str(metadata.get("name", "")),
        parameters=parameters,
        metrics=metrics,
        status=trial_status,
        started_at=started_at,
        finished_at=finished_at,
        duration_s=_duration_s(started_at, finished_at),
        message=message,
    )


def trials_from_status_lists(
    status: Mapping[str, Any], optimal_trial: Mapping[str, Any] | None
) -> list[TrialRecord]:
    """Trial records from the name lists in Experiment status, when Trials cannot be listed.

    Only the optimal trial's parameters and metrics are known this way; the others get names
    and statuses only.
    """
    by_list: Sequence[tuple[str, TrialStatus]] = (
        ("succeededTrialList", "Succeeded"),
        ("earlyStoppedTrialList", "EarlyStopped"),
        ("failedTrialList", "Failed"),
        ("killedTrialList", "Killed"),
        ("runningTrialList", "Running"),
        ("pendingTrialList", "Running"),
    )
    best_name = optimal_trial["bestTrialName"] if optimal_trial else None
    records = []
    for key, trial_status in by_list:
        for name in status.get(key) or []:
            parameters: dict[str, str] = {}
            metrics: dict[str, float] = {}
            if optimal_trial and name == best_name:
                parameters = {
                    item["name"]: item["value"] for item in optimal_trial["parameterAssignments"]
                }
                for metric in optimal_trial["observation"]["metrics"]:
                    value = _to_float(metric["latest"])
                    if value is not None:
                        metrics[metric["name"]] = value
            records.append(
                TrialRecord(
                    name=str(name), parameters=parameters, metrics=metrics, status=trial_status
                )
            )
    return records


def experiment_result_from_cr(
    experiment: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]] | None = None,
    *,
    allow_running: bool = False,
) -> ExperimentResult:
    """An Experiment CR (and optionally its Trial CRs) as an :class:`ExperimentResult`.

    Args:
        experiment: the Experiment object from the API server.
        trials: its Trial objects; when None, records are built from the status name lists.
        allow_running: return an unfinished Experiment as a ``Running`` snapshot instead of
            raising.

    Returns:
        The result; ``reason`` is Katib's ``reason: message`` of the terminal (or newest)
        condition.

    Raises:
        ValueError: the Experiment has not finished and ``allow_running`` is False.
    """
    name = str((experiment.get("metadata") or {}).get("name", ""))
    state, reason, message = experiment_state(experiment)
    if state not in ("Succeeded", "Failed"):
        if not allow_running:
            raise ValueError(f"experiment {name!r} has not finished (state {state!r})")
        state = "Running"
    status = experiment.get("status") or {}
    objective = (experiment.get("spec") or {}).get("objective") or {}
    optimal = optimal_trial_from_status(status)
    if trials is None:
        records = trials_from_status_lists(status, optimal)
    else:
        ordered = sorted(
            trials,
            key=lambda t: (
                str((t.get("metadata") or {}).get("creationTimestamp", "")),
                str((t.get("metadata") or {}).get("name", "")),
            ),
        )
        records = [trial_record_from_cr(trial) for trial in ordered]
    return ExperimentResult(
        name=name,
        status=cast(ExperimentStatus, state),
        reason=f"{reason}: {message}" if message else reason,
        trials=records,
        optimal_trial=optimal,
        goal_reached=goal_reached(reason, optimal, objective),
    )


def progress_summary(experiment: Mapping[str, Any]) -> str:
    """One line on how far an Experiment got, e.g. ``Running, 3/6 trials done (2 running)``."""
    status = experiment.get("status") or {}
    state, reason, _ = experiment_state(experiment)
    done = sum(
        int(status.get(key) or 0)
        for key in ("trialsSucceeded", "trialsFailed", "trialsKilled", "trialsEarlyStopped")
    )
    budget = (experiment.get("spec") or {}).get("maxTrialCount", "?")
    running = int(status.get("trialsRunning") or 0) + int(status.get("trialsPending") or 0)
    text = f"{state}{f' ({reason})' if reason else ''}, {done}/{budget} trials done"
    if running:
        text += f" ({running} running or pending)"
    optimal = optimal_trial_from_status(status)
    if optimal:
        text += f", best so far {optimal['bestTrialName']}"
    return text


# --------------------------------------------------------------------------------------------
# The launcher
# --------------------------------------------------------------------------------------------


class KatibLauncher:
    """Creates, watches and deletes Katib Experiments through the Kubernetes API.

    Args:
        api_client: a configured ``kubernetes.client.ApiClient``. When None, in-cluster
            credentials are used inside a pod (``KUBERNETES_SERVICE_HOST`` set), else the
            kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``).
        namespace: where Experiments are created.
        attempts: tries per API call on connection errors, 429 and 5xx answers (>= 1).
        backoff_s: wait before the second try; doubled each time, capped at 10 s.
        request_timeout_s: per-request connect/read timeout.
        deletion_timeout_s: how long :meth:`launch` waits for an Experiment of the same name
            that is being deleted to disappear before creating it anew.
        deletion_poll_s: time between checks while waiting for that.
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        attempts: int = 5,
        backoff_s: float = 1.0,
        request_timeout_s: float = 30.0,
        deletion_timeout_s: float = 600.0,
        deletion_poll_s: float = 2.0,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if not namespace:
            raise ValueError("namespace must not be empty")
        if deletion_timeout_s < 0 or deletion_poll_s <= 0:
            raise ValueError(
                "deletion_timeout_s must be >= 0 and deletion_poll_s > 0, got "
                f"{deletion_timeout_s} and {deletion_poll_s}"
            )
        self.api_client = api_client if api_client is not None else _default_api_client()
        self.namespace = namespace
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.request_timeout_s = request_timeout_s
        self.deletion_timeout_s = deletion_timeout_s
        self.deletion_poll_s = deletion_poll_s
        self._api = kubernetes.client.CustomObjectsApi(self.api_client)

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(
        cls,
        context: str | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        namespace: str | None = None,
        **options: Any,
    ) -> KatibLauncher:
        """A launcher using a kubeconfig context, loaded into a fresh Configuration.

        Args:
            context: kubeconfig context; None for the current context.
            config_file: kubeconfig path(s); None for ``$KUBECONFIG`` or ``~/.kube/config``.
            namespace: target namespace; None for the context's namespace, else ``kubeflow``.
            **options: ``attempts``, ``backoff_s``, ``request_timeout_s``,
                ``deletion_timeout_s``, ``deletion_poll_s`` of the launcher.

        Raises:
            KatibConfigError: no kubeconfig, or the context does not exist.
        """
        path = str(config_file or os.environ.get("KUBECONFIG") or "~/.kube/config")
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_kube_config(
                config_file=path,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            contexts, active = kubernetes.config.list_kube_config_contexts(config_file=path)
        except (ConfigException, OSError) as err:
            raise KatibConfigError(
                f"cannot load kubeconfig {path!r}"
                f"{f' context {context!r}' if context else ''}: {err}"
            ) from None
        if namespace is None:
            chosen = next((c for c in contexts if c.get("name") == context), None) or active
            namespace = (chosen or {}).get("context", {}).get("namespace") or DEFAULT_NAMESPACE
        return cls(kubernetes.client.ApiClient(configuration), namespace, **options)

    @classmethod
    def in_cluster(cls, *, namespace: str | None = None, **options: Any) -> KatibLauncher:
        """A launcher using the pod's service account, loaded into a fresh Configuration.

        Args:
            namespace: target namespace; None for the pod's own namespace, else ``kubeflow``.
            **options: ``attempts``, ``backoff_s``, ``request_timeout_s``,
                ``deletion_timeout_s``, ``deletion_poll_s`` of the launcher.

        Raises:
            KatibConfigError: not running inside a Kubernetes pod with a service account.
        """
        configuration = kubernetes.client.Configuration()
        try:
            kubernetes.config.load_incluster_config(client_configuration=configuration)
        except ConfigException as err:
            raise KatibConfigError(
                "cannot use in-cluster credentials: not running inside a Kubernetes pod with "
                f"a service account token ({err}); use KatibLauncher.from_kubeconfig() outside "
                "the cluster"
            ) from None
        if namespace is None:
            try:
                namespace = SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
            except OSError:
                namespace = DEFAULT_NAMESPACE
        return cls(kubernetes.client.ApiClient(configuration), namespace, **options)

    def close(self) -> None:
        """Release the API client's connection pool."""
        self.api_client.close()

    def __enter__(self) -> KatibLauncher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------

    def launch(self, body: Mapping[str, Any], **overrides: Unpack[ExperimentOverrides]) -> str:
        """Create the Experiment on the cluster.

        Args:
            body: the Experiment (a validated CR body, e.g. from ``spec.load_experiment``).
            **overrides: per-run overrides (:class:`kaizen.tuning.spec.ExperimentOverrides`;
                ``name_suffix`` keeps runs from colliding); the namespace is the launcher's.

        When an Experiment with the same name exists, it is adopted (waited for instead of
        created) only if it carries our spec digest and is not being deleted; one that is
        being deleted is waited out (``deletion_timeout_s``), then the Experiment is created
        anew.

        Returns:
            The Experiment's name (with the suffix).

        Raises:
            kaizen.tuning.spec.ExperimentSpecError: the body or an override is invalid.
            KatibConflictError: another Experiment with that name exists (ours is adopted).
            KatibTerminatingError: one with that name was still being deleted after
                ``deletion_timeout_s``.
            KatibAccessError: 401/403 from the API server.
            KatibRejectedError: the API server or an admission webhook refused it.
            KatibNotFoundError: the namespace or the Katib CRDs do not exist.
            KatibUnreachableError: the API server did not answer within the retries.
        """
        scoped = ExperimentOverrides(**overrides)
        scoped["namespace"] = self.namespace
        experiment = apply_overrides(body, **scoped)
        name = str(experiment["metadata"]["name"])
        digest = spec_digest(experiment)
        experiment["metadata"].setdefault("annotations", {})[SPEC_DIGEST_ANNOTATION] = digest
        deletion_deadline: float | None = None
        # Each round either creates, adopts, refuses, waits out a deletion (bounded by the
        # deadline) or finds the name free again; the bound only stops a pathological race
        # with someone else creating and deleting the same name over and over.
        for _ in range(self.attempts + 1):
            try:
                self._call(
                    "create",
                    name,
                    self._api.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    EXPERIMENTS,
                    experiment,
                )
            except ApiException as err:
                if err.status != 409:
                    raise self._api_error(err, "create", name) from None
                existing = self._existing(name)
                if existing is None:
                    continue  # deleted between our create and our read: try again
                if _deletion_timestamp(existing):
                    if deletion_deadline is None:
                        deletion_deadline = time.monotonic() + self.deletion_timeout_s
                    self._wait_until_gone(name, existing, deletion_deadline)
                    continue
                self._adopt(name, digest, existing)
                return name
            logger.info(
                "created Katib Experiment %s/%s (%s trials, %s in parallel)",
                self.namespace,
                name,
                experiment["spec"].get("maxTrialCount"),
                experiment["spec"].get("parallelTrialCount"),
            )
            return name
        raise KatibConflictError(
            f"could not create Katib Experiment {self.namespace}/{name}: the name kept being "
            f"taken and freed again over {self.attempts + 1} tries; is another process "
            "creating and deleting Experiments with this name?"
        )

    def wait(self, name: str, timeout_s: float, poll_s: float = 5.0) -> ExperimentResult:
        """Poll the Experiment until Katib marks it Succeeded or Failed.

        A Failed Experiment is returned (``status == "Failed"``, Katib's reason and message
        in ``reason``), not raised: the caller decides what a failed search means.

        Args:
            name: the Experiment's name.
            timeout_s: how long to wait in total.
            poll_s: time between polls.

        Returns:
            The result, with one record per Trial CR.

        Raises:
            KatibTimeoutError: not finished within ``timeout_s``; it is left running.
            KatibNotFoundError: the Experiment does not exist (any more), or is being deleted
                before it finished.
            KatibAccessError, KatibUnreachableError: as for :meth:`launch`.
        """
        deadline = time.monotonic() + timeout_s
        last_progress = ""
        while True:
            experiment = self._get_experiment(name)
            state, _, _ = experiment_state(experiment)
            progress = progress_summary(experiment)
            if progress != last_progress:
                logger.info("Katib Experiment %s/%s: %s", self.namespace, name, progress)
                last_progress = progress
            deleting = _deletion_timestamp(experiment)
            if deleting and state not in ("Succeeded", "Failed"):
                raise KatibNotFoundError(
                    f"Katib Experiment {self.namespace}/{name} is being deleted (since "
                    f"{deleting}, finalizers: {', '.join(_finalizers(experiment)) or 'none'}) "
                    f"before it finished ({progress}); someone ran `kubectl delete experiment "
                    f"{name}` or an earlier attempt cleaned it up. Run the step again: it waits "
                    "for the deletion to finish and creates the Experiment anew"
                )
            if state in ("Succeeded", "Failed"):
                # Foreground deletion removes the Trials first; the status lists stay whole.
                trials = None if deleting else self._list_trials(name)
                result = experiment_result_from_cr(experiment, trials)
                if result.status == "Failed":
                    logger.warning(
                        "Katib Experiment %s/%s failed: %s", self.namespace, name, result.reason
                    )
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KatibTimeoutError(
                    name=name,
                    namespace=self.namespace,
                    timeout_s=timeout_s,
                    progress=progress,
                    deleted=False,
                )
            time.sleep(min(poll_s, remaining))

    def snapshot(self, name: str) -> ExperimentResult:
        """The Experiment as it is now, finished or not (status ``Running`` while it runs).

        Args:
            name: the Experiment's name.

        Returns:
            The result so far, with one record per Trial CR.

        Raises:
            KatibNotFoundError, KatibAccessError, KatibUnreachableError: as for :meth:`wait`.
        """
        experiment = self._get_experiment(name)
        return experiment_result_from_cr(experiment, self._list_trials(name), allow_running=True)

    def cleanup(self, name: str, keep: bool) -> None:
        """Delete the Experiment with its Trials (propagation Foreground) unless ``keep``.

        An Experiment that is already gone counts as deleted.

        Args:
            name: the Experiment's name.
            keep: True to leave it on the cluster (for inspection in the Katib UI).

        Raises:
            KatibAccessError, KatibUnreachableError: as for :meth:`launch`.
        """
        if keep:
            logger.info(
                "keeping Katib Experiment %s/%s; delete it with `kubectl -n %s delete "
                "experiment %s`",
                self.namespace,
                name,
                self.namespace,
                name,
            )
            return
        try:
            self._call(
                "delete",
                name,
                self._api.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                EXPERIMENTS,
                name,
                propagation_policy="Foreground",
            )
        except ApiException as err:
            if err.status == 404:
                logger.info("Katib Experiment %s/%s was already gone", self.namespace, name)
                return
            raise self._api_error(err, "delete", name) from None
        logger.info("deleted Katib Experiment %s/%s", self.namespace, name)

    def run(
        self,
        body: Mapping[str, Any],
        *,
        timeout_s: float,
        poll_s: float = 5.0,
        keep: bool = False,
        **overrides: Unpack[ExperimentOverrides],
    ) -> ExperimentResult:
        """Launch, wait and clean up: the whole tuning step on a cluster.

        Unless ``keep``, the Experiment is deleted whatever happened after it was created:
        finished, failed, timed out, an API error while waiting, or an interrupt. If that
        delete itself fails, the original error is raised and the failed delete is logged
        with the kubectl command to finish it.

        Args:
            body: the Experiment, as for :meth:`launch`.
            timeout_s: how long to wait for it.
            poll_s: time between status polls.
            keep: leave the Experiment on the cluster.
            **overrides: per-run overrides, as for :meth:`launch`.

        Returns:
            The result of :meth:`wait`.

        Raises:
            KatibTimeoutError: not finished in time (``deleted`` says whether it was removed).
            KatibError: any error of :meth:`launch`, :meth:`wait` or :meth:`cleanup`.
        """
        name = self.launch(body, **overrides)
        try:
            result = self.wait(name, timeout_s, poll_s)
        except KatibTimeoutError as err:
            if keep or not self._cleanup_after_error(name):
                raise
            raise KatibTimeoutError(
                name=name,
                namespace=self.namespace,
                timeout_s=err.timeout_s,
                progress=err.progress,
                deleted=True,
            ) from None
        except BaseException:
            if not keep:
                self._cleanup_after_error(name)
            raise
        self.cleanup(name, keep)
        return result

    # -- internals ----------------------------------------------------------------------------

    def _existing(self, name: str) -> dict[str, Any] | None:
        """The Experiment named ``name`` as it is now, or None when it does not exist."""
        try:
            return cast(
                dict[str, Any],
                self._call(
                    "get",
                    name,
                    self._api.get_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    EXPERIMENTS,
                    name,
                ),
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise self._api_error(err, "get", name) from None

    def _wait_until_gone(self, name: str, terminating: Mapping[str, Any], deadline: float) -> None:
        """Poll until the terminating Experiment (this uid) is gone, or raise at ``deadline``."""
        uid = (terminating.get("metadata") or {}).get("uid")
        finalizers = _finalizers(terminating)
        logger.info(
            "Katib Experiment %s/%s is being deleted (since %s, finalizers: %s); waiting up to "
            "%.0fs for it to go before creating it anew",
            self.namespace,
            name,
            _deletion_timestamp(terminating),
            ", ".join(finalizers) or "none",
            max(0.0, deadline - time.monotonic()),
        )
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KatibTerminatingError(
                    name=name,
                    namespace=self.namespace,
                    timeout_s=self.deletion_timeout_s,
                    finalizers=finalizers,
                )
            time.sleep(min(self.deletion_poll_s, remaining))
            current = self._existing(name)
            if current is None or (current.get("metadata") or {}).get("uid") != uid:
                logger.info("Katib Experiment %s/%s is gone", self.namespace, name)
                return
            if _finalizers(current) != finalizers:
                finalizers = _finalizers(current)
                logger.info(
                    "Katib Experiment %s/%s still being deleted, finalizers now: %s",
                    self.namespace,
                    name,
                    ", ".join(finalizers) or "none",
                )

    def _adopt(self, name: str, digest: str, existing: Mapping[str, Any]) -> None:
        annotations = (existing.get("metadata") or {}).get("annotations") or {}
        if annotations.get(SPEC_DIGEST_ANNOTATION) != digest:
            raise KatibConflictError(
                f"Katib Experiment {self.namespace}/{name} already exists with a different "
                "spec (not created by this launcher from the same Experiment and overrides); "
                "refusing to touch it. Pass another name_suffix, or inspect and delete it with "
                f"`kubectl -n {self.namespace} get experiment {name}` / `kubectl -n "
                f"{self.namespace} delete experiment {name}`"
            )
        logger.info(
            "Katib Experiment %s/%s already exists with the same spec (%s); waiting for it "
            "instead of creating a new one",
            self.namespace,
            name,
            progress_summary(existing),
        )

    def _get_experiment(self, name: str) -> dict[str, Any]:
        try:
            return cast(
                dict[str, Any],
                self._call(
                    "get",
                    name,
                    self._api.get_namespaced_custom_object_status,
                    GROUP,
                    VERSION,
                    self.namespace,
                    EXPERIMENTS,
                    name,
                ),
            )
        except ApiException as err:
            raise self._api_error(err, "get", name) from None

    def _list_trials(self, name: str) -> list[dict[str, Any]] | None:
        """Every Trial of the Experiment, or None when we may not list Trials."""
        items: list[dict[str, Any]] = []
        continue_token: str | None = None
        while True:
            options: dict[str, Any] = {"label_selector": f"{EXPERIMENT_LABEL}={name}", "limit": 250}
            if continue_token:
                options["_continue"] = continue_token
            try:
                page = self._call(
                    "list",
                    name,
                    self._api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    TRIALS,
                    **options,
                )
            except ApiException as err:
                if err.status in (401, 403):
                    logger.warning(
                        "may not list Trials in namespace %r (%s); trial records come from the "
                        "Experiment status only. Grant 'list' on trials.kubeflow.org for details",
                        self.namespace,
                        err.status,
                    )
                    return None
                raise self._api_error(err, "list trials of", name) from None
            items.extend(page.get("items") or [])
            continue_token = (page.get("metadata") or {}).get("continue")
            if not continue_token:
                return items

    def _call(self, verb: str, name: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the API with bounded retries on transport errors, 429 and 5xx."""
        started = time.monotonic()
        for attempt in range(1, self.attempts + 1):
            try:
                return method(*args, _request_timeout=self.request_timeout_s, **kwargs)
            except ApiException as err:
                if err.status not in RETRYABLE_STATUSES or attempt == self.attempts:
                    raise
                cause = f"{err.status} {err.reason}"
            except urllib3.exceptions.HTTPError as err:
                if attempt == self.attempts:
                    raise KatibUnreachableError(
                        self._redact(
                            f"Kubernetes API at {self._host()} unreachable: could not {verb} "
                            f"Katib Experiment {self.namespace}/{name} after {self.attempts} "
                            f"attempts in {time.monotonic() - started:.1f}s "
                            f"({transport_cause(err)}). Check the cluster address in the "
                            "kubeconfig and that the API server is up (`kubectl cluster-info`)"
                        )
                    ) from None
                cause = transport_cause(err)
            delay = min(self.backoff_s * 2 ** (attempt - 1), _MAX_BACKOFF_S)
            logger.warning(
                "%s",
                self._redact(
                    f"{verb} {self.namespace}/{name}: {cause}; retry {attempt} of "
                    f"{self.attempts - 1} in {delay:.2f}s"
                ),
            )
            time.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _api_error(self, err: ApiException, verb: str, name: str) -> KatibError:
        """Turn an API answer into an error that says what to do about it."""
        code, reason, message = status_fields(err)
        where = f"Katib Experiment {self.namespace}/{name}"
        server = f"({code} {reason}: {message})"
        error: KatibError
        if "admission webhook" in message:
            error = KatibRejectedError(
                f"an admission webhook refused {where} on {verb} {server}"
                + (
                    f". Label the namespace: `kubectl label namespace {self.namespace} "
                    "katib.kubeflow.org/metrics-collector-injection=enabled`"
                    if "metrics-collector-injection" in message
                    else ""
                )
            )
        elif code == 401:
            error = KatibAccessError(
                f"Kubernetes API at {self._host()} rejected the credentials on {verb} {where} "
                f"{server}: the token or client certificate is missing, expired or invalid. "
                "Refresh the kubeconfig credentials (or the pod's service account token)"
            )
        elif code == 403:
            error = KatibAccessError(
                f"not allowed to {verb} {where} {server}. The identity in use needs an RBAC "
                f"Role in namespace {self.namespace!r} granting verbs [create, get, list, delete] "
                f"on experiments.kubeflow.org and [get, list] on trials.kubeflow.org (apiGroup "
                f"'kubeflow.org'); check with `kubectl auth can-i {verb} experiments.kubeflow.org "
                f"-n {self.namespace}`"
            )
        elif code == 404:
            error = KatibNotFoundError(
                f"{where} not found on {verb} {server}. Check that namespace {self.namespace!r} "
                "exists and Katib is installed (`kubectl get crd experiments.kubeflow.org`)"
                + ("" if verb == "create" else ", and that nobody deleted the Experiment")
            )
        elif code in (400, 422):
            error = KatibRejectedError(f"Kubernetes API refused {where} on {verb} {server}")
        elif code == 409:
            error = KatibConflictError(f"conflict on {verb} {where} {server}")
        elif code in RETRYABLE_STATUSES:
            error = KatibUnreachableError(
                f"Kubernetes API at {self._host()} kept failing: could not {verb} {where} after "
                f"{self.attempts} attempts {server}"
            )
        else:
            error = KatibError(f"could not {verb} {where} {server}")
        return type(error)(self._redact(str(error)))

    def _host(self) -> str:
        # Credentials in the URL (user:password@host) must not reach a message.
        return redact_uri(str(self.api_client.configuration.host))

    def _redact(self, text: str) -> str:
        """``text`` without the client configuration's secrets or any URI credential."""
        configuration = self.api_client.configuration
        secrets: list[str] = []
        for value in (configuration.api_key or {}).values():
            value = str(value)
            secrets.append(value)
            secrets.append(value.split(" ", 1)[-1])  # the token without "Bearer "
        secrets.append(str(configuration.password or ""))
        return redact_text(text, secrets)

    def _cleanup_after_error(self, name: str) -> bool:
        try:
            self.cleanup(name, keep=False)
        except KatibError as err:
            logger.error(
                "could not delete Katib Experiment %s/%s after an error (%s); delete it with "
                "`kubectl -n %s delete experiment %s`",
                self.namespace,
                name,
                err,
                self.namespace,
                name,
            )
            return False
        return True


def _default_api_client() -> kubernetes.client.ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return KatibLauncher.in_cluster().api_client
    return KatibLauncher.from_kubeconfig().api_client


def _deletion_timestamp(obj: Mapping[str, Any]) -> str | None:
    """When the API server started deleting ``obj``, or None while it is not being deleted."""
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    return str(stamp) if stamp else None


def _finalizers(obj: Mapping[str, Any]) -> list[str]:
    return [str(item) for item in (obj.get("metadata") or {}).get("finalizers") or []]


def _is_true(condition: Mapping[str, Any]) -> bool:
    return str(condition.get("status", "")).lower() == "true"


def _trial_status(conditions: Sequence[Mapping[str, Any]]) -> tuple[TrialStatus, str]:
    """Katib's order of precedence for a Trial's conditions, mapped onto TrialRecord statuses."""
    true_conditions = {str(c.get("type")): c for c in conditions if _is_true(c)}
    precedence: Sequence[tuple[str, TrialStatus]] = (
        ("Killed", "Killed"),
        ("Failed", "Failed"),
        # Katib ends a trial whose metrics never appeared this way; for us it did not succeed.
        ("MetricsUnavailable", "Failed"),
        ("Succeeded", "Succeeded"),
        ("EarlyStopped", "EarlyStopped"),
    )
    for condition_type, trial_status in precedence:
        if condition_type in true_conditions:
            condition = true_conditions[condition_type]
            reason = str(condition.get("reason", ""))
            message = str(condition.get("message", ""))
            return trial_status, f"{reason}: {message}" if message else reason
    return "Running", ""


def _to_float(raw: object) -> float | None:
    if raw is None or raw == UNAVAILABLE_METRIC:
        return None
    try:
        value = float(cast(Any, raw))
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _duration_s(started_at: str | None, finished_at: str | None) -> float | None:
    if not started_at or not finished_at:
        return None
    try:
        start = datetime.fromisoformat(started_at)
        end = datetime.fromisoformat(finished_at)
    except ValueError:
        return None
    return (end - start).total_seconds()
