"""Adapter over the KServe internals that the model server (``kaizen.serving.server``) uses.

Written for kserve >=0.21,<0.22 (pyproject.toml pins ``kserve~=0.21.0``), checked against
0.21.0. :func:`check_version` refuses any other version; :func:`new_model_server` and
:func:`rest_server_base`, the server's ways in, call it first.

The server is KServe's own FastAPI app and handlers with limits, honest readiness and a
graceful stop around them, which KServe 0.21 offers no public way to add. So it uses:

- **RESTServer's private hooks** (``kserve.protocol.rest.server.RESTServer``): its
  ``start()`` builds the app by calling ``_add_middlewares``, ``_register_endpoints`` and
  ``_add_exception_handlers``, and serves with the uvicorn server it keeps in ``_server``.
  :func:`rest_server_base` is a RESTServer whose hooks are the public-named
  ``add_middlewares``, ``register_endpoints`` and ``add_exception_handlers`` (KServe's own
  by default), and whose uvicorn server binds the host given and is of the class given.
- **KServe's route handlers** (``kserve.protocol.rest.v1_endpoints.V1Endpoints``,
  ``v2_endpoints.V2Endpoints``, ``v2_datamodels``, ``rest.server.metrics_handler``, the
  route prefixes of ``kserve.constants``, and the ``model_version`` query parameter of
  the V2 handlers): :func:`kserve_routers` registers a subset of them.
- **The data plane** (``kserve.protocol.dataplane.DataPlane``): the server's subclass
  overrides ``decode`` and ``metadata`` and replaces ``ModelServer.dataplane``.
- **What ``ModelServer.start`` does** before it serves, done here without its servers and
  signal handlers (:func:`register_models`): ``setup_event_loop()``, each model's
  ``enable_latency_logging``, ``register_model``.
- **Its logging**: constructing a ``ModelServer`` applies KServe's logging config, which
  turns on the ``kserve.trace`` lines; KServe's line format (``kserve.logging``); the
  ``ORJSONResponse`` deprecation warning FastAPI raises on KServe 0.21's responses.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from packaging.specifiers import SpecifierSet

from kaizen.platform.library_versions import require_version

if TYPE_CHECKING:
    import kserve
    from fastapi import APIRouter
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.model_repository_extension import ModelRepositoryExtension

LIBRARY = "kserve"
SUPPORTED_VERSIONS = SpecifierSet(">=0.21,<0.22")
_USES = (
    "RESTServer's private hooks (_add_middlewares, _register_endpoints, "
    "_add_exception_handlers) and uvicorn server (_server), the V1/V2 route handlers, "
    "DataPlane.decode/metadata, what ModelServer.start does, and its logging setup"
)


def check_version() -> str:
    """The installed KServe version, if this adapter was written for it.

    Raises:
        UnsupportedLibraryVersionError: naming kserve, the installed version and the range.
    """
    return require_version(LIBRARY, SUPPORTED_VERSIONS, __name__, _USES)


def quiet_known_warnings() -> None:
    """Silence the warnings KServe 0.21 causes on every process's first request."""
    # KServe 0.21 answers with ORJSONResponse, which FastAPI now flags on every first use.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


def log_formatter() -> logging.Formatter:
    """A formatter writing lines as KServe's own log lines look."""
    from kserve.logging import KSERVE_LOGGER_DATE_FORMAT, KSERVE_LOGGER_FORMAT

    return logging.Formatter(KSERVE_LOGGER_FORMAT, KSERVE_LOGGER_DATE_FORMAT)


def new_model_server(*, http_port: int, grace_period: int) -> kserve.ModelServer:
    """KServe's ModelServer for one HTTP worker without gRPC, with the server's data plane.

    Raises:
        UnsupportedLibraryVersionError: the installed KServe is not one this was written for.
    """
    check_version()
    import kserve
    from kserve.logging import KSERVE_TRACE_LOGGER_NAME

    model_server = kserve.ModelServer(
        http_port=http_port,
        enable_grpc=False,
        workers=1,
        grace_period=grace_period,
    )
    # KServe's per-request timing lines (kserve.trace, two per request) drown the lines an
    # operator needs at any real rate, and /metrics has the same latencies. Turned off here:
    # constructing the ModelServer has just applied KServe's logging config, which sets them.
    logging.getLogger(KSERVE_TRACE_LOGGER_NAME).setLevel(logging.WARNING)
    model_server.dataplane = _dataplane(model_server.registered_models)
    return model_server


