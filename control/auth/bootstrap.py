"""Joining nodes (kubeadm's token discovery, simplified):

1. GET /cluster-info (anonymous): the cluster CA certificate. The joining node trusts it only if
   the hash of its public key matches the --ca-cert-hash it was given out of band.
2. POST /bootstrap/v1/join over TLS verified with that CA, with the bootstrap token as bearer and
   a CSR for system:node:<name>: the node's key never leaves the node; the server signs a client
   certificate for it.
Tokens are listed, created and revoked by an admin under /bootstrap/v1/tokens.
"""
from __future__ import annotations

import logging
import re

import orjson
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from ..api import errors as E
from . import pki
from .authn import USER_KEY
from .authz import ADMIN_GROUP, NODE_PREFIX, NODES_GROUP, User
from .tokens import BootstrapTokens, TokenError, parse_ttl

log = logging.getLogger("nodeagent.apiserver")
NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _json(data, code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=code, media_type="application/json")


def _admin(request: Request) -> User:
    user: User = request.scope[USER_KEY]
    if ADMIN_GROUP not in user.groups:
        raise E.ApiError(403, "Forbidden", f'User "{user.name}" cannot manage bootstrap tokens')
    return user


def install(app: FastAPI, tokens: BootstrapTokens, ca_cert_pem: bytes, ca_key_pem: bytes, server_url: str) -> None:
    ca_cert = pki.load_cert(ca_cert_pem)
    ca_key = pki.load_key(ca_key_pem)

    @app.get("/cluster-info")
    async def cluster_info() -> Response:
        return _json({"server": server_url, "certificateAuthority": ca_cert_pem.decode()})

    @app.post("/bootstrap/v1/join")
    async def join(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        try:
            tid = await tokens.check(token)
        except TokenError:
            raise E.ApiError(401, "Unauthorized", "Unauthorized: the join token is invalid, expired or revoked")
        try:
            body = orjson.loads(await request.body())
            node = body["nodeName"]
            csr = pki.load_csr(body["csr"].encode())
        except (ValueError, KeyError, TypeError) as err:
            raise E.bad_request(f"a join request needs nodeName and a PEM csr: {err}")
        if not isinstance(node, str) or len(node) > 253 or not NODE_NAME.match(node):
            raise E.bad_request("nodeName must be a lowercase RFC 1123 subdomain")
        cert = pki.sign(ca_key, ca_cert, csr.public_key(), NODE_PREFIX + node, orgs=(NODES_GROUP,))
        log.info("node %s joined with bootstrap token %s", node, tid)  # the id only, never the secret
        return _json({"certificate": pki.cert_pem(cert).decode(), "certificateAuthority": ca_cert_pem.decode()})

    @app.get("/bootstrap/v1/tokens")
    async def list_tokens(request: Request) -> Response:
        _admin(request)
        return _json({"items": await tokens.list()})

    @app.post("/bootstrap/v1/tokens")
    async def create_token(request: Request) -> Response:
        _admin(request)
        try:
            body = orjson.loads(await request.body() or b"{}")
            ttl = parse_ttl(str(body.get("ttl", "24h")))
        except (ValueError, TokenError) as err:
            raise E.bad_request(str(err))
        token, info = await tokens.create(ttl, str(body.get("description", "")))
        return _json({**info, "token": token}, 201)

    @app.delete("/bootstrap/v1/tokens/{tid}")
    async def revoke_token(request: Request, tid: str) -> Response:
        _admin(request)
        if not await tokens.revoke(tid):
            raise E.ApiError(404, "NotFound", f'bootstrap token "{tid}" not found')
        return _json({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200})


__all__ = ["install", "serialization"]
