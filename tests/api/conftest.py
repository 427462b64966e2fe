from __future__ import annotations

import itertools
import os

import httpx
import pytest

from tests.conftest import unique

from .server import ThreadServer


@pytest.fixture(scope="session")
def server():
    s = ThreadServer().start()
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
