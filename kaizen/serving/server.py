"""The Kaizen model server: KServe's REST app with limits, honest health and a graceful stop.

``python -m kaizen.serving.server`` serves the model named ``--model-name`` over KServe's V1
(``/v1/models/<name>:predict``) and V2 (``/v2/models/<name>/infer``) protocols with
Prometheus metrics at ``/metrics``. It is KServe's own FastAPI app (``kserve.model_server:app``
built by a :class:`kserve.protocol.rest.server.RESTServer` subclass) run by our own uvicorn
server, which adds what a production endpoint needs and KServe 0.21 does not give:

* **Limits.** Bodies over ``--max-body-bytes`` get 413, judged on ``Content-Length`` or, for
  chunked uploads, on the bytes received, so a body is never buffered much past the limit. Each
  request runs within ``--request-timeout`` seconds (504).
* **Errors.** Every error is ``{"error": message}``; an unexpected exception is logged with
  its trace and answered 500 with a request id only, so no response carries a stack trace.
  Request-shape errors from FastAPI's validation are 400 naming the field.
* **Health.** Liveness (``/``, ``/v2/health/live``) answers 200 while the process runs.
  Readiness (``/v2/health/ready``, ``/v2/models/<name>/ready``, ``/v1/models/<name>``) answers
  503 until every model is loaded and warmed (loading starts once the port is open, so
  liveness answers during a slow load) and again once a stop signal has arrived.
* **Graceful stop.** SIGTERM or SIGINT marks the server draining (readiness 503) for
  ``--drain-seconds`` while it keeps serving, then stops accepting connections, lets
  in-flight requests finish and exits 0. A second signal skips the rest of the drain, a
  third stops without waiting.
* **OpenAPI.** ``/openapi.json`` documents the real request bodies of V1 and V2 (KServe's V1
  route reads a raw request, so its generated schema has none).

KServe's model-repository load/unload routes are not served (any client could unload the
model), nor are the ``versions/<v>`` and ``:explain`` routes, which KServe answers 501.

What this takes of KServe beyond its public API (RESTServer's private hooks, its route
handlers, the data plane, its logging setup) is in :mod:`kaizen.serving.kserve_adapter`,
which refuses a KServe version it was not written for.

This module imports KServe, FastAPI and uvicorn only inside functions: ``kaizen serve``
imports :class:`ServingConfig` and must start fast.

Run it::

    python -m kaizen.serving.server --http-port 8080 --feature-repo feature_repo
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import re
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kaizen.platform.names import DEFAULT_MODEL_NAME
from kaizen.serving import kserve_adapter
from kaizen.serving.schema import DEFAULT_MAX_BATCH, MAX_FEEDBACK_ITEMS

if TYPE_CHECKING:
    import kserve
    from fastapi import APIRouter, FastAPI, Request
    from fastapi.responses import Response
    from kserve.protocol.dataplane import DataPlane

    from kaizen.platform.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 2.0
# In-flight requests get this long to finish after the listener closes; they are bounded by
# the request timeout once their body has arrived, so this only cuts off stalled uploads.
GRACEFUL_SHUTDOWN_SECONDS = 30
REJECTION_REASONS = (
    "body_too_large",
    "timeout",
    "prediction_failed",
    "internal_error",
    "not_ready",
    "draining",
)

# Named explicitly: run with -m, this module is __main__.
logger = logging.getLogger("kaizen.serving.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class ServingConfig:
    """Everything ``python -m kaizen.serving.server`` is started with; validated on creation.

    Attributes:
        host: Interface to bind (loopback by default; ``0.0.0.0`` in a container).
        http_port: HTTP port.
        model_name: Model name in the URLs.
        feature_repo: Feast repo for entity requests; None serves feature vectors only.
        threshold: Probability at or above which ``is_fraud`` is true; None: each model
            version's recorded threshold (0.5 for a version without one).
        max_batch: Most instances (V1) or rows (V2) per request.
        max_body_bytes: Largest request body accepted (413 beyond).
        request_timeout: Seconds one request may take (504 beyond).
        drain_seconds: Seconds between a stop signal and closing the listener, during
            which readiness is 503 and requests are still served.
        canary_share: Share of requests sent to a challenger.
        canary_min_requests: Challenger requests before the canary is judged.
        reload_interval: Seconds between checks of the registry aliases.
        canary: False serves the champion only, even when a challenger exists.
        access_log: Log one line per request (uvicorn's access log). Off by default: at
            100 requests/s that is 8.6 million lines a day, every refused or failed request
            is logged anyway, and the Prometheus metrics count and time all of them.

    Raises:
        ValueError: naming the first field outside its range.
    """

    host: str = DEFAULT_HOST
    http_port: int = DEFAULT_HTTP_PORT
    model_name: str = DEFAULT_MODEL_NAME
    feature_repo: Path | None = None
    threshold: float | None = None
    max_batch: int = DEFAULT_MAX_BATCH
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    drain_seconds: float = 0.0
    canary_share: float = 0.1
    canary_min_requests: int = 200
    reload_interval: float = 2.0
    canary: bool = True
    access_log: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("host", bool(self.host), "a host name or address"),
            ("http_port", 0 <= self.http_port <= 65535, "a port in 0..65535"),
            ("model_name", re.fullmatch(r"[\w.-]+", self.model_name) is not None, "a name"),
            ("threshold", self.threshold is None or 0.0 <= self.threshold <= 1.0, "within [0, 1]"),
            ("max_batch", self.max_batch >= 1, "at least 1"),
            ("max_body_bytes", self.max_body_bytes >= 1, "at least 1"),
            ("request_timeout", 0 < self.request_timeout < math.inf, "positive seconds"),
            ("drain_seconds", 0 <= self.drain_seconds < math.inf, "zero or more seconds"),
            (
                "canary_share",
                0.0 <= self.canary_share < 1.0,
                "within [0, 1) (0 turns the canary off)",
            ),
            ("canary_min_requests", self.canary_min_requests >= 1, "at least 1"),
            ("reload_interval", 0 < self.reload_interval < math.inf, "positive seconds"),
        ]
        for field, valid, expected in checks:
            if not valid:
                raise ValueError(f"{field} must be {expected}, got {getattr(self, field)!r}")


def parse_args(argv: Sequence[str] | None = None) -> ServingConfig:
    """Read the command line of ``python -m kaizen.serving.server``.

    Args:
        argv: Arguments (``sys.argv[1:]`` when None).

    Returns:
        The validated configuration; a bad value exits with status 2 naming the option.
    """
    defaults = ServingConfig()
    parser = argparse.ArgumentParser(
        prog="python -m kaizen.serving.server",
        description="Serve the registry's fraud model over KServe V1 and V2.",
    )
    parser.add_argument("--host", default=defaults.host)
    parser.add_argument("--http-port", type=int, default=defaults.http_port)
    parser.add_argument("--model-name", default=defaults.model_name)
    parser.add_argument("--feature-repo", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=defaults.threshold)
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument(
        "--request-timeout", type=float, default=defaults.request_timeout, help="seconds"
    )
    parser.add_argument(
        "--drain-seconds", type=float, default=defaults.drain_seconds, help="seconds"
    )
    parser.add_argument("--canary-share", type=float, default=defaults.canary_share)
    parser.add_argument("--canary-min-requests", type=int, default=defaults.canary_min_requests)
    parser.add_argument(
        "--reload-interval", type=float, default=defaults.reload_interval, help="seconds"
    )
    parser.add_argument("--no-canary", dest="canary", action="store_false")
    parser.add_argument(
        "--access-log", action="store_true", help="log one line per request (off by default)"
    )
    args = parser.parse_args(argv)
    try:
        return ServingConfig(**vars(args))
    except ValueError as error:
        option = str(error).split(" ", 1)[0].replace("_", "-")
        parser.error(f"--{option}: {error}")
    raise AssertionError("unreachable: parser.error exits")  # pragma: no cover


def server_arguments(choices: Mapping[str, object]) -> list[str]:
    """The command line of ``python -m kaizen.serving.server`` for the options a user chose.

    Args:
        choices: ``ServingConfig`` field names to values; None means "the server's default"
            and is left out; ``canary=False`` and ``access_log=True`` become the flags.

    Returns:
        ``["--http-port", "8080", ...]``, options in ``ServingConfig`` field order.

    Raises:
        ValueError: a name that is not a ``ServingConfig`` field.
    """
    known = [field.name for field in fields(ServingConfig)]
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise ValueError(f"unknown server option(s) {unknown}; expected some of {known}")
    args: list[str] = []
    for name in known:
        value = choices.get(name)
        if value is None:
            continue
        if name == "canary":
            args += [] if value else ["--no-canary"]
        elif name == "access_log":
            args += ["--access-log"] if value else []
        else:
            args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def build_models(config: ServingConfig, settings: Settings) -> list[kserve.Model]:
    """The models to serve, not loaded yet: :func:`serve` loads them once its port is open.

    Args:
        config: The serving configuration.
        settings: Kaizen settings (registry, ``KAIZEN_HOME``, webhook), read by :func:`main`.

    Returns:
        One :class:`~kaizen.serving.router.ModelRouter`: the registry's champion, and its
        challenger behind the canary unless ``config.canary`` is off or the share is 0.
    """
    from kaizen.serving.canary import CanaryPolicy
    from kaizen.serving.router import ModelRouter

    canary = config.canary and 0.0 < config.canary_share < 1.0
    policy = (
        CanaryPolicy(share=config.canary_share, min_requests=config.canary_min_requests)
        if canary
        else CanaryPolicy(min_requests=config.canary_min_requests)
    )
    return [
        ModelRouter(
            config.model_name,
            settings=settings,
            feature_repo=config.feature_repo,
            threshold=config.threshold,
            max_batch=config.max_batch,
            request_timeout=config.request_timeout,
            policy=policy,
            reload_interval=config.reload_interval,
            canary=canary,
        )
    ]


def feedback_routes(models: Sequence[kserve.Model]) -> list[APIRouter]:
    """The feedback endpoint of every canary router among ``models``."""
    from kaizen.serving.router import ModelRouter, feedback_route

    return [feedback_route(model) for model in models if isinstance(model, ModelRouter)]


def serve(
    models: list[kserve.Model], config: ServingConfig, *, routers: Sequence[APIRouter] = ()
) -> None:
    """Serve ``models`` until a stop signal, then drain and return.

    Binds ``config.host:config.http_port`` first, then calls ``load()`` (in a worker
    thread) on every model that is not ready yet and ``start()`` once it is; readiness
    answers 503 until then. After the stop, ``stop()`` is called on every model.

    Args:
        models: KServe models, each registered under its ``name``.
        config: The serving configuration.
        routers: Extra FastAPI routers to serve beside KServe's routes (same limits and
            error handling).

    Raises:
        Exception: whatever a model's ``load()`` raised (the server shuts down first).
        SystemExit: uvicorn could not bind the port.
    """
    if not models:
        raise ValueError("serve: no models given")
    # KServe's model server, its per-request trace lines off and NaN tokens in a V1 body
    # reaching validation (see kaizen.serving.kserve_adapter).
    model_server = kserve_adapter.new_model_server(
        http_port=config.http_port, grace_period=GRACEFUL_SHUTDOWN_SECONDS
    )
    # uvloop when installed, as uvicorn would pick for itself.
    with asyncio.Runner(loop_factory=kserve_adapter.event_loop_factory()) as runner:
        runner.run(_run(models, config, model_server, list(routers)))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m kaizen.serving.server``; exits 1 if a model fails to load.

    The one place the server reads its settings (``KAIZEN_*``); everything below gets them
    as an argument.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when None).
    """
    from kaizen.platform.settings import load_settings

    config = parse_args(argv)
    # Start-up builds millions of long-lived objects (TensorFlow, Feast, pandas) and almost
    # no garbage; the collector's full passes over them cost 3-4 s of a 13 s start (the
    # heap measured the same). _settle_heap turns it back on once the models are loaded.
    gc.disable()
    _configure_logging()
    kserve_adapter.quiet_known_warnings()
    try:
        models = build_models(config, load_settings())
        serve(models, config, routers=feedback_routes(models))
    except Exception as error:
        logger.error("kaizen serving stopped: %s: %s", type(error).__name__, error)
        raise SystemExit(1) from error