def event_loop_factory() -> Callable[[], Any] | None:
    """The event loop KServe's uvicorn would run: uvloop when installed."""
    import uvicorn
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING

    factory: Callable[[], Any] | None = uvicorn.Config(
        FASTAPI_APP_IMPORT_STRING, loop="auto"
    ).get_loop_factory()
    return factory


def register_models(model_server: kserve.ModelServer, models: Sequence[kserve.Model]) -> None:
    """Set up the running event loop and register ``models``, as ``ModelServer.start`` does
    before it serves (without checking that one is loaded: they load once the port is open).
    """
    model_server.setup_event_loop()
    for model in models:
        model.enable_latency_logging = model_server.enable_latency_logging
        model_server.register_model(model)


def _dataplane(registry: Any) -> DataPlane:
    """KServe's DataPlane, except that a V1 body with NaN/Infinity tokens reaches validation,
    and the server metadata (``GET /v2``) claims no protocol extension.

    JSON has no NaN, so KServe's strict parser answers "Unrecognized request format ...
    column 32", which names a position, not the field. Python's parser reads the tokens as
    floats, and request validation then names the instance and field holding them.

    KServe advertises ``model_repository_extension``, whose load/unload routes this server
    does not serve (any client could unload the model); a client reading the metadata must
    not expect them.
    """
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane

    class KaizenDataPlane(DataPlane):
        def metadata(self) -> dict[str, Any]:
            return {**super().metadata(), "extensions": []}

        def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().decode(body, headers, *args, **kwargs)
            except InvalidInput as strict:
                if not isinstance(body, bytes):
                    raise
                try:
                    parsed = json.loads(body)
                except (ValueError, RecursionError):
                    raise strict from None  # the strict parser's message, with its position
                return super().decode(parsed, headers, *args, **kwargs)

    return KaizenDataPlane(model_registry=registry)


@functools.cache
def rest_server_base() -> type[Any]:
    """KServe's RESTServer with public hooks in place of its private ones.

    An instance is made with ``(model_server, host=, port=, access_log=, grace_period=,
    server_class=)``; KServe binds ``0.0.0.0`` and lets uvicorn own the signals, this binds
    ``host`` and serves with ``server_class(config)`` (its ``uvicorn_server``). Subclasses
    override ``add_middlewares(app)``, ``register_endpoints(app)`` and
    ``add_exception_handlers(app)``, which KServe's ``start()`` calls in that order; each
    does what KServe does unless overridden, and :meth:`kserve_routers` gives KServe's
    routes to register.

    Raises:
        UnsupportedLibraryVersionError: the installed KServe is not one this was written for.
    """
    check_version()
    import uvicorn
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
    from kserve.protocol.rest.server import RESTServer

    class KServeRESTServer(RESTServer):
        def __init__(
            self,
            model_server: kserve.ModelServer,
            *,
            host: str,
            port: int,
            access_log: bool,
            grace_period: int,
            server_class: Callable[[uvicorn.Config], uvicorn.Server],
        ) -> None:
            super().__init__(
                FASTAPI_APP_IMPORT_STRING,
                model_server.dataplane,
                model_server.model_repository_extension,
                port,
                grace_period=grace_period,
            )
            self.config = uvicorn.Config(
                FASTAPI_APP_IMPORT_STRING,
                host=host,
                port=port,
                log_config=None,
                access_log=access_log,
                timeout_graceful_shutdown=grace_period,
            )
            self._server = server_class(self.config)

        @property
        def uvicorn_server(self) -> uvicorn.Server:
            server: uvicorn.Server = self._server
            return server

        # KServe's create_application() calls these three, in this order.
        def _add_middlewares(self, app: Any) -> None:
            self.add_middlewares(app)

        def _register_endpoints(self, app: Any) -> None:
            self.register_endpoints(app)

        def _add_exception_handlers(self, app: Any) -> None:
            self.add_exception_handlers(app)

        def add_middlewares(self, app: Any) -> None:
            RESTServer._add_middlewares(self, app)

        def register_endpoints(self, app: Any) -> None:
            RESTServer._register_endpoints(self, app)

        def add_exception_handlers(self, app: Any) -> None:
            RESTServer._add_exception_handlers(self, app)

        def kserve_routers(
            self,
            *,
            server_ready: Callable[..., Awaitable[Any]],
            model_ready: Callable[..., Awaitable[Any]],
        ) -> list[APIRouter]:
            return kserve_routers(
                self.dataplane,
                self.model_repository_extension,
                server_ready=server_ready,
                model_ready=model_ready,
            )

    return KServeRESTServer


