"""kubeconfig files: written for kubectl (credentials embedded, mode 0600) and read by our own
components, so that one file configures both."""
from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass

import yaml

from .auth.pki import write_private


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write(path: str, server: str, *, user: str = "admin", ca_pem: bytes | None = None,
          cert_pem: bytes | None = None, key_pem: bytes | None = None, token: str | None = None,
          cluster: str = "nodeagent", namespace: str = "default") -> None:
    cl: dict = {"server": server}
    if ca_pem:
        cl["certificate-authority-data"] = _b64(ca_pem)
    creds: dict = {}
    if cert_pem and key_pem:
        creds = {"client-certificate-data": _b64(cert_pem), "client-key-data": _b64(key_pem)}
    if token:
        creds["token"] = token
    ctx = f"{user}@{cluster}"
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": ctx,
           "clusters": [{"name": cluster, "cluster": cl}],
           "users": [{"name": user, "user": creds}],
           "contexts": [{"name": ctx, "context": {"cluster": cluster, "user": user, "namespace": namespace}}]}
    write_private(path, yaml.safe_dump(cfg, sort_keys=False).encode())


@dataclass
class Credentials:
    server: str
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    token: str | None = None

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return True
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode() if self.ca_pem else None)
        if self.cert_pem and self.key_pem:
            # load_cert_chain reads only files: hand it a private temporary copy and remove it.
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "client.pem")
                write_private(path, self.cert_pem + b"\n" + self.key_pem)
                ctx.load_cert_chain(path)
        return ctx


def load(path: str) -> Credentials:
    with open(path) as f:
        cfg = yaml.safe_load(f)
    ctx_name = cfg.get("current-context")
    ctx = next((c["context"] for c in cfg.get("contexts", []) if c["name"] == ctx_name), None)
    if ctx is None:
        raise ValueError(f"{path}: current-context {ctx_name!r} is not defined")
    cl = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {}) or {}

    def data(section: dict, key: str) -> bytes | None:
        if section.get(f"{key}-data"):
            return base64.b64decode(section[f"{key}-data"])
        if section.get(key):
            with open(os.path.join(os.path.dirname(path), section[key]), "rb") as f:
                return f.read()
        return None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(user["tokenFile"]) as f:
            token = f.read().strip()
    return Credentials(cl["server"], data(cl, "certificate-authority"), data(user, "client-certificate"),
                       data(user, "client-key"), token)