# --- metrics ---------------------------------------------------------------------------


class _HttpMetrics(NamedTuple):
    rejections: Any
    in_flight: Any


@functools.cache
def _metrics() -> _HttpMetrics:
    """HTTP-level metrics, created once per process in Prometheus' default registry."""
    from prometheus_client import Counter, Gauge

    rejections = Counter(
        "kaizen_serving_http_rejections",
        "Requests the HTTP layer answered with an error instead of a prediction, by reason.",
        ["reason"],
    )
    for reason in REJECTION_REASONS:
        rejections.labels(reason=reason)
    in_flight = Gauge(
        "kaizen_serving_http_requests_in_flight",
        "HTTP requests being received or answered (scrapes of /metrics excluded).",
    )
    return _HttpMetrics(rejections, in_flight)


def _reject(reason: str) -> None:
    _metrics().rejections.labels(reason=reason).inc()


# --- state, errors ---------------------------------------------------------------------


class _ServingState:
    """What readiness depends on: the models' own readiness, a failed load, draining."""

    def __init__(self, models: list[kserve.Model]) -> None:
        self.models = models
        self.draining = False
        self.load_error: BaseException | None = None
        # Set once every model is loaded and start-up garbage is collected (_settle_heap):
        # the collection blocks for most of a second, which must not hit routed traffic.
        self.started = False

    def not_ready_reason(self, model: kserve.Model | None = None) -> str | None:
        if self.draining:
            return "The server is draining before shutdown."
        if self.load_error is not None:
            return "Loading the model failed; see the server log."
        pending = [m.name for m in ([model] if model is not None else self.models) if not m.ready]
        if pending:
            return f"Still loading {', '.join(pending)}."
        if not self.started:
            return "Still starting."
        return None


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _request_id(headers: Any) -> str:
    # The id is echoed to the client and written to the log; only a plain token is reused.
    given = headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


