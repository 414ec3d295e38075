"""A stand-in Kubeflow Pipelines API server (v2beta1) for contract tests. Not KFP.

It is a real HTTP server on 127.0.0.1 (``http.server`` in a thread) serving the part of KFP
2.17's REST API that Kaizen uses, with the routes, request schemas and response schemas
taken from KFP's own swagger files (``tests/data/kfp/``, see ``SOURCES.txt``):

- **Every request is checked against the swagger** of its operation: path, query parameters
  (name, type, enum), JSON body against the body schema with ``$ref`` resolved and unknown
  fields refused (KFP's marshaler sets ``DiscardUnknown: false``; grpc-gateway answers 400),
  int64 fields as decimal strings, the multipart upload's ``uploadfile`` field. Unknown query
  parameters are refused too, which is stricter than KFP (it ignores them, so a misspelt
  parameter would silently do nothing on a cluster).
- **Answers as KFP answers**: objects in the swagger's response shapes (each 2xx answer is
  itself validated against its response schema, and a mismatch is recorded in
  :attr:`FakeKfpApi.self_check_errors`); grpc-gateway v2 error bodies
  ``{"code": <grpc code>, "message": ..., "details": [google.rpc.Status]}`` with KFP's HTTP
  mapping (400 InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound,
  409 AlreadyExists); the upload handler's own ``{"error_message", "error_details"}`` bodies,
  including its quirks (an unknown ``pipelineid`` or a refused identity is a 400 there).
- **Server rules that are not in the swagger**, from KFP 2.17's API server: a duplicate
  pipeline name (per namespace), version name (per pipeline) or experiment name (per
  namespace) is 409; run parameters are checked against the version's root input
  definitions (``validatePipelineJobInputs``); a recurring run needs ``max_concurrency`` in
  [1, 10] and a cron that robfig/cron v1.2.0's ``cron.Parse`` accepts (seconds first, 5 or 6
  fields, descriptors); filters and ``sort_by`` work on the fields KFP maps.
- **Auth**: with ``token`` set, every request must carry ``Authorization: Bearer <token>``
  (401 otherwise); tokens in ``forbidden_tokens`` authenticate but are denied (403). With
  ``multi_user=True``, listing or creating experiments and listing recurring runs need a
  namespace, as in KFP's multi-user mode.

Every request is recorded (method, path, query, headers, JSON body or multipart parts), so a
test can assert what the client sent, or that it sent nothing.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema
import yaml

SWAGGER_DIR = Path(__file__).resolve().parents[1] / "data" / "kfp"
SWAGGER_FILES = (
    "kfp_2.17.0_v2beta1_experiment.swagger.json",
    "kfp_2.17.0_v2beta1_pipeline.swagger.json",
    "kfp_2.17.0_v2beta1_pipeline.upload.swagger.json",
    "kfp_2.17.0_v2beta1_run.swagger.json",
    "kfp_2.17.0_v2beta1_recurring_run.swagger.json",
)
# google.rpc.Code values and the HTTP status grpc-gateway maps each to.
GRPC = {
    "InvalidArgument": (3, 400),
    "NotFound": (5, 404),
    "AlreadyExists": (6, 409),
    "PermissionDenied": (7, 403),
    "Unimplemented": (12, 501),
    "Internal": (13, 500),
    "Unavailable": (14, 503),
    "Unauthenticated": (16, 401),
}
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class KfpFault(Exception):
    """An error answer, as KFP's handler for the route would write it."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def grpc_error(kind: str, external: str, internal: str | None = None) -> KfpFault:
    """A grpc-gateway error as KFP's ``UserError.GRPCStatus`` makes it."""
    code, status = GRPC[kind]
    detail = {"@type": "type.googleapis.com/google.rpc.Status", "code": code, "message": external}
    message = internal or f"{kind}Error: {external}"
    return KfpFault(status, {"code": code, "message": message, "details": [detail]})


def gateway_error(kind: str, message: str) -> KfpFault:
    """An error grpc-gateway itself writes (decoding, routing): no KFP details."""
    code, status = GRPC[kind]
    return KfpFault(status, {"code": code, "message": message})


def upload_error(status: int, message: str, details: str = "") -> KfpFault:
    """An error of KFP's multipart upload handler (``writeErrorToResponse``)."""
    return KfpFault(status, {"error_message": message, "error_details": details or message})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    parts: dict[str, tuple[str | None, bytes]]


@dataclass(frozen=True)
class Operation:
    """One route of the swagger: method, path template and what it accepts and returns."""

    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    path_params: tuple[str, ...]
    query_params: dict[str, dict[str, Any]]
    form_params: dict[str, dict[str, Any]]
    body_validator: jsonschema.Draft4Validator | None
    response_validator: jsonschema.Draft4Validator | None
    multipart: bool