def kserve_routers(
    dataplane: DataPlane,
    model_repository_extension: ModelRepositoryExtension,
    *,
    server_ready: Callable[..., Awaitable[Any]],
    model_ready: Callable[..., Awaitable[Any]],
) -> list[APIRouter]:
    """KServe's own V1 and V2 handlers, minus what the server must not offer.

    Left out: repository load/unload (any client could unload the model), ``:explain`` and
    the ``versions/<v>`` routes (KServe answers 501). Readiness (``/v2/health/ready``,
    ``/v1/models/<name>``, ``/v2/models/<name>/ready``) is answered by ``server_ready()``
    and ``model_ready(model_name)``, since it also depends on loading and draining.

    Returns:
        The root routes (``/``, ``/metrics``), the V1 routes and the V2 routes.
    """
    from fastapi.routing import APIRouter
    from kserve.constants.constants import V1_ROUTE_PREFIX, V2_ROUTE_PREFIX
    from kserve.protocol.rest.server import metrics_handler
    from kserve.protocol.rest.v1_endpoints import V1Endpoints
    from kserve.protocol.rest.v2_datamodels import (
        ListModelsResponse,
        ModelMetadataResponse,
        ModelReadyResponse,
        ServerLiveResponse,
        ServerMetadataResponse,
        ServerReadyResponse,
    )
    from kserve.protocol.rest.v2_endpoints import V2Endpoints

    v1 = V1Endpoints(dataplane, model_repository_extension)
    v2 = V2Endpoints(dataplane, model_repository_extension)
    root = APIRouter()
    root.add_api_route("/", dataplane.live, methods=["GET"])
    root.add_api_route("/metrics", metrics_handler, methods=["GET"])
    v1_routes = APIRouter(prefix=V1_ROUTE_PREFIX, tags=["V1"])
    v1_routes.add_api_route("/models", v1.models, methods=["GET"])
    v1_routes.add_api_route(
        "/models/{model_name}",
        model_ready,
        methods=["GET"],
        response_model=ModelReadyResponse,
    )
    v1_routes.add_api_route(
        "/models/{model_name}:predict", v1.predict, methods=["POST"], response_model=None
    )
    v2_routes = APIRouter(prefix=V2_ROUTE_PREFIX, tags=["V2"])
    v2_routes.add_api_route("", v2.metadata, methods=["GET"], response_model=ServerMetadataResponse)
    v2_routes.add_api_route(
        "/health/live", v2.live, methods=["GET"], response_model=ServerLiveResponse
    )
    v2_routes.add_api_route(
        "/health/ready",
        server_ready,
        methods=["GET"],
        response_model=ServerReadyResponse,
    )
    v2_routes.add_api_route(
        "/models", v2.models, methods=["GET"], response_model=ListModelsResponse
    )
    v2_routes.add_api_route(
        "/models/{model_name}",
        _without_model_version(v2.model_metadata),
        methods=["GET"],
        response_model=ModelMetadataResponse,
    )
    v2_routes.add_api_route(
        "/models/{model_name}/ready",
        model_ready,
        methods=["GET"],
        response_model=ModelReadyResponse,
    )
    v2_routes.add_api_route(
        "/models/{model_name}/infer",
        _without_model_version(v2.infer),
        methods=["POST"],
        response_model=None,
    )
    return [root, v1_routes, v2_routes]


def _without_model_version(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """KServe's handler minus its ``model_version`` query parameter, which it answers 501."""
    signature = inspect.signature(handler)

    async def call(**arguments: Any) -> Any:
        return await handler(**arguments)

    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p for p in signature.parameters.values() if p.name != "model_version"]
    )
    call.__name__ = handler.__name__
    call.__doc__ = handler.__doc__
    return call