def _internal_error(request_id: str, method: str, path: str, error: BaseException) -> Response:
    logger.error(
        "internal error (request id %s) on %s %s", request_id, method, path, exc_info=error
    )
    _reject("internal_error")
    return _error(
        500,
        f"internal error; see the server log (request id {request_id})",
        {"x-request-id": request_id},
    )


# Member names pydantic puts in the location of an error inside a union: KServe's V2 infer
# body is ``InferenceRequest | bytes``, and a JSON body is never meant as the bytes branch.
_UNION_MEMBERS = ("InferenceRequest", "bytes")


def _describe_validation_errors(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as ``inputs[0].shape: Field required; ...``."""
    problems: list[str] = []
    for item in errors:
        parts = list(item.get("loc", ()))
        if parts and parts[0] in ("body", "query", "path", "header"):
            parts = parts[1:]
        if item.get("type") == "json_invalid":
            detail = (item.get("ctx") or {}).get("error", "")
            where = f" at character {parts[0]}" if parts else ""
            problems.append(f"request body: invalid JSON{where}: {detail or item.get('msg')}")
            continue
        if parts and parts[0] == "bytes":
            continue
        if parts and parts[0] in _UNION_MEMBERS:
            parts = parts[1:]
        location = ""
        for part in parts:
            if isinstance(part, int):
                location += f"[{part}]"
            else:
                location += f".{part}" if location else str(part)
        problems.append(f"{location or 'request body'}: {item.get('msg', 'invalid')}")
    return "; ".join(problems) or "request body: invalid"


# --- the ASGI guard: body limit, in-flight count, last-resort errors --------------------


class _HttpGuard:
    """Outermost app middleware: refuses oversized bodies and catches what nothing else did.

    A body with ``Content-Length`` over the limit is refused before any of it is read. A
    body without one (chunked) is read here, up to the limit, and handed to the app whole;
    the first chunk past the limit ends it with 413. Exceptions no handler turned into a
    response are logged with their trace and answered 500 with a request id.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = scope["path"] != "/metrics"
        in_flight = _metrics().in_flight
        if counted:
            in_flight.inc()
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            body_receive = await self._limit_body(scope, receive, tracked_send)
            if body_receive is not None:
                await self.app(scope, body_receive, tracked_send)
        except Exception as error:
            if started:
                raise
            from starlette.datastructures import Headers

            headers = Headers(scope=scope)
            response = _internal_error(_request_id(headers), scope["method"], scope["path"], error)
            await response(scope, receive, send)
        finally:
            if counted:
                in_flight.dec()

    async def _limit_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        limit = self.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            # Framing stops the body at its declared length, so the header alone decides.
            try:
                length = int(declared)
            except ValueError:
                await _error(400, f"Content-Length: expected a byte count, got {declared!r}")(
                    scope, receive, send
                )
                return None
            if length > limit:
                await self._too_large(scope, receive, send, f"request body is {length} bytes")
                return None
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away; nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(
                    scope, receive, send, f"request body is more than {limit} bytes"
                )
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return whole

        return replay

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        _reject("body_too_large")
        # The rest of the body is never read, so this connection cannot carry another request.
        response = _error(
            413,
            f"{size}; the limit is {self.max_body_bytes} bytes",
            {"connection": "close"},
        )
        await response(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


# --- the REST server -------------------------------------------------------------------


def _rest_server_class() -> type:
    """Build the REST server class lazily: its base class lives in KServe."""

    class KaizenRESTServer(kserve_adapter.rest_server_base()):  # type: ignore[misc]
        """KServe's REST server with our middleware, handlers, health routes and shutdown."""

        def __init__(
            self,
            model_server: kserve.ModelServer,
            config: ServingConfig,
            state: _ServingState,
            routers: list[APIRouter],
        ) -> None:
            # KServe binds 0.0.0.0 and lets uvicorn own the signals; we bind config.host
            # and drain first (see _GracefulServer).
            super().__init__(
                model_server,
                host=config.host,
                port=config.http_port,
                access_log=config.access_log,
                grace_period=GRACEFUL_SHUTDOWN_SECONDS,
                server_class=_graceful_server_class(),
            )
            self.serving = config
            self.state = state
            self.routers = routers

        def add_middlewares(self, app: FastAPI) -> None:
            # Not KServe's: its TimingMiddleware only feeds the kserve.trace lines serve()
            # turns off, and reads the process's CPU time (getrusage) twice per
            # request, about 7 % of the event loop's time at 500 requests/s here; its
            # access-log middleware is for a log format this server does not take.
            # The guard sees every request first: a refused body reaches nothing else.
            app.add_middleware(_HttpGuard, max_body_bytes=self.serving.max_body_bytes)

        def register_endpoints(self, app: FastAPI) -> None:
            # KServe's own handlers, minus what this server must not offer: repository
            # load/unload (any client could unload the model), ``:explain`` and the
            # ``versions/<v>`` routes (KServe answers 501), and readiness, which here also
            # depends on loading and draining.
            kserve_routes = self.kserve_routers(
                server_ready=self.server_ready, model_ready=self.model_ready
            )
            for router in (*kserve_routes, *self.routers):
                app.include_router(router)
            app.openapi = functools.partial(_openapi, app, self.dataplane, self.serving)  # type: ignore[method-assign]

        async def server_ready(self) -> dict[str, bool]:
            from kserve.errors import ServerNotReady

            reason = self.state.not_ready_reason()
            if reason is not None:
                raise ServerNotReady(reason)
            return {"ready": True}

        async def model_ready(self, model_name: str) -> dict[str, Any]:
            from kserve.errors import ModelNotFound, ModelNotReady

            model = self.dataplane.model_registry.get_model(model_name)
            if model is None:
                raise ModelNotFound(model_name)
            reason = self.state.not_ready_reason(model)
            if reason is not None:
                raise ModelNotReady(model_name, reason)
            return {"name": model_name, "ready": True}

        def add_exception_handlers(self, app: FastAPI) -> None:
            from fastapi.exceptions import RequestValidationError
            from kserve.errors import InvalidInput, ModelNotReady, ServerNotReady
            from starlette.exceptions import HTTPException

            from kaizen.serving.errors import PredictionFailedError, RequestTimeoutError

            super().add_exception_handlers(app)
            state = self.state

            async def invalid_input(request: Request, error: Exception) -> Response:
                # A client mistake, not a server fault: one line, no trace.
                logger.info("400 on %s: %s", request.url.path, error)
                return _error(400, str(error))

            async def request_validation(request: Request, error: Exception) -> Response:
                assert isinstance(error, RequestValidationError)
                problems = _describe_validation_errors(error.errors())
                logger.info("400 on %s: %s", request.url.path, problems)
                return _error(400, problems)

            async def timed_out(request: Request, error: Exception) -> Response:
                _reject("timeout")
                logger.warning("504 on %s: %s", request.url.path, error)
                return _error(504, str(error))

            async def prediction_failed(request: Request, error: Exception) -> Response:
                _reject("prediction_failed")
                logger.error("500 on %s: %s", request.url.path, error)
                return _error(500, str(error))

            async def not_ready(request: Request, error: Exception) -> Response:
                _reject("draining" if state.draining else "not_ready")
                return _error(503, str(error))

            async def http_error(request: Request, error: Exception) -> Response:
                assert isinstance(error, HTTPException)
                return _error(
                    error.status_code, str(error.detail), dict(error.headers or {}) or None
                )

            async def unexpected(request: Request, error: Exception) -> Response:
                return _internal_error(
                    _request_id(request.headers), request.method, request.url.path, error
                )

            app.add_exception_handler(InvalidInput, invalid_input)
            app.add_exception_handler(RequestValidationError, request_validation)
            app.add_exception_handler(RequestTimeoutError, timed_out)
            app.add_exception_handler(PredictionFailedError, prediction_failed)
            app.add_exception_handler(ModelNotReady, not_ready)
            app.add_exception_handler(ServerNotReady, not_ready)
            app.add_exception_handler(HTTPException, http_error)
            # Replaces KServe's handler, which answers "TypeName : str(exc)".
            app.add_exception_handler(Exception, unexpected)

    return KaizenRESTServer


@functools.cache
def _graceful_server_class() -> type:
    import uvicorn

    class _GracefulServer(uvicorn.Server):
        """uvicorn's server without its signal handling: serve() drains before stopping.

        uvicorn's own handlers stop at once and re-raise the signal after shutdown, so the
        process would end by SIGTERM (-15) rather than exit 0.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return _GracefulServer


async def _run(
    models: list[kserve.Model], config: ServingConfig, model_server: Any, routers: list[Any]
) -> None:
    kserve_adapter.register_models(model_server, models)
    state = _ServingState(models)
    rest = _rest_server_class()(model_server, config, state, routers)
    server = rest.uvicorn_server
    loop = asyncio.get_running_loop()

    def stop_now() -> None:
        server.should_exit = True

    def on_signal(number: int) -> None:
        name = signal.Signals(number).name
        if not state.draining:
            state.draining = True
            logger.info(
                "%s: draining for %g s (readiness answers 503), then finishing in-flight "
                "requests and exiting",
                name,
                config.drain_seconds,
            )
            loop.call_later(config.drain_seconds, stop_now)
        elif not server.should_exit:
            logger.info("%s again: ending the drain now", name)
            stop_now()
        else:
            logger.warning("%s again: exiting without waiting for in-flight requests", name)
            server.force_exit = True

    handled = (signal.SIGTERM, signal.SIGINT)
    for number in handled:
        loop.add_signal_handler(number, on_signal, number)
    loading = asyncio.create_task(_load(models, state, stop_now))
    try:
        await rest.start()
    finally:
        for number in handled:
            loop.remove_signal_handler(number)
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
    for model in models:
        model.stop()
    if state.load_error is not None:
        raise state.load_error
    logger.info("stopped cleanly")


async def _load(models: list[kserve.Model], state: _ServingState, stop: Callable[[], None]) -> None:
    """Load every model that is not ready, off the event loop; on failure, stop the server."""
    try:
        for model in models:
            if not model.ready:
                logger.info("loading model %s", model.name)
                loaded = await asyncio.to_thread(model.load)
                if not (loaded and model.ready):
                    raise RuntimeError(f"model {model.name}: load() finished but it is not ready")
            model.start()
        _settle_heap()
        state.started = True
        logger.info("ready: serving %s", ", ".join(model.name for model in models))
    except Exception as error:
        state.load_error = error
        logger.error("loading failed, shutting down: %s", error, exc_info=error)
        stop()


def _settle_heap() -> None:
    """Collect start-up garbage, keep what is left out of later collections, collect again.

    Everything alive once the models are loaded lives as long as the process; frozen, the
    collector's later full passes skip it instead of walking it while requests wait.
    """
    gc.collect()
    gc.freeze()
    gc.enable()


# --- OpenAPI ---------------------------------------------------------------------------


def _openapi(app: FastAPI, dataplane: DataPlane, config: ServingConfig) -> dict[str, Any]:
    """KServe's generated schema with the real V1 and V2 request bodies and error shapes."""
    from fastapi.openapi.utils import get_openapi

    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title="Kaizen fraud model server",
        version=app.version,
        description=(
            "KServe V1 and V2 (Open Inference Protocol) endpoints serving the registry's "
            'fraud model. Every error answers {"error": message}.'
        ),
        routes=app.routes,
    )
    registry = dataplane.model_registry.get_models()
    model = registry.get(config.model_name)
    features: list[str] = list(getattr(model, "features", None) or [])
    max_batch = int(getattr(model, "max_batch", config.max_batch))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(_body_schemas(features, max_batch, entities=config.feature_repo is not None))
    error = {"$ref": "#/components/schemas/Error"}
    paths = schema["paths"]
    names = sorted(registry)
    for path, operations in paths.items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "model_name" and names:
                    parameter["schema"] = {"type": "string", "enum": names}
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None or "{model_name}" in path:
                responses["400"] = _response("Invalid request, naming the field", error)
            if "{model_name}" in path:
                responses["404"] = _response("No model of that name", error)
                responses["503"] = _response("Model not loaded yet, or draining", error)
    paths["/v2/health/ready"]["get"]["responses"]["503"] = _response(
        "Loading, or draining before shutdown", error
    )
    paths["/metrics"]["get"]["responses"]["200"] = {
        "description": "Prometheus text exposition",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    bodies = {
        ("/v1/models/{model_name}:predict", "V1PredictRequest", "V1PredictResponse"),
        ("/v2/models/{model_name}/infer", "V2InferRequest", "V2InferResponse"),
    }
    for path, request, response in bodies:
        operation = paths[path]["post"]
        body: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{request}"}}
        if features:
            body["example"] = _example(request, features)
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
        operation["responses"].update(
            {
                "200": _response("Scores", {"$ref": f"#/components/schemas/{response}"}),
                "413": _response("Body over the size limit", error),
                "500": _response("The model failed (names its version)", error),
                "504": _response("Request timed out", error),
            }
        )
    feedback = paths.get(f"/v1/models/{config.model_name}/feedback", {}).get("post")
    if feedback is not None:
        feedback["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _FEEDBACK_REQUEST}},
        }
        feedback.setdefault("responses", {}).update(
            {
                "200": _response(
                    "Labels recorded; ids the server no longer remembers are listed",
                    _FEEDBACK_RESPONSE,
                ),
                "400": _response("Invalid feedback, naming the field", error),
                "413": _response("Body over the size limit", error),
                "503": _response("Labels not stored (object store unavailable); send again", error),
            }
        )
    if model is not None and model.ready:
        app.openapi_schema = schema  # complete once the model's features are known
    return schema


_FEEDBACK_REQUEST: dict[str, Any] = {
    "type": "object",
    "properties": {
        "feedback": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_FEEDBACK_ITEMS,
            "items": {
                "type": "object",
                "properties": {
                    "prediction_id": {"type": "string", "minLength": 1},
                    "is_fraud": {"oneOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
                },
                "required": ["prediction_id", "is_fraud"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["feedback"],
    "additionalProperties": False,
}
_FEEDBACK_RESPONSE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "unknown": {"type": "array", "items": {"type": "string"}},
        "stored": {
            "type": "integer",
            "minimum": 0,
            "description": "Labels stored in the object store (all of them, known ids or not).",
        },
    },
    "required": ["accepted", "unknown", "stored"],
}


def _response(description: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _example(request: str, features: list[str]) -> dict[str, Any]:
    if request == "V1PredictRequest":
        return {"instances": [dict.fromkeys(features, 0.0)]}
    return {
        "id": "example",
        "inputs": [
            {
                "name": "features",
                "shape": [1, len(features)],
                "datatype": "FP32",
                "data": [0.0] * len(features),
            }
        ],
    }


def _body_schemas(features: list[str], max_batch: int, *, entities: bool) -> dict[str, Any]:
    """JSON schemas of the bodies :mod:`kaizen.serving.schema` and the predictor accept."""
    from kaizen.serving.predictor import MAX_FEATURE_MAGNITUDE

    value = {"type": "number", "minimum": -MAX_FEATURE_MAGNITUDE, "maximum": MAX_FEATURE_MAGNITUDE}
    if features:
        vector: dict[str, Any] = {
            "type": "object",
            "description": "Every feature of the model, by name.",
            "properties": dict.fromkeys(features, value),
            "required": list(features),
            "additionalProperties": False,
        }
    else:  # the model is still loading: its feature names are not known yet
        vector = {"type": "object", "additionalProperties": value, "minProperties": 1}
    instance: dict[str, Any] = {"$ref": "#/components/schemas/FeatureVector"}
    schemas: dict[str, Any] = {"FeatureVector": vector}
    if entities:
        entity_id = {"oneOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]}
        schemas["EntityRequest"] = {
            "type": "object",
            "description": "Ids and the live transaction; the rest is read from Feast.",
            "properties": {
                "customer_id": entity_id,
                "merchant_id": entity_id,
                "amount": value,
                "event_timestamp": {"type": "string", "format": "date-time"},
            },
            "required": ["customer_id", "merchant_id", "amount"],
            "additionalProperties": False,
        }
        instance = {"oneOf": [instance, {"$ref": "#/components/schemas/EntityRequest"}]}
    width: dict[str, Any] = {"enum": [len(features)]} if features else {"minimum": 1}
    schemas.update(
        {
            "Error": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            },
            "V1PredictRequest": {
                "type": "object",
                "properties": {
                    "instances": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": max_batch,
                        "items": instance,
                    }
                },
                "required": ["instances"],
                "additionalProperties": False,
            },
            "V1PredictResponse": {
                "type": "object",
                "properties": {
                    "predictions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "fraud_probability": {
                                    "type": "number",
                                    "minimum": 0,
                                    "maximum": 1,
                                },
                                "is_fraud": {"type": "boolean"},
                                "model_version": {"type": "integer"},
                                "prediction_id": {
                                    "type": "string",
                                    "description": "Quote it when sending feedback.",
                                },
                            },
                            "required": ["fraud_probability", "is_fraud", "model_version"],
                        },
                    }
                },
                "required": ["predictions"],
            },
            "V2InferRequest": {
                "type": "object",
                "description": "One tensor 'features' of shape [rows, features], row-major data.",
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "enum": ["features"]},
                                "shape": {
                                    "type": "array",
                                    "prefixItems": [
                                        {"type": "integer", "minimum": 1, "maximum": max_batch},
                                        {"type": "integer", **width},
                                    ],
                                    "minItems": 2,
                                    "maxItems": 2,
                                },
                                "datatype": {"type": "string", "enum": ["FP32", "FP64"]},
                                "data": {"type": "array", "items": value, "minItems": 1},
                            },
                            "required": ["name", "shape", "datatype", "data"],
                        },
                    },
                },
                "required": ["inputs"],
            },
            "V2InferResponse": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "model_name": {"type": "string"},
                    "model_version": {"type": "string"},
                    "outputs": {"type": "array", "items": {"type": "object"}},
                },
                "required": ["model_name", "outputs"],
            },
        }
    )
    return schemas


def _configure_logging() -> None:
    """Log ``kaizen.*`` like KServe's own lines, to stderr, unless already configured."""
    root = logging.getLogger("kaizen")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(kserve_adapter.log_formatter())
        root.addHandler(handler)
        root.setLevel(logging.INFO)


if __name__ == "__main__":
    main()
    # Clean stop: every request is answered and the logs are all that is left to flush.
    # Skipping the interpreter's teardown saves the seconds TensorFlow's native
    # destructors take, which would otherwise delay every restart and rollout.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
