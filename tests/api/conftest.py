from __future__ import annotations

import itertools
import os

import httpx
import pytest

from tests.conftest import unique

from . import etcd as etcd_mod
from . import server as server_mod
from .server import ThreadServer

# The whole API suite runs once per storage backend; NODEAGENT_TEST_BACKENDS=sqlite (or etcd)
# runs one. etcd comes from Debian's etcd-server package (/usr/bin/etcd).
BACKENDS = [b.strip() for b in os.environ.get("NODEAGENT_TEST_BACKENDS", "sqlite,etcd").split(",") if b.strip()]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    if request.param == "etcd" and not etcd_mod.available():
        pytest.skip(f"etcd not installed ({etcd_mod.ETCD}): apt-get install etcd-server")
    return request.param


@pytest.fixture(autouse=True)
def _default_backend(backend):
    """Every test in tests/api runs on each backend; servers it makes without naming a backend
    take that one (only while the test runs: other tiers keep the SQLite default)."""
    before = server_mod.BACKEND
    server_mod.BACKEND = backend
    yield
    server_mod.BACKEND = before


@pytest.fixture(scope="session")
def etcd_cluster(backend):
    """The session's etcd (one member), started once for the session's shared server."""
    if backend != "etcd":
        yield None
        return
    c = etcd_mod.EtcdCluster().start()
    yield c
    c.stop()


@pytest.fixture(scope="session")
def server(backend, etcd_cluster):
    s = ThreadServer(backend=backend, etcd=etcd_cluster).start()
    yield s
    s.stop()


@pytest.fixture
def api(server) -> httpx.Client:
    with server.client() as c:
        yield c


_counter = itertools.count()


@pytest.fixture
def ns(api) -> str:
    """A fresh namespace per test, so tests sharing the session's server do not see each other."""
    name = f"t{next(_counter)}-{unique('')}"
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    return name


def pod(name: str, labels: dict | None = None, **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "app", "image": "netexec", "ports": [{"containerPort": 8080}]}]}}
    body["spec"].update(spec)
    return body


def service(name: str, **spec) -> dict:
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}
    body["spec"].update(spec)
    return body


def deployment(name: str, replicas: int = 2) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "netexec"}]}}}}


def status_of(r: httpx.Response) -> dict:
    body = r.json()
    assert body["kind"] == "Status", body
    assert body["code"] == r.status_code
    return body
