"""Authentication of every request: a client certificate verified by the TLS layer against the
cluster CA, or a bearer token from the static token file. Anonymous requests reach only the
health and version endpoints and the join discovery; anything else without a valid credential
is a 401 Status. Nothing here logs a credential."""
from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..api.errors import ApiError
from .authz import ANONYMOUS, User
from .tokens import StaticTokens

ANONYMOUS_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/cluster-info"})
JOIN_PATH = "/bootstrap/v1/join"
INSECURE_USER = User("system:insecure", ("system:masters",))
USER_KEY = "nodeagent.user"


class PeerCertProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus the verified client certificate in each request's scope.

    ASGI has a TLS extension for this, but uvicorn does not fill it in; asyncio calls
    connection_made after the handshake, when the peer certificate is known."""

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        self._peer_cert = ssl_object.getpeercert() if ssl_object is not None else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": {"peer_cert": self._peer_cert}}


def user_from_cert(cert: dict | None) -> User | None:
    """The identity in a certificate dict from ssl.getpeercert() (only verified ones appear)."""
    if not cert:
        return None
    cn, orgs = "", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return User(cn, tuple(orgs)) if cn else None


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


class AuthenticationMiddleware:
    def __init__(self, app, *, static_tokens: StaticTokens | None, enabled: bool = True):
        self.app = app
        self.static = static_tokens or StaticTokens(None)
        self.enabled = enabled

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.enabled:
            scope[USER_KEY] = INSECURE_USER
            return await self.app(scope, receive, send)
        user = None
        auth = b""
        for k, v in scope["headers"]:
            if k == b"authorization":
                auth = v
                break
        path = scope["path"]
        if auth:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return await self._reject(send)
            user = self.static.user(token.strip())
            if user is None and path != JOIN_PATH:
                return await self._reject(send)  # a wrong token is never treated as anonymous
        if user is None:
            tls = (scope.get("extensions") or {}).get("tls") or {}
            user = user_from_cert(tls.get("peer_cert"))
        if user is None:
            if path not in ANONYMOUS_PATHS and path != JOIN_PATH:
                return await self._reject(send)
            user = ANONYMOUS
        scope[USER_KEY] = user
        return await self.app(scope, receive, send)

    @staticmethod
    async def _reject(send):
        body = unauthorized().body()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
