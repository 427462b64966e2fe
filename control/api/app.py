"""The API server's ASGI application."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from ..auth import bootstrap
from ..auth.authn import AuthenticationMiddleware
from ..auth.tokens import BootstrapTokens, StaticTokens
from ..store import Store
from . import discovery
from . import errors as E
from .alloc import Allocator
from .registry import Registry
from .routes import Handler, respond

log = logging.getLogger("nodeagent.apiserver")
VERBS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@dataclass
class Security:
    """Present when the server authenticates and authorizes (always, except --insecure-http)."""
    ca_cert_pem: bytes
    ca_key_pem: bytes
    static_tokens: StaticTokens
    server_url: str


@dataclass
class ApiConfig:
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    bookmark_interval: float = 60.0
    max_watch_timeout: float = 1800.0
    advertise_address: str = "127.0.0.1:6443"


def create_app(store: Store, config: ApiConfig | None = None, security: Security | None = None) -> FastAPI:
    config = config or ApiConfig()
    registry = Registry(store, Allocator(store, config.service_cidr, config.node_port_range))
    handler = Handler(registry, config.bookmark_interval, config.max_watch_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await registry.ensure_system_namespaces()
        await registry.resume_namespace_deletions()
        yield

    # FastAPI's own OpenAPI and docs pages are switched off: kubectl reads the protobuf document
    # at /openapi/v2 instead.
    app = FastAPI(title="nodeagent API server", openapi_url=None, docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.store = store
    app.state.registry = registry
    app.add_middleware(AuthenticationMiddleware, enabled=security is not None,
                       static_tokens=security.static_tokens if security else None)
    if security:
        bootstrap.install(app, BootstrapTokens(store), security.ca_cert_pem, security.ca_key_pem,
                          security.server_url)

    @app.exception_handler(E.ApiError)
    async def api_error(request: Request, err: E.ApiError) -> Response:
        return Response(err.body(), status_code=err.code, media_type="application/json")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        body = E.ApiError(500, "InternalError", f"an error on the server has prevented the request "
                          f"from succeeding: {type(err).__name__}").body()
        return Response(body, status_code=500, media_type="application/json")

    @app.get("/version")
    async def version() -> Response:
        return respond(discovery.KUBE_VERSION)

    @app.get("/healthz")
    @app.get("/livez")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        if await store.ready():
            return PlainTextResponse("ok")
        return PlainTextResponse("[-]store failed: not answering\nreadyz check failed", status_code=500)

    @app.get("/health")
    async def health() -> Response:
        if await store.ready():
            return respond({"status": "Control plane is healthy"})
        return respond({"status": "Control plane is not healthy: its store does not answer"}, 503)

    @app.get("/openapi/v2")
    async def openapi_v2() -> Response:
        return Response(discovery.openapi_v2_protobuf(), media_type="application/octet-stream")

    @app.get("/api")
    async def api() -> Response:
        return respond(discovery.api_versions(config.advertise_address))

    @app.get("/apis")
    async def apis() -> Response:
        return respond(discovery.api_group_list())

    @app.get("/api/v1")
    async def core_resources() -> Response:
        return respond(discovery.resource_list("", "v1"))

    @app.get("/apis/{group}")
    async def group_doc(group: str) -> Response:
        doc = discovery.api_group(group)
        if doc is None:
            raise E.not_found_path()
        return respond(doc)

    @app.get("/apis/{group}/{version}")
    async def group_resources(group: str, version: str) -> Response:
        doc = discovery.resource_list(group, version)
        if doc is None:
            raise E.not_found_path()
        return respond(doc)

    @app.api_route("/api/v1/{path:path}", methods=VERBS)
    async def core(request: Request, path: str) -> Response:
        return await handler.handle(request, "", "v1", path)

    @app.api_route("/apis/{group}/{version}/{path:path}", methods=VERBS)
    async def grouped(request: Request, group: str, version: str, path: str) -> Response:
        return await handler.handle(request, group, version, path)

    return app


__all__ = ["ApiConfig", "create_app", "orjson"]
