"""Kubeflow Pipelines' REST API (v2beta1): pipeline versions, runs and recurring runs.

``kaizen upload --kfp-host`` stores the compiled YAML as a version of a KFP pipeline,
``kaizen submit`` starts a run of a version and ``kaizen schedule`` manages recurring runs,
all through :class:`KfpClient`, a small client over the endpoints of KFP 2.17's
``/apis/v2beta1`` API (the ones ``kfp.Client`` calls too).

Why not ``kfp.Client`` (kfp 2.17): its constructor probes ``/healthz`` up to five times with
5 s sleeps and logs every failed attempt with ``logging.exception``, so an unreachable host
costs 25 s and a traceback before any message; it reads and, in multi-user mode, writes
``~/.config/kfp/context.json`` (whose saved cookie or header can silently replace the token
given); it honours ``KF_PIPELINES_*`` environment variables over its arguments; its upload
and run methods ``print`` links themselves; and errors arrive as ``ApiException`` whose text
dumps the HTTP response headers and body. Here every answer is mapped to one error type with
a sentence naming the host and the object (:class:`KfpAuthError` for 401/403,
:class:`KfpNotFoundError` for 404, ...), nothing is printed or written, and the only state is
what the arguments say.

Decisions worth knowing:

- **Auth as Kubeflow users do it**: a bearer token read from a file (a ServiceAccount token,
  or a projected token with KFP's audience) on every request, so a token the kubelet rotates
  is picked up. The token is never part of a message, a log line or ``repr``; a host that
  carries credentials (``https://user:pass@...``) is refused.
- **TLS is verified** (certifi's bundle, or ``ca_file`` for a cluster's own CA).
- **Idempotent upload**: a version name KFP already holds answers 409; the existing version
  is looked up and reported instead of an error (our version names are content hashes, so
  the same name means the same YAML).
- **Retries**: requests that never reached the server (connection refused, DNS, connect
  timeout) are retried ``attempts`` times with backoff; a 502/503/504 answer is retried for
  reads only, so a run is never created twice.
- **Not a login flow**: a redirect (the Kubeflow dashboard's login page) is reported as the
  gateway refusing the token, not followed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

logger = logging.getLogger("kaizen.pipeline.kfp")

API_PREFIX = "/apis/v2beta1"
#: KFP refuses a recurring run outside this range (api_converter.go, KFP 2.17).
MAX_CONCURRENCY_RANGE = (1, 10)
_RETRYABLE_READ_STATUSES = frozenset({502, 503, 504})
_PAGE_SIZE = 100


class KfpError(RuntimeError):
    """Base class of every error this module raises on purpose.

    Attributes:
        status: the HTTP status KFP answered, or ``None`` when there was no answer.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KfpConfigError(KfpError):
    """The host or the token file given cannot be used (fix the setting or option)."""


class KfpAuthError(KfpError):
    """KFP (or the gateway in front of it) refused the token: 401, 403 or a login redirect."""


class KfpNotFoundError(KfpError):
    """The pipeline, version, experiment or recurring run does not exist in KFP."""


class KfpConflictError(KfpError):
    """KFP already holds an object with that name, and it is not the one we meant."""


class KfpRejectedError(KfpError):
    """KFP refused the request as invalid (400) or failed on it (other 4xx/5xx)."""


class KfpUnreachableError(KfpError):
    """No usable answer from the host within the bounded retries."""