def _strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` on every object that lists properties."""
    if isinstance(schema, dict):
        strict = {key: _strict(value) for key, value in schema.items()}
        if "properties" in strict and "additionalProperties" not in strict:
            strict["additionalProperties"] = False
        return strict
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


_FORMATS = jsonschema.FormatChecker()


@_FORMATS.checks("int64")
@_FORMATS.checks("int32")
def _is_integer(value: object) -> bool:
    # protojson takes 64-bit integers as decimal strings (or numbers); "12abc" is refused.
    if isinstance(value, str):
        return re.fullmatch(r"-?\d+", value) is not None
    return True


@_FORMATS.checks("date-time", raises=ValueError)
def _is_timestamp(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _validator(schema: dict[str, Any], definitions: dict[str, Any]) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(
        {**schema, "definitions": definitions}, format_checker=_FORMATS
    )


def load_operations(directory: Path = SWAGGER_DIR) -> list[Operation]:
    """Every operation of the swagger files, the routes with fewest path parameters first."""
    operations = []
    for name in SWAGGER_FILES:
        document = json.loads((directory / name).read_text())
        strict_definitions = _strict(document["definitions"])
        for template, methods in document["paths"].items():
            for method, spec in methods.items():
                params = spec.get("parameters", [])
                names = tuple(p["name"] for p in params if p["in"] == "path")
                regex = re.escape(template)
                for param in names:
                    regex = regex.replace(re.escape("{" + param + "}"), r"([^/:]+)")
                body = next((p for p in params if p["in"] == "body"), None)
                ok = spec.get("responses", {}).get("200", {}).get("schema")
                operations.append(
                    Operation(
                        operation_id=spec["operationId"],
                        method=method.upper(),
                        template=template,
                        pattern=re.compile(f"^{regex}$"),
                        path_params=names,
                        query_params={p["name"]: p for p in params if p["in"] == "query"},
                        form_params={p["name"]: p for p in params if p["in"] == "formData"},
                        body_validator=(
                            _validator(_strict(body["schema"]), strict_definitions)
                            if body
                            else None
                        ),
                        response_validator=(
                            _validator(ok, document["definitions"]) if ok else None
                        ),
                        multipart="multipart/form-data" in spec.get("consumes", []),
                    )
                )
    return sorted(operations, key=lambda op: len(op.path_params))


# -- robfig/cron v1.2.0 cron.Parse, as KFP's API server calls it -----------------------------

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (
        1,
        12,
        {m: i for i, m in enumerate(_MONTH_NAMES, 1)},
    ),
    (0, 6, {d: i for i, d in enumerate(_DAY_NAMES)}),
)
_CRON_DEFAULTS = ("0", "0", "0", "*", "*", "*")
_GO_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")


def robfig_cron_error(spec: str) -> str | None:
    """robfig/cron v1.2.0's ``Parse`` error for ``spec``, or None when it parses."""
    if not spec:
        return "Empty spec string"
    if spec.startswith("@"):
        if spec in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"):
            return None
        if spec == "@hourly":
            return None
        if spec.startswith("@every "):
            duration = spec[len("@every ") :]
            ok = _GO_DURATION.match(duration) and duration not in ("", ".")
            return None if ok else f"Failed to parse duration {spec}"
        return f"Unrecognized descriptor: {spec}"
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        return f"Expected 5 to 6 fields, found {len(fields)}: {spec}"
    fields = fields + list(_CRON_DEFAULTS[len(fields) :])
    for text, (low, high, names) in zip(fields, _CRON_BOUNDS, strict=True):
        for expr in [e for e in text.split(",") if e]:
            span, *step = expr.split("/")
            if len(step) > 1:
                return f"Too many slashes: {expr}"
            bounds = span.split("-")
            if bounds[0] in ("*", "?"):
                start, end = low, high
            else:
                values = []
                for bound in bounds:
                    if bound.lower() in names:
                        values.append(names[bound.lower()])
                    elif re.fullmatch(r"[+-]?\d+", bound) and int(bound) >= 0:
                        values.append(int(bound))
                    else:
                        return f"Failed to parse int from {bound}"
                if len(values) > 2:
                    return f"Too many hyphens: {expr}"
                start, end = values[0], values[-1]
                if step and len(values) == 1:
                    end = high
            if step and (not step[0].isdigit() or int(step[0]) == 0):
                return f"Step of range should be a positive number: {expr}"
            if start < low:
                return f"Beginning of range ({start}) below minimum ({low}): {expr}"
            if end > high:
                return f"End of range ({end}) above maximum ({high}): {expr}"
            if start > end:
                return f"Beginning of range ({start}) beyond end of range ({end}): {expr}"
    return None


# -- filters and paging, on the API fields KFP maps to columns ------------------------------

_FILTER_KEYS = {
    "pipelines": {"pipeline_id", "name", "display_name", "created_at", "namespace"},
    "versions": {"pipeline_version_id", "name", "display_name", "created_at"},
    "experiments": {"experiment_id", "display_name", "created_at", "namespace", "storage_state"},
    "recurring_runs": {"recurring_run_id", "display_name", "created_at", "status"},
    "runs": {"run_id", "display_name", "created_at", "state", "storage_state"},
}


@functools.cache
def _filter_validator() -> jsonschema.Draft4Validator:
    # The `filter` query parameter is a JSON Filter message; only the merged file defines it.
    single = SWAGGER_DIR / "kfp_2.17.0_v2beta1_kfp_api_single_file.swagger.json"
    document = json.loads(single.read_text())
    return _validator({"$ref": "#/definitions/v2beta1Filter"}, _strict(document["definitions"]))


def _predicate_matches(item: Mapping[str, Any], predicate: Mapping[str, Any]) -> bool:
    value = item.get(predicate["key"])
    operation = predicate.get("operation", "OPERATION_UNSPECIFIED")
    wanted = predicate.get("string_value")
    if operation == "EQUALS":
        return value == wanted
    if operation == "NOT_EQUALS":
        return value != wanted
    if operation == "IS_SUBSTRING":
        return wanted is not None and wanted in str(value)
    if operation == "IN":
        return value in (predicate.get("string_values") or {}).get("values", [])
    raise grpc_error("InvalidArgument", f"Invalid filter operation {operation!r}")


@dataclass
class _State:
    pipelines: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    recurring_runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    answers: list[tuple[str, str, int]] = field(default_factory=list)
    faults: list[tuple[str, int, dict[str, Any], int]] = field(default_factory=list)
    ticks: int = 0


class FakeKfpApi:
    """The stand-in KFP API server; use as a context manager or call :meth:`close`.

    Args:
        token: the bearer token every request must carry; ``None`` for no auth (a
            single-user KFP reached through a port-forward).
        forbidden_tokens: tokens that authenticate but lack permission (403).
        multi_user: KFP's multi-user mode: experiments and recurring runs need a namespace.
        default_namespace: the namespace KFP fills in when a single-user request has none.
        tls: a server-side TLS context; the stand-in then serves https.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        forbidden_tokens: tuple[str, ...] = (),
        multi_user: bool = False,
        default_namespace: str = "kubeflow",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.token = token
        self.forbidden_tokens = forbidden_tokens
        self.multi_user = multi_user
        self.default_namespace = default_namespace
        self.operations = load_operations()
        self.self_check_errors: list[str] = []
        self._lock = threading.Lock()
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The API base URL (what ``--kfp-host`` takes)."""
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host!s}:{port}"

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeKfpApi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scripting and inspection -------------------------------------------------------------

    def fail_next(
        self, operation_id: str, status: int, body: dict[str, Any], times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of ``operation_id`` with ``status`` and ``body``."""
        with self._lock:
            self._state.faults.append((operation_id, status, body, times))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._state.requests)

    @property
    def answers(self) -> list[tuple[str, str, int]]:
        """``(method, path, HTTP status)`` of every answer so far, in order."""
        with self._lock:
            return list(self._state.answers)

    def _snapshot(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(getattr(self._state, kind).values()))

    @property
    def pipelines(self) -> list[dict[str, Any]]:
        return self._snapshot("pipelines")

    @property
    def versions(self) -> list[dict[str, Any]]:
        return self._snapshot("versions")

    @property
    def experiments(self) -> list[dict[str, Any]]:
        return self._snapshot("experiments")

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self._snapshot("runs")

    @property
    def recurring_runs(self) -> list[dict[str, Any]]:
        return self._snapshot("recurring_runs")

    # -- serving ------------------------------------------------------------------------------

    def _now(self) -> str:
        # A clock that moves one second per object, so created_at orders like creation.
        self._state.ticks += 1
        return (_EPOCH + timedelta(seconds=self._state.ticks)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def serve(
        self, method: str, raw_path: str, headers: dict[str, str], payload: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request: ``(HTTP status, JSON body)``; recorded with its status."""
        status, body = self._serve(method, raw_path, headers, payload)
        with self._lock:
            self._state.answers.append((method, urlsplit(raw_path).path, status))
        return status, body

    def _serve(
        self, method: str, raw_path: str, headers: dict[str, str], payload: bytes
    ) -> tuple[int, dict[str, Any]]:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        with self._lock:
            record = RecordedRequest(method, split.path, query, headers, None, {})
            self._state.requests.append(record)
            try:
                operation, path_values = self._route(method, split.path)
                body, parts = self._decode(operation, headers, payload)
                self._state.requests[-1] = RecordedRequest(
                    method, split.path, query, headers, body, parts
                )
                params = self._check_query(operation, query)
                for index, (op_id, status, fault_body, times) in enumerate(self._state.faults):
                    if op_id == operation.operation_id and times > 0:
                        self._state.faults[index] = (op_id, status, fault_body, times - 1)
                        return status, copy.deepcopy(fault_body)
                self._authenticate(operation, headers)
                answer = self._dispatch(operation, path_values, params, body, parts)
            except KfpFault as fault:
                return fault.status, fault.body
            except Exception as error:  # a defect of the stand-in: make the test see it
                self.self_check_errors.append(f"{method} {split.path}: {error!r}")
                return 500, {"code": 13, "message": f"stand-in failed: {error!r}"}
            if operation.response_validator is not None:
                problems = [e.message for e in operation.response_validator.iter_errors(answer)]
                if problems:
                    self.self_check_errors.append(f"{operation.operation_id}: {problems}")
                    return 500, {"code": 13, "message": "stand-in answered off-schema"}
            return 200, answer

    def _route(self, method: str, path: str) -> tuple[Operation, dict[str, str]]:
        allowed = False
        for operation in self.operations:
            match = operation.pattern.match(path)
            if match is None:
                continue
            if operation.method != method:
                allowed = True
                continue
            return operation, {
                name: unquote(value)
                for name, value in zip(operation.path_params, match.groups(), strict=True)
            }
        if allowed:
            raise gateway_error("Unimplemented", "Method Not Allowed")
        raise gateway_error("NotFound", "Not Found")

    def _decode(
        self, operation: Operation, headers: dict[str, str], payload: bytes
    ) -> tuple[Any, dict[str, tuple[str | None, bytes]]]:
        if operation.multipart:
            return None, self._multipart(operation, headers, payload)
        if operation.body_validator is None:
            return None, {}
        try:
            body = json.loads(payload or b"{}")
        except ValueError as error:
            raise gateway_error("InvalidArgument", f"unexpected JSON body: {error}") from None
        problems = sorted(
            operation.body_validator.iter_errors(body), key=lambda e: list(e.absolute_path)
        )
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first.absolute_path) or "(body)"
            raise gateway_error(
                "InvalidArgument", f"proto: invalid value at {where}: {first.message}"
            )
        return body, {}

    def _multipart(
        self, operation: Operation, headers: dict[str, str], payload: bytes
    ) -> dict[str, tuple[str | None, bytes]]:
        content_type = headers.get("content-type", "")
        fail = (
            "Failed to create a pipeline version"
            if "version" in operation.template
            else ("Failed to read pipeline from file")
        )
        if not content_type.startswith("multipart/form-data"):
            raise upload_error(
                400, fail, f"request Content-Type isn't multipart/form-data: {content_type!r}"
            )
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + payload
        )
        if not message.is_multipart():
            raise upload_error(400, fail, "multipart: NextPart: EOF")
        parts: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            content = part.get_payload(decode=True)
            parts[str(name)] = (part.get_filename(), content if isinstance(content, bytes) else b"")
        unknown = sorted(set(parts) - set(operation.form_params))
        if unknown:
            raise upload_error(400, fail, f"form fields not in the swagger: {unknown}")
        for name, spec in operation.form_params.items():
            if spec.get("required") and (name not in parts or parts[name][0] is None):
                raise upload_error(400, fail, "http: no such file")
        return parts

    def _authenticate(self, operation: Operation, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        sent = headers.get("authorization", "")
        token = sent.removeprefix("Bearer ") if sent.startswith("Bearer ") else None
        if token != self.token and token not in self.forbidden_tokens:
            if operation.multipart:  # the upload handler answers 400 for any auth failure
                raise upload_error(400, "Failed to create a pipeline", "Authorization Failure")
            raise grpc_error(
                "Unauthenticated",
                "Failed to check authorization. User identity is empty in the request header",
            )
        if token in self.forbidden_tokens:
            if operation.multipart:
                raise upload_error(400, "Failed to create a pipeline", "Authorization Failure")
            raise grpc_error(
                "PermissionDenied",
                "User 'system:serviceaccount:kaizen:someone' is not authorized with reason: "
                "(request: pipelines.kubeflow.org)",
            )

    def _check_query(self, operation: Operation, query: dict[str, list[str]]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, values in query.items():
            spec = operation.query_params.get(name)
            if spec is None:
                raise gateway_error(
                    "InvalidArgument",
                    f"query parameter {name!r} is not in KFP's swagger for "
                    f"{operation.operation_id} (known: {sorted(operation.query_params)})",
                )
            value: Any = values[-1]
            if spec.get("type") == "integer":
                if not re.fullmatch(r"-?\d+", value):
                    raise gateway_error(
                        "InvalidArgument", f'parsing field "{name}": {value!r} is not an integer'
                    )
                value = int(value)
            elif spec.get("type") == "boolean":
                if value not in ("true", "false"):
                    raise gateway_error("InvalidArgument", f'parsing field "{name}": bad boolean')
                value = value == "true"
            if "enum" in spec and value not in spec["enum"]:
                raise gateway_error(
                    "InvalidArgument", f'parsing field "{name}": bad enum {value!r}'
                )
            params[name] = value
        return params

    def _dispatch(
        self,
        operation: Operation,
        path: dict[str, str],
        query: dict[str, Any],
        body: Any,
        parts: dict[str, tuple[str | None, bytes]],
    ) -> dict[str, Any]:
        handlers: dict[str, Callable[[], dict[str, Any]]] = {
            "PipelineService_GetPipelineByName": lambda: self._pipeline_by_name(path, query),
            "PipelineService_GetPipeline": lambda: self._pipeline(path["pipeline_id"]),
            "PipelineService_CreatePipeline": lambda: self._create_pipeline(body),
            "UploadPipelineVersion": lambda: self._upload_version(query, parts),
            "PipelineService_ListPipelineVersions": lambda: self._list_versions(path, query),
            "PipelineService_GetPipelineVersion": lambda: self._version(path),
            "ExperimentService_ListExperiments": lambda: self._list_experiments(query),
            "ExperimentService_CreateExperiment": lambda: self._create_experiment(body),
            "ExperimentService_GetExperiment": lambda: self._experiment(path["experiment_id"]),
            "RunService_CreateRun": lambda: self._create_run(body, query),
            "RunService_GetRun": lambda: self._run(path["run_id"]),
            "RunService_ListRuns": lambda: self._list_runs(query),
            "RecurringRunService_CreateRecurringRun": lambda: self._create_recurring(body),
            "RecurringRunService_ListRecurringRuns": lambda: self._list_recurring(query),
            "RecurringRunService_GetRecurringRun": lambda: self._recurring(path),
            "RecurringRunService_EnableRecurringRun": lambda: self._switch(path, True),
            "RecurringRunService_DisableRecurringRun": lambda: self._switch(path, False),
            "RecurringRunService_DeleteRecurringRun": lambda: self._delete_recurring(path),
        }
        handler = handlers.get(operation.operation_id)
        if handler is None:
            raise gateway_error(
                "Unimplemented", f"{operation.operation_id} is not served by the stand-in"
            )
        return handler()

    # -- filters and pages --------------------------------------------------------------------

    def _select(
        self, items: list[dict[str, Any]], kind: str, query: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str]:
        if query.get("filter"):
            try:
                parsed = json.loads(query["filter"])
            except ValueError:
                raise grpc_error("InvalidArgument", "Invalid filter: not JSON") from None
            problems = list(_filter_validator().iter_errors(parsed))
            if problems:
                raise grpc_error("InvalidArgument", f"Invalid filter: {problems[0].message}")
            for predicate in parsed.get("predicates", []):
                if predicate.get("key") not in _FILTER_KEYS[kind]:
                    raise grpc_error(
                        "InvalidArgument",
                        f"no support for filtering on unrecognized field {predicate.get('key')!r}",
                    )
                items = [item for item in items if _predicate_matches(item, predicate)]
        sort_by = str(query.get("sort_by") or "created_at")
        key, _, order = sort_by.partition(" ")
        if key not in _FILTER_KEYS[kind] or order not in ("", "asc", "desc"):
            raise grpc_error("InvalidArgument", f"Invalid sorting field: {sort_by!r}")
        items = sorted(items, key=lambda item: str(item.get(key, "")), reverse=order == "desc")
        offset = 0
        if query.get("page_token"):
            try:
                offset = int(base64.urlsafe_b64decode(query["page_token"]).decode())
            except ValueError:
                raise grpc_error("InvalidArgument", "Invalid page token") from None
        size = int(query.get("page_size") or 20)
        if size < 0:
            raise grpc_error("InvalidArgument", "page_size must not be negative")
        page = items[offset : offset + size]
        more = offset + size < len(items)
        token = base64.urlsafe_b64encode(str(offset + size).encode()).decode() if more else ""
        return [copy.deepcopy(item) for item in page], token

    def _namespace(self, given: str | None, what: str) -> str:
        if given:
            return given
        if self.multi_user:
            raise grpc_error(
                "InvalidArgument",
                f"Invalid input error: In multi-user mode, {what} requires a namespace",
            )
        return self.default_namespace

    # -- pipelines and versions ---------------------------------------------------------------

    def _pipeline(self, pipeline_id: str) -> dict[str, Any]:
        found = self._state.pipelines.get(pipeline_id)
        if found is None:
            raise grpc_error("NotFound", f"Pipeline {pipeline_id} not found")
        return copy.deepcopy(found)

    def _pipeline_by_name(self, path: dict[str, str], query: dict[str, Any]) -> dict[str, Any]:
        name = path["name"]
        namespace = query.get("namespace") or ""
        for pipeline in self._state.pipelines.values():
            if pipeline["name"] == name and pipeline.get("namespace", "") == namespace:
                return copy.deepcopy(pipeline)
        raise grpc_error(
            "NotFound",
            f"Pipeline {name} not found",
            f"Failed to get a pipeline with name {name} and namespace {namespace}. Check error "
            f"stack.: ResourceNotFoundError: Pipeline {name} not found",
        )

    def _create_pipeline(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name") or body.get("display_name")
        if not name:
            raise grpc_error(
                "InvalidArgument", "Pipeline name is empty. Please specify a valid name"
            )
        namespace = body.get("namespace", "")
        for pipeline in self._state.pipelines.values():
            if pipeline["name"] == name and pipeline.get("namespace", "") == namespace:
                raise grpc_error(
                    "AlreadyExists",
                    f'Failed to create a new pipeline. The name "{name}" already exists. '
                    "Please specify a new name",
                )
        pipeline_id = str(uuid.uuid4())
        pipeline = {
            "pipeline_id": pipeline_id,
            "name": name,
            "display_name": body.get("display_name") or name,
            "created_at": self._now(),
        }
        if body.get("description"):
            pipeline["description"] = body["description"]
        if namespace:
            pipeline["namespace"] = namespace
        self._state.pipelines[pipeline_id] = pipeline
        return copy.deepcopy(pipeline)

    def _upload_version(
        self, query: dict[str, Any], parts: dict[str, tuple[str | None, bytes]]
    ) -> dict[str, Any]:
        fail = "Failed to create a pipeline version"
        filename, content = parts["uploadfile"]
        if not str(filename).endswith((".yaml", ".yml", ".json")):
            raise upload_error(
                400, fail, "Unexpected pipeline file format. Support .zip, .tar.gz, .json or YAML"
            )
        pipeline_id = query.get("pipelineid")
        if not pipeline_id:
            raise upload_error(400, fail, "Error reading pipeline id")
        if pipeline_id not in self._state.pipelines:
            # FetchNamespaceFromPipelineId fails first, and the handler maps that to 400.
            raise upload_error(
                400, fail, f"ResourceNotFoundError: Pipeline {pipeline_id} not found"
            )
        try:
            documents = [d for d in yaml.safe_load_all(content.decode("utf-8")) if d is not None]
        except (UnicodeDecodeError, yaml.YAMLError) as error:
            raise upload_error(
                400, f"Invalid input error: invalid pipeline spec: {error}"
            ) from None
        spec = documents[0] if documents else None
        if not isinstance(spec, dict) or not (spec.get("pipelineInfo") or {}).get("name"):
            raise upload_error(
                400, "Invalid input error: pipeline spec is invalid: no pipelineInfo.name"
            )
        name = query.get("name") or query.get("display_name") or str(filename).rsplit(".", 1)[0]
        for version in self._state.versions.values():
            if version["pipeline_id"] == pipeline_id and version["name"] == name:
                raise upload_error(
                    409,
                    fail,
                    f"Already exist error: Failed to create a pipeline version "
                    f"{name} for pipeline {pipeline_id}",
                )
        version_id = str(uuid.uuid4())
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": version_id,
            "name": name,
            "display_name": query.get("display_name") or name,
            "created_at": self._now(),
            "pipeline_spec": spec,
        }
        if query.get("description"):
            version["description"] = query["description"]
        self._state.versions[version_id] = version
        return copy.deepcopy(version)

    def _list_versions(self, path: dict[str, str], query: dict[str, Any]) -> dict[str, Any]:
        pipeline_id = path["pipeline_id"]
        self._pipeline(pipeline_id)
        mine = [v for v in self._state.versions.values() if v["pipeline_id"] == pipeline_id]
        page, token = self._select(mine, "versions", query)
        answer: dict[str, Any] = {"pipeline_versions": page, "total_size": len(page)}
        if token:
            answer["next_page_token"] = token
        return answer

    def _version(self, path: dict[str, str]) -> dict[str, Any]:
        version = self._state.versions.get(path["pipeline_version_id"])
        if version is None or version["pipeline_id"] != path["pipeline_id"]:
            raise grpc_error("NotFound", f"PipelineVersion {path['pipeline_version_id']} not found")
        return copy.deepcopy(version)

    # -- experiments --------------------------------------------------------------------------

    def _experiment(self, experiment_id: str) -> dict[str, Any]:
        found = self._state.experiments.get(experiment_id)
        if found is None:
            raise grpc_error("NotFound", f"Experiment {experiment_id} not found")
        return copy.deepcopy(found)

    def _list_experiments(self, query: dict[str, Any]) -> dict[str, Any]:
        namespace = self._namespace(query.get("namespace"), "listing experiments")
        mine = [e for e in self._state.experiments.values() if e["namespace"] == namespace]
        page, token = self._select(mine, "experiments", query)
        answer: dict[str, Any] = {"experiments": page, "total_size": len(page)}
        if token:
            answer["next_page_token"] = token
        return answer

    def _create_experiment(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("display_name")
        if not name:
            raise grpc_error(
                "InvalidArgument",
                "Experiment name is empty. Please specify a valid experiment name",
            )
        namespace = self._namespace(body.get("namespace"), "creating an experiment")
        for experiment in self._state.experiments.values():
            if experiment["display_name"] == name and experiment["namespace"] == namespace:
                raise grpc_error(
                    "AlreadyExists",
                    f'Failed to create a new experiment. The name "{name}" already exists',
                )
        experiment_id = str(uuid.uuid4())
        experiment = {
            "experiment_id": experiment_id,
            "display_name": name,
            "namespace": namespace,
            "created_at": self._now(),
            "storage_state": "AVAILABLE",
        }
        if body.get("description"):
            experiment["description"] = body["description"]
        self._state.experiments[experiment_id] = experiment
        return copy.deepcopy(experiment)

    # -- runs and recurring runs --------------------------------------------------------------

    def _referenced_spec(self, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        reference = body.get("pipeline_version_reference") or {}
        pipeline_id = reference.get("pipeline_id")
        if not pipeline_id:
            raise grpc_error("InvalidArgument", "Invalid input error: pipeline id is required")
        self._pipeline(pipeline_id)
        version_id = reference.get("pipeline_version_id")
        versions = [v for v in self._state.versions.values() if v["pipeline_id"] == pipeline_id]
        if version_id:
            version = self._state.versions.get(version_id)
            if version is None or version["pipeline_id"] != pipeline_id:
                raise grpc_error("NotFound", f"PipelineVersion {version_id} not found")
        elif versions:
            version = max(versions, key=lambda v: v["created_at"])
        else:
            raise grpc_error("NotFound", f"Pipeline {pipeline_id} has no version")
        experiment_id = body.get("experiment_id")
        if experiment_id:
            experiment = self._experiment(experiment_id)
        else:
            experiment = {"namespace": self.default_namespace}
        self._check_parameters(version["pipeline_spec"], body.get("runtime_config") or {})
        return version, experiment

    @staticmethod
    def _check_parameters(spec: dict[str, Any], runtime_config: dict[str, Any]) -> None:
        declared = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
        given = runtime_config.get("parameters") or {}
        kinds = {
            "NUMBER_DOUBLE": ((int, float), "double or integer"),
            "NUMBER_INTEGER": ((int, float), "double or integer"),
            "STRING": ((str,), "string"),
            "BOOLEAN": ((bool,), "bool"),
            "LIST": ((list,), "list"),
            "STRUCT": ((dict,), "struct"),
        }
        for name, parameter in declared.items():
            if name not in given:
                if not parameter.get("isOptional") and "defaultValue" not in parameter:
                    raise grpc_error(
                        "InvalidArgument",
                        f"parameter {name} is not optional, yet has neither default value nor "
                        "user provided value",
                    )
                continue
            value = given[name]
            types, words = kinds[parameter["parameterType"]]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise grpc_error(
                    "InvalidArgument",
                    f"input parameter {name} requires type {words}, but the input parameter is "
                    "not of that value type",
                )
        extra = sorted(set(given) - set(declared))
        if extra:
            raise grpc_error(
                "InvalidArgument",
                f"parameter(s) provided are not required by pipeline: {', '.join(extra)}",
            )

    def _create_run(self, body: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
        if not body.get("display_name"):
            raise grpc_error("InvalidArgument", "Invalid input error: run name is empty")
        version, _ = self._referenced_spec(body)
        run_id = str(uuid.uuid4())
        run = {
            **copy.deepcopy(body),
            "run_id": run_id,
            "experiment_id": body.get("experiment_id") or "default",
            "pipeline_version_reference": {
                "pipeline_id": version["pipeline_id"],
                "pipeline_version_id": version["pipeline_version_id"],
            },
            "storage_state": "AVAILABLE",
            "state": "PENDING",
            "created_at": self._now(),
        }
        self._state.runs[run_id] = run
        return copy.deepcopy(run)

    def _run(self, run_id: str) -> dict[str, Any]:
        run = self._state.runs.get(run_id)
        if run is None:
            raise grpc_error("NotFound", f"Run {run_id} not found")
        return copy.deepcopy(run)

    def _list_runs(self, query: dict[str, Any]) -> dict[str, Any]:
        # KFP lists the runs of one experiment, or of a namespace (required in multi-user mode
        # unless an experiment is given, whose namespace is then the one checked).
        runs = list(self._state.runs.values())
        if query.get("experiment_id"):
            self._experiment(query["experiment_id"])
            runs = [r for r in runs if r.get("experiment_id") == query["experiment_id"]]
        else:
            namespace = self._namespace(query.get("namespace"), "listing runs")
            in_namespace = {
                e["experiment_id"]
                for e in self._state.experiments.values()
                if e.get("namespace", self.default_namespace) == namespace
            }
            runs = [r for r in runs if r.get("experiment_id") in in_namespace]
        page, token = self._select(runs, "runs", query)
        answer: dict[str, Any] = {"runs": page, "total_size": len(page)}
        if token:
            answer["next_page_token"] = token
        return answer

    def _create_recurring(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("display_name"):
            raise grpc_error("InvalidArgument", "Invalid input error: recurring run name is empty")
        concurrency = int(body.get("max_concurrency") or 0)
        if not 1 <= concurrency <= 10:
            raise grpc_error(
                "InvalidArgument",
                "Max concurrency of a recurring run must be at least 1 and at most 10. "
                f"Received {concurrency}",
            )
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron")
        if not body.get("trigger"):
            raise grpc_error("InvalidArgument", "Invalid input error: trigger is required")
        if cron is not None:
            error = robfig_cron_error(cron)
            if error:
                raise grpc_error(
                    "InvalidArgument",
                    "Schedule cron is not a supported format(https://godoc.org/github.com/robfig/cron)."
                    f" Error: {error}",
                )
        version, experiment = self._referenced_spec(body)
        recurring_id = str(uuid.uuid4())
        now = self._now()
        recurring = {
            **copy.deepcopy(body),
            "recurring_run_id": recurring_id,
            "pipeline_version_reference": {
                "pipeline_id": version["pipeline_id"],
                "pipeline_version_id": version["pipeline_version_id"],
            },
            "namespace": experiment["namespace"],
            "status": "DISABLED" if body.get("mode") == "DISABLE" else "ENABLED",
            "created_at": now,
            "updated_at": now,
        }
        self._state.recurring_runs[recurring_id] = recurring
        return copy.deepcopy(recurring)

    def _recurring(self, path: dict[str, str]) -> dict[str, Any]:
        found = self._state.recurring_runs.get(path["recurring_run_id"])
        if found is None:
            raise grpc_error("NotFound", f"RecurringRun {path['recurring_run_id']} not found")
        return copy.deepcopy(found)

    def _list_recurring(self, query: dict[str, Any]) -> dict[str, Any]:
        namespace = self._namespace(query.get("namespace"), "listing recurring runs")
        mine = [r for r in self._state.recurring_runs.values() if r["namespace"] == namespace]
        if query.get("experiment_id"):
            mine = [r for r in mine if r.get("experiment_id") == query["experiment_id"]]
        page, token = self._select(mine, "recurring_runs", query)
        answer: dict[str, Any] = {"recurringRuns": page, "total_size": len(page)}
        if token:
            answer["next_page_token"] = token
        return answer

    def _switch(self, path: dict[str, str], enabled: bool) -> dict[str, Any]:
        recurring = self._state.recurring_runs.get(path["recurring_run_id"])
        if recurring is None:
            raise grpc_error("NotFound", f"RecurringRun {path['recurring_run_id']} not found")
        recurring["status"] = "ENABLED" if enabled else "DISABLED"
        recurring["mode"] = "ENABLE" if enabled else "DISABLE"
        recurring["updated_at"] = self._now()
        return {}

    def _delete_recurring(self, path: dict[str, str]) -> dict[str, Any]:
        if self._state.recurring_runs.pop(path["recurring_run_id"], None) is None:
            raise grpc_error("NotFound", f"RecurringRun {path['recurring_run_id']} not found")
        return {}


def _handler_for(fake: FakeKfpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, body = fake.serve(self.command, self.path, headers, payload)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
