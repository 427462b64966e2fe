"""Requests to the API server, with Status errors raised as exceptions and fail-over across
several API servers (the first that answers is used until it stops answering)."""
from __future__ import annotations

import logging
from typing import Any, AsyncIterator

import httpx
import orjson

log = logging.getLogger("nodeagent.client")

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiStatusError(Exception):
    """The API answered with a failure Status."""

    def __init__(self, code: int, status: dict):
        self.code = code
        self.status = status
        self.reason = status.get("reason", "")
        super().__init__(f"{code} {self.reason}: {status.get('message', '')}")


def api_path(api_version: str, plural: str, namespace: str = "", name: str = "", sub: str = "") -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    if name:
        path += f"/{name}"
        if sub:
            path += f"/{sub}"
    return path


class ApiClient:
    def __init__(self, servers: str | list[str], *, timeout: float = 10.0, token: str | None = None,
                 verify: Any = True, cert: Any = None):
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers:
            raise ValueError("at least one API server address is needed")
        self._current = 0
        headers = {"Accept": "application/json", "User-Agent": "nodeagent"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, verify=verify, cert=cert)

    @classmethod
    def from_kubeconfig(cls, path: str, servers: list[str] | None = None, **kw) -> "ApiClient":
        """A client with the kubeconfig's credentials; `servers` overrides its server (fail-over
        across several API servers that share one CA)."""
        from ..kubeconfig import load
        creds = load(path)
        return cls(servers or [creds.server], token=creds.token, verify=creds.ssl_context(), **kw)

    @property
    def server(self) -> str:
        return self.servers[self._current]

    def fail_over(self) -> None:
        if len(self.servers) > 1:
            self._current = (self._current + 1) % len(self.servers)
            log.warning("switching to API server %s", self.server)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, body: Any = None, params: dict | None = None,
                      content_type: str = "application/json") -> dict:
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else None
        for attempt in range(len(self.servers)):
            try:
                r = await self._http.request(method, self.server + path, content=data, params=params,
                                             headers=headers)
                break
            except httpx.TransportError:
                if attempt == len(self.servers) - 1:
                    raise
                self.fail_over()
        if r.content and "json" in r.headers.get("content-type", ""):
            body_out = orjson.loads(r.content)
        else:  # health endpoints answer plain text
            body_out = {"text": r.text} if r.content else {}
        if r.status_code >= 400:
            raise ApiStatusError(r.status_code, body_out if isinstance(body_out, dict) else {})
        return body_out

    async def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict:
        return await self.request("GET", api_path(api_version, plural, namespace, name))

    async def list(self, api_version: str, plural: str, namespace: str = "", **params) -> dict:
        return await self.request("GET", api_path(api_version, plural, namespace), params=params or None)

    async def create(self, api_version: str, plural: str, namespace: str, obj: dict) -> dict:
        return await self.request("POST", api_path(api_version, plural, namespace), body=obj)

    async def update(self, api_version: str, plural: str, namespace: str, obj: dict, sub: str = "") -> dict:
        name = obj["metadata"]["name"]
        return await self.request("PUT", api_path(api_version, plural, namespace, name, sub), body=obj)

    async def patch(self, api_version: str, plural: str, namespace: str, name: str, patch: Any,
                    sub: str = "", content_type: str = MERGE_PATCH) -> dict:
        return await self.request("PATCH", api_path(api_version, plural, namespace, name, sub),
                                  body=patch, content_type=content_type)

    async def delete(self, api_version: str, plural: str, namespace: str, name: str,
                     grace_period: int | None = None, propagation: str | None = None,
                     preconditions: dict | None = None) -> dict:
        opts: dict = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period is not None:
            opts["gracePeriodSeconds"] = grace_period
        if propagation:
            opts["propagationPolicy"] = propagation
        if preconditions:
            opts["preconditions"] = preconditions
        return await self.request("DELETE", api_path(api_version, plural, namespace, name), body=opts)

    async def bind(self, namespace: str, pod: str, node: str, uid: str | None = None) -> dict:
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod, "namespace": namespace, **({"uid": uid} if uid else {})},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        return await self.request("POST", api_path("v1", "pods", namespace, pod, "binding"), body=body)

    async def watch_lines(self, path: str, params: dict, read_timeout: float | None = None
                          ) -> AsyncIterator[dict]:
        """Events of one watch request, decoded; ends when the server ends the stream."""
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)
        async with self._http.stream("GET", self.server + path, params={**params, "watch": "true"},
                                     timeout=timeout) as r:
            if r.status_code >= 400:
                raw = await r.aread()
                raise ApiStatusError(r.status_code, orjson.loads(raw) if raw else {})
            async for line in r.aiter_lines():
                if line:
                    yield orjson.loads(line)