def normalize_host(host: str) -> str:
    """The KFP API base URL, without a trailing slash.

    Args:
        host: ``http(s)://host[:port][/path]``, e.g. ``http://127.0.0.1:8888`` (a
            port-forward to ``ml-pipeline``) or ``https://kubeflow.example.com/pipeline``
            (through the Kubeflow gateway).

    Raises:
        KfpConfigError: no http(s) scheme or host, or credentials, a query or a fragment in
            the URL (a token goes in a token file, never in the URL).
    """
    text = host.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as error:
        raise KfpConfigError(f"KFP host {text!r} is not a URL: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise KfpConfigError(
            f"KFP host must be an http(s) URL such as https://kubeflow.example.com/pipeline "
            f"or http://127.0.0.1:8888, got {text!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise KfpConfigError(
            "KFP host must not carry credentials (user:password@); put a bearer token in a "
            "file and pass it with --token-file or KAIZEN_KFP_TOKEN_FILE"
        )
    if parts.query or parts.fragment:
        raise KfpConfigError(f"KFP host must not have a query or fragment, got {text!r}")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def read_token(token_file: Path) -> str:
    """The bearer token in ``token_file`` (surrounding whitespace removed).

    Raises:
        KfpConfigError: the file cannot be read or is empty (the message names the file,
            never its content).
    """
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise KfpConfigError(
            f"cannot read the KFP token file {token_file}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise KfpConfigError(f"the KFP token file {token_file} is not UTF-8 text") from None
    if not token:
        raise KfpConfigError(f"the KFP token file {token_file} is empty")
    return token


def _server_message(body: bytes) -> str:
    """KFP's own words from an error body, whichever of its three shapes it has."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:300]
    if not isinstance(payload, dict):
        return text[:300]
    # grpc-gateway v2: {"code", "message", "details": [google.rpc.Status]}, where the detail
    # holds KFP's short external message and "message" the wrapped internal one.
    for detail in payload.get("details") or []:
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
    for key in ("message", "error", "error_message"):  # gateway v2, gateway v1, upload handler
        if payload.get(key):
            return str(payload[key])
    return text[:300]


@dataclass(frozen=True)
class PipelineVersionRef:
    """A pipeline version as KFP knows it."""

    pipeline_id: str
    pipeline_name: str
    version_id: str
    version_name: str


@dataclass(frozen=True)
class PublishedVersion:
    """What :func:`publish_pipeline_version` did.

    Attributes:
        version: the version in KFP.
        pipeline_created: the pipeline itself was created by this call (first upload).
        already_present: KFP held that version name already; nothing was uploaded.
        url: the version's page in the KFP UI.
    """

    version: PipelineVersionRef
    pipeline_created: bool
    already_present: bool
    url: str

    @property
    def message(self) -> str:
        """One line for people saying what happened."""
        v = self.version
        if self.already_present:
            return (
                f"KFP already has version {v.version_name} of pipeline {v.pipeline_name!r} "
                f"(version id {v.version_id}); nothing uploaded: {self.url}"
            )
        created = " (new pipeline)" if self.pipeline_created else ""
        return (
            f"uploaded version {v.version_name} of pipeline {v.pipeline_name!r}{created} "
            f"to KFP (version id {v.version_id}): {self.url}"
        )


@dataclass(frozen=True)
class SubmittedRun:
    """A run :func:`submit_run` started."""

    run_id: str
    display_name: str
    experiment_id: str
    experiment_name: str
    version: PipelineVersionRef
    url: str
    existed: bool = False  # ``skip_existing`` found a run of that name: nothing was started


@dataclass(frozen=True)
class Schedule:
    """A KFP recurring run, as ``kaizen schedule`` shows it."""

    recurring_run_id: str
    display_name: str
    status: str
    cron: str
    max_concurrency: int
    no_catchup: bool
    pipeline_version_id: str
    experiment_id: str
    created_at: str
    url: str


class KfpClient:
    """The part of KFP's v2beta1 REST API that Kaizen uses, one method per endpoint.

    Args:
        host: the API base URL (:func:`normalize_host`).
        token_file: a file with the bearer token, read on every request; ``None`` sends no
            token (a port-forward to a single-user KFP).
        namespace: the Kubeflow profile namespace of pipelines, experiments and recurring
            runs in multi-user mode; ``None`` for single-user KFP or shared pipelines.
        ui_url: base of the links printed for people (default: ``host``, right when KFP is
            reached through the Kubeflow gateway at ``.../pipeline``).
        ca_file: CA bundle to verify the host's TLS certificate (default: certifi's).
        verify_tls: verify TLS certificates (on by default; off only for a throw-away
            cluster).
        timeout_s: connect and read timeout per request.
        attempts: tries of a request that did not reach the server (>= 1).
        backoff_s: wait before the second try, doubled before each later one.

    Raises:
        KfpConfigError: a bad host or ``attempts`` below 1.
    """

    def __init__(
        self,
        host: str,
        *,
        token_file: Path | None = None,
        namespace: str | None = None,
        ui_url: str | None = None,
        ca_file: Path | None = None,
        verify_tls: bool = True,
        timeout_s: float = 30.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        import certifi
        import urllib3

        if attempts < 1:
            raise KfpConfigError(f"attempts must be >= 1, got {attempts}")
        self.host = normalize_host(host)
        self.ui_url = normalize_host(ui_url) if ui_url else self.host
        self.token_file = token_file
        self.namespace = namespace or None
        self.attempts = attempts
        self.backoff_s = backoff_s
        if ca_file is not None and not ca_file.is_file():
            raise KfpConfigError(f"KFP CA file {ca_file} does not exist")
        if not verify_tls:
            logger.warning("TLS certificates of %s are NOT verified", self.host)
        self._pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
            ca_certs=str(ca_file) if ca_file else certifi.where(),
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s),
            retries=False,
        )

    def __repr__(self) -> str:
        return f"KfpClient(host={self.host!r}, namespace={self.namespace!r})"

    # -- links --------------------------------------------------------------------------------

    def run_url(self, run_id: str) -> str:
        """The run's page in the KFP UI."""
        return f"{self.ui_url}/#/runs/details/{run_id}"

    def recurring_run_url(self, recurring_run_id: str) -> str:
        """The recurring run's page in the KFP UI."""
        return f"{self.ui_url}/#/recurringrun/details/{recurring_run_id}"

    def version_url(self, pipeline_id: str, version_id: str) -> str:
        """The pipeline version's page in the KFP UI."""
        return f"{self.ui_url}/#/pipelines/details/{pipeline_id}/version/{version_id}"

    # -- transport ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_file is not None:
            headers["Authorization"] = f"Bearer {read_token(self.token_file)}"
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        upload: tuple[str, bytes] | None = None,
        what: str = "",
    ) -> dict[str, Any]:
        """Send one request to ``{host}/apis/v2beta1{path}`` and return the JSON answer.

        Args:
            method: ``GET``, ``POST`` or ``DELETE``.
            path: below the API prefix, already escaped (``/pipelines/names/kaizen``).
            query: query parameters; ``None`` values are left out.
            body: a JSON body.
            upload: ``(file name, bytes)`` sent as the multipart field ``uploadfile``.
            what: the object, for messages (``pipeline 'kaizen-training'``).

        Raises:
            KfpAuthError: 401, 403 or a redirect (a login page).
            KfpNotFoundError: 404.
            KfpConflictError: 409.
            KfpRejectedError: any other error status.
            KfpUnreachableError: no answer after the retries, or an answer that is not JSON.
        """
        import urllib3
        import urllib3.exceptions

        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self.host}{API_PREFIX}{path}" + (f"?{urlencode(params)}" if params else "")
        shown = f"{method} {self.host}{API_PREFIX}{path}"
        headers = self._headers()
        data: bytes | None = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif upload is not None:
            data, content_type = urllib3.encode_multipart_formdata(
                {"uploadfile": (upload[0], upload[1], "application/x-yaml")}
            )
            headers["Content-Type"] = content_type
        reads = method == "GET"
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._pool.request(
                    method, url, body=data, headers=headers, redirect=False
                )
            except urllib3.exceptions.SSLError as error:
                raise KfpUnreachableError(
                    f"TLS with KFP at {self.host} failed ({_reason(error)}); give the "
                    "cluster's CA with KAIZEN_KFP_CA_FILE"
                ) from None
            except (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
                urllib3.exceptions.NameResolutionError,
            ) as error:
                if attempt < self.attempts:
                    self._back_off(attempt)
                    continue
                raise KfpUnreachableError(
                    f"cannot reach KFP at {self.host}: {_reason(error)} "
                    f"({self.attempts} attempts); is the host right and, for a "
                    "port-forward, is `kubectl port-forward` still running?"
                ) from None
            except urllib3.exceptions.HTTPError as error:
                raise KfpUnreachableError(f"{shown} got no answer: {_reason(error)}") from None
            status = response.status
            if reads and status in _RETRYABLE_READ_STATUSES and attempt < self.attempts:
                self._back_off(attempt)
                continue
            return self._answer(method, shown, status, response.data, response.headers, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _back_off(self, attempt: int) -> None:
        time.sleep(self.backoff_s * 2 ** (attempt - 1))

    def _answer(
        self,
        method: str,
        shown: str,
        status: int,
        payload: bytes,
        headers: Mapping[str, str],
        what: str,
    ) -> dict[str, Any]:
        if 300 <= status < 400:
            target = urlsplit(headers.get("Location", "")).hostname or "another page"
            raise KfpAuthError(
                f"KFP at {self.host} answered {status} redirecting to {target} (a login "
                "page?): the gateway in front of KFP did not accept the request's token; "
                "check KAIZEN_KFP_TOKEN_FILE / --token-file",
                status=status,
            )
        if status < 300:
            if not payload.strip():
                return {}
            try:
                answer = json.loads(payload)
            except ValueError:
                raise KfpUnreachableError(
                    f"{shown} answered {status} with something that is not JSON; is "
                    f"{self.host} the KFP API (http://ml-pipeline.kubeflow:8888, or the "
                    "Kubeflow gateway's /pipeline)?",
                    status=status,
                ) from None
            return answer if isinstance(answer, dict) else {}
        message = self._scrub(_server_message(payload))
        about = f" ({what})" if what else ""
        if status in (401, 403):
            token = (
                f"the token from {self.token_file}"
                if self.token_file
                else "a request without a token (give one with --token-file or "
                "KAIZEN_KFP_TOKEN_FILE)"
            )
            raise KfpAuthError(
                f"KFP refused the token ({status}) at {self.host}{about}: {message}; sent {token}",
                status=status,
            )
        if status == 404:
            raise KfpNotFoundError(
                f"KFP at {self.host} has no {what or 'such object'} (404: {message})",
                status=status,
            )
        if status == 409:
            raise KfpConflictError(
                f"KFP at {self.host} already has {what or 'that object'} (409: {message})",
                status=status,
            )
        error_type = KfpUnreachableError if status in _RETRYABLE_READ_STATUSES else KfpRejectedError
        raise error_type(f"{shown}{about} failed with {status}: {message}", status=status)

    def _scrub(self, text: str) -> str:
        if self.token_file is not None:
            try:
                token = read_token(self.token_file)
            except KfpConfigError:
                return text
            text = text.replace(token, "***")
        return text

    def _pages(
        self, path: str, key: str, query: Mapping[str, Any], what: str
    ) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            answer = self.request(
                "GET",
                path,
                query={**query, "page_size": _PAGE_SIZE, "page_token": token},
                what=what,
            )
            yield from answer.get(key) or []
            token = answer.get("next_page_token") or None
            if token is None:
                return

    # -- pipelines ----------------------------------------------------------------------------

    def get_pipeline_by_name(self, name: str) -> dict[str, Any] | None:
        """The pipeline called ``name`` (in the client's namespace), or ``None``."""
        try:
            return self.request(
                "GET",
                f"/pipelines/names/{quote(name, safe='')}",
                query={"namespace": self.namespace},
                what=f"pipeline {name!r}",
            )
        except KfpNotFoundError:
            return None

    def create_pipeline(self, name: str, description: str = "") -> dict[str, Any]:
        """Create an empty pipeline ``name``; its versions are uploaded next."""
        body: dict[str, Any] = {"name": name, "display_name": name}
        if description:
            body["description"] = description
        if self.namespace:
            body["namespace"] = self.namespace
        return self.request("POST", "/pipelines", body=body, what=f"pipeline {name!r}")

    def upload_pipeline_version(
        self,
        pipeline_id: str,
        name: str,
        package: bytes,
        *,
        description: str = "",
        what: str = "",
    ) -> dict[str, Any]:
        """Upload a compiled YAML as version ``name`` of pipeline ``pipeline_id``."""
        return self.request(
            "POST",
            "/pipelines/upload_version",
            query={
                "pipelineid": pipeline_id,
                "name": name,
                "display_name": name,
                "description": description or None,
            },
            upload=("pipeline.yaml", package),
            what=what or f"pipeline version {name!r}",
        )

    def find_pipeline_version(self, pipeline_id: str, name: str) -> dict[str, Any] | None:
        """Version ``name`` of pipeline ``pipeline_id``, or ``None``."""
        predicate = {"key": "name", "operation": "EQUALS", "string_value": name}
        answer = self.request(
            "GET",
            f"/pipelines/{quote(pipeline_id, safe='')}/versions",
            query={"filter": json.dumps({"predicates": [predicate]}), "page_size": 1},
            what=f"pipeline id {pipeline_id}",
        )
        versions = answer.get("pipeline_versions") or []
        return versions[0] if versions else None

    def latest_pipeline_version(self, pipeline_id: str) -> dict[str, Any] | None:
        """The newest version of pipeline ``pipeline_id``, or ``None`` when it has none."""
        answer = self.request(
            "GET",
            f"/pipelines/{quote(pipeline_id, safe='')}/versions",
            query={"sort_by": "created_at desc", "page_size": 1},
            what=f"pipeline id {pipeline_id}",
        )
        versions = answer.get("pipeline_versions") or []
        return versions[0] if versions else None

    # -- experiments --------------------------------------------------------------------------

    def find_experiment(self, name: str) -> dict[str, Any] | None:
        """The experiment called ``name`` (in the client's namespace), or ``None``."""
        predicate = {"key": "display_name", "operation": "EQUALS", "string_value": name}
        answer = self.request(
            "GET",
            "/experiments",
            query={
                "filter": json.dumps({"predicates": [predicate]}),
                "page_size": 1,
                "namespace": self.namespace,
            },
            what=f"experiment {name!r}",
        )
        experiments = answer.get("experiments") or []
        return experiments[0] if experiments else None

    def create_experiment(self, name: str, description: str = "") -> dict[str, Any]:
        """Create experiment ``name`` in the client's namespace."""
        body: dict[str, Any] = {"display_name": name}
        if description:
            body["description"] = description
        if self.namespace:
            body["namespace"] = self.namespace
        return self.request("POST", "/experiments", body=body, what=f"experiment {name!r}")

    # -- runs ---------------------------------------------------------------------------------

    def create_run(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """Create a run from a ``v2beta1Run`` body."""
        return self.request("POST", "/runs", body=run, what=f"run {run.get('display_name')!r}")

    def find_run(self, experiment_id: str, display_name: str) -> dict[str, Any] | None:
        """The newest run called ``display_name`` in experiment ``experiment_id``, or ``None``."""
        predicate = {"key": "display_name", "operation": "EQUALS", "string_value": display_name}
        answer = self.request(
            "GET",
            "/runs",
            query={
                "experiment_id": experiment_id,
                "filter": json.dumps({"predicates": [predicate]}),
                "sort_by": "created_at desc",
                "page_size": 1,
            },
            what=f"runs named {display_name!r}",
        )
        runs = answer.get("runs") or []
        return runs[0] if runs else None

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Run ``run_id``."""
        return self.request("GET", f"/runs/{quote(run_id, safe='')}", what=f"run {run_id}")

    # -- recurring runs -----------------------------------------------------------------------

    def create_recurring_run(self, recurring_run: Mapping[str, Any]) -> dict[str, Any]:
        """Create a recurring run from a ``v2beta1RecurringRun`` body."""
        name = recurring_run.get("display_name")
        return self.request(
            "POST", "/recurringruns", body=recurring_run, what=f"recurring run {name!r}"
        )

    def list_recurring_runs(self, experiment_id: str | None = None) -> list[dict[str, Any]]:
        """Every recurring run in the client's namespace (of one experiment when given)."""
        query = {"namespace": self.namespace, "experiment_id": experiment_id}
        # The response's list field is camelCase here, unlike every other list in v2beta1.
        return list(self._pages("/recurringruns", "recurringRuns", query, "recurring runs"))

    def get_recurring_run(self, recurring_run_id: str) -> dict[str, Any]:
        """Recurring run ``recurring_run_id``."""
        return self.request(
            "GET",
            f"/recurringruns/{quote(recurring_run_id, safe='')}",
            what=f"recurring run {recurring_run_id}",
        )

    def set_recurring_run_enabled(self, recurring_run_id: str, enabled: bool) -> None:
        """Enable or disable recurring run ``recurring_run_id``."""
        verb = "enable" if enabled else "disable"
        self.request(
            "POST",
            f"/recurringruns/{quote(recurring_run_id, safe='')}:{verb}",
            what=f"recurring run {recurring_run_id}",
        )

    def delete_recurring_run(self, recurring_run_id: str) -> None:
        """Delete recurring run ``recurring_run_id`` (runs it started stay)."""
        self.request(
            "DELETE",
            f"/recurringruns/{quote(recurring_run_id, safe='')}",
            what=f"recurring run {recurring_run_id}",
        )


def _reason(error: BaseException) -> str:
    """The root cause of a urllib3 error, without the URL it repeats."""
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    if isinstance(reason, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host name"
    return text.split(": ", 1)[-1] if "object at 0x" in text else text


def _version_ref(pipeline: Mapping[str, Any], version: Mapping[str, Any]) -> PipelineVersionRef:
    return PipelineVersionRef(
        pipeline_id=str(pipeline["pipeline_id"]),
        pipeline_name=str(pipeline.get("name") or pipeline.get("display_name") or ""),
        version_id=str(version["pipeline_version_id"]),
        version_name=str(version.get("name") or version.get("display_name") or ""),
    )


def publish_pipeline_version(
    client: KfpClient,
    package: bytes,
    *,
    pipeline_name: str,
    version_name: str,
    description: str = "",
) -> PublishedVersion:
    """Upload a compiled pipeline as version ``version_name`` of KFP pipeline ``pipeline_name``.

    The pipeline is created on first use. Uploading a version name KFP already holds is not
    an error: KFP answers 409 and the existing version is returned with
    ``already_present=True``.

    Args:
        client: the KFP API.
        package: the compiled YAML's bytes.
        pipeline_name: the KFP pipeline (``KAIZEN_PIPELINE_NAME``).
        version_name: the version's name: the object store's version id, so the bucket and
            KFP name a version alike.
        description: shown in the KFP UI.

    Raises:
        KfpError: a subclass saying what failed (see :meth:`KfpClient.request`).
    """
    pipeline = client.get_pipeline_by_name(pipeline_name)
    created = False
    if pipeline is None:
        try:
            pipeline = client.create_pipeline(pipeline_name, description)
            created = True
        except KfpConflictError:  # created by a concurrent upload since we looked
            pipeline = client.get_pipeline_by_name(pipeline_name)
            if pipeline is None:
                raise
    what = f"version {version_name!r} of pipeline {pipeline_name!r}"
    try:
        version = client.upload_pipeline_version(
            str(pipeline["pipeline_id"]),
            version_name,
            package,
            description=description,
            what=what,
        )
        present = False
    except KfpConflictError:
        found = client.find_pipeline_version(str(pipeline["pipeline_id"]), version_name)
        if found is None:
            raise
        version, present = found, True
    ref = _version_ref(pipeline, version)
    return PublishedVersion(
        version=ref,
        pipeline_created=created,
        already_present=present,
        url=client.version_url(ref.pipeline_id, ref.version_id),
    )


def find_version(
    client: KfpClient, pipeline_name: str, version_name: str | None = None
) -> PipelineVersionRef:
    """Version ``version_name`` (default: the newest) of KFP pipeline ``pipeline_name``.

    Raises:
        KfpNotFoundError: naming the pipeline (and version) KFP does not have, and how to
            upload it.
    """
    pipeline = client.get_pipeline_by_name(pipeline_name)
    where = f" in namespace {client.namespace!r}" if client.namespace else ""
    if pipeline is None:
        raise KfpNotFoundError(
            f"KFP at {client.host} has no pipeline {pipeline_name!r}{where}; upload it with "
            f"`kaizen upload --kfp-host {client.host}`",
            status=404,
        )
    pipeline_id = str(pipeline["pipeline_id"])
    if version_name is None:
        version = client.latest_pipeline_version(pipeline_id)
        missing = f"pipeline {pipeline_name!r} has no version"
    else:
        version = client.find_pipeline_version(pipeline_id, version_name)
        missing = f"pipeline {pipeline_name!r} has no version {version_name!r}"
    if version is None:
        raise KfpNotFoundError(
            f"in KFP at {client.host}, {missing}{where}; upload it with "
            f"`kaizen upload --kfp-host {client.host}`",
            status=404,
        )
    return _version_ref(pipeline, version)


def ensure_experiment(client: KfpClient, name: str) -> tuple[str, bool]:
    """The id of experiment ``name``, created when absent; and whether it was created."""
    found = client.find_experiment(name)
    if found is not None:
        return str(found["experiment_id"]), False
    try:
        created = client.create_experiment(name, "Runs of the Kaizen training pipeline")
    except KfpConflictError:  # created concurrently since we looked
        found = client.find_experiment(name)
        if found is None:
            raise
        return str(found["experiment_id"]), False
    return str(created["experiment_id"]), True


def _run_body(
    version: PipelineVersionRef, arguments: Mapping[str, Any], service_account: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pipeline_version_reference": {
            "pipeline_id": version.pipeline_id,
            "pipeline_version_id": version.version_id,
        },
        "runtime_config": {"parameters": dict(arguments)},
    }
    if service_account:
        body["service_account"] = service_account
    return body


def submit_run(
    client: KfpClient,
    version: PipelineVersionRef,
    *,
    arguments: Mapping[str, Any],
    experiment: str,
    run_name: str | None = None,
    service_account: str | None = None,
    skip_existing: bool = False,
) -> SubmittedRun:
    """Start a run of ``version`` in ``experiment`` (created when absent).

    With ``skip_existing`` and a ``run_name``, a run of that name already in the experiment
    (in any state) is returned instead (``existed``) and nothing is started: the same name
    (say ``retrain-<data fingerprint>``) never starts two runs one after the other. Two
    submissions at the same instant can still both start; callers that can race serialize
    themselves (the retrain workflow queues per fingerprint).

    Args:
        client: the KFP API.
        version: the version to run (:func:`find_version`).
        arguments: parameter values, already checked and converted
            (:func:`kaizen.pipeline.parameters.resolve_arguments`).
        experiment: the experiment's name.
        run_name: the run's display name (default: pipeline, version and UTC time).
        service_account: the Kubernetes ServiceAccount the run's pods use; ``None`` for
            KFP's default.

    Raises:
        KfpError: a subclass saying what failed.
    """
    if skip_existing and not run_name:
        raise KfpConfigError("skipping an existing run needs the run's name (--run-name)")
    experiment_id, _ = ensure_experiment(client, experiment)
    if skip_existing and run_name:
        found = client.find_run(experiment_id, run_name)
        if found is not None:
            run_id = str(found["run_id"])
            return SubmittedRun(
                run_id=run_id,
                display_name=run_name,
                experiment_id=experiment_id,
                experiment_name=experiment,
                version=version,
                url=client.run_url(run_id),
                existed=True,
            )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    name = run_name or f"{version.pipeline_name} {version.version_name} {stamp}"
    body = {
        "display_name": name,
        "experiment_id": experiment_id,
        **_run_body(version, arguments, service_account),
    }
    run = client.create_run(body)
    run_id = str(run["run_id"])
    return SubmittedRun(
        run_id=run_id,
        display_name=str(run.get("display_name") or name),
        experiment_id=experiment_id,
        experiment_name=experiment,
        version=version,
        url=client.run_url(run_id),
    )


def _schedule(client: KfpClient, answer: Mapping[str, Any]) -> Schedule:
    trigger = answer.get("trigger") or {}
    cron = (trigger.get("cron_schedule") or {}).get("cron") or ""
    if not cron and trigger.get("periodic_schedule"):
        cron = f"every {trigger['periodic_schedule'].get('interval_second', '?')}s"
    reference = answer.get("pipeline_version_reference") or {}
    recurring_run_id = str(answer["recurring_run_id"])
    return Schedule(
        recurring_run_id=recurring_run_id,
        display_name=str(answer.get("display_name") or ""),
        status=str(answer.get("status") or "STATUS_UNSPECIFIED"),
        cron=cron,
        max_concurrency=int(answer.get("max_concurrency") or 0),
        no_catchup=bool(answer.get("no_catchup", False)),
        pipeline_version_id=str(reference.get("pipeline_version_id") or ""),
        experiment_id=str(answer.get("experiment_id") or ""),
        created_at=str(answer.get("created_at") or ""),
        url=client.recurring_run_url(recurring_run_id),
    )


def create_schedule(
    client: KfpClient,
    version: PipelineVersionRef,
    *,
    cron: str,
    arguments: Mapping[str, Any],
    experiment: str,
    display_name: str | None = None,
    max_concurrency: int = 1,
    catchup: bool = False,
    service_account: str | None = None,
) -> Schedule:
    """Create an enabled recurring run of ``version``.

    Args:
        client: the KFP API.
        version: the version every run uses (pinned: a later upload does not change it).
        cron: a cron already checked by :func:`kaizen.pipeline.cron.validate_cron`.
        arguments: parameter values, already checked and converted.
        experiment: the experiment's name (created when absent).
        display_name: the recurring run's name (default: pipeline, version and cron).
        max_concurrency: runs of this schedule at once, 1 to 10.
        catchup: after a pause, start the runs the schedule missed (off: only the latest).
        service_account: the Kubernetes ServiceAccount of its runs' pods.

    Raises:
        ValueError: ``max_concurrency`` outside 1 to 10 (checked before any request).
        KfpError: a subclass saying what failed.
    """
    low, high = MAX_CONCURRENCY_RANGE
    if not low <= max_concurrency <= high:
        raise ValueError(
            f"max concurrency must be between {low} and {high} (KFP's limit), got {max_concurrency}"
        )
    experiment_id, _ = ensure_experiment(client, experiment)
    name = display_name or f"{version.pipeline_name} {version.version_name} [{cron}]"
    body = {
        "display_name": name,
        "experiment_id": experiment_id,
        **_run_body(version, arguments, service_account),
        "trigger": {"cron_schedule": {"cron": cron}},
        "max_concurrency": str(max_concurrency),
        "mode": "ENABLE",
        "no_catchup": not catchup,
    }
    return _schedule(client, client.create_recurring_run(body))


def list_schedules(client: KfpClient) -> list[Schedule]:
    """Every recurring run in the client's namespace, oldest first."""
    schedules = [_schedule(client, answer) for answer in client.list_recurring_runs()]
    return sorted(schedules, key=lambda s: (s.created_at, s.recurring_run_id))


def set_schedule_enabled(client: KfpClient, recurring_run_id: str, enabled: bool) -> Schedule:
    """Enable or disable a recurring run; return it as KFP now shows it."""
    client.set_recurring_run_enabled(recurring_run_id, enabled)
    return _schedule(client, client.get_recurring_run(recurring_run_id))


def delete_schedule(client: KfpClient, recurring_run_id: str) -> None:
    """Delete a recurring run; the runs it already started stay in KFP."""
    client.delete_recurring_run(recurring_run_id)
