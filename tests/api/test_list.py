"""List with label and field selectors, and paging with limit/continue."""
from __future__ import annotations

import pytest

from .conftest import pod, status_of


@pytest.fixture
def pods(api, ns):
    coll = f"/api/v1/namespaces/{ns}/pods"
    spec = [("a", {"app": "web", "tier": "front"}, "n1"), ("b", {"app": "web", "tier": "back"}, "n2"),
            ("c", {"app": "db"}, None), ("d", {}, "n1"), ("e", {"app": "cache", "tier": "back"}, None)]
    for name, labels, node in spec:
        body = pod(name, labels=labels)
        if node:
            body["spec"]["nodeName"] = node
        assert api.post(coll, json=body).status_code == 201
    return coll


def names(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [i["metadata"]["name"] for i in r.json()["items"]]


@pytest.mark.parametrize("selector,expected", [
    ("app=web", ["a", "b"]),
    ("app==web", ["a", "b"]),
    ("app!=web", ["c", "d", "e"]),          # != also selects objects without the key
    ("app in (db,cache)", ["c", "e"]),
    ("app notin (web)", ["c", "d", "e"]),
    ("tier", ["a", "b", "e"]),
    ("!tier", ["c", "d"]),
    ("app=web,tier=back", ["b"]),
    ("app in (web),!tier", []),
    ("", ["a", "b", "c", "d", "e"]),
])
def test_label_selectors(api, pods, selector, expected):
    assert names(api.get(pods, params={"labelSelector": selector})) == expected


@pytest.mark.parametrize("selector,expected", [
    ("spec.nodeName=n1", ["a", "d"]),
    ("spec.nodeName=", ["c", "e"]),           # unbound pods, as the scheduler asks
    ("spec.nodeName!=n1", ["b", "c", "e"]),
    ("metadata.name=c", ["c"]),
    ("status.phase=Pending,spec.nodeName=n2", ["b"]),
    ("status.phase=Running", []),
])
def test_field_selectors(api, pods, selector, expected):
    assert names(api.get(pods, params={"fieldSelector": selector})) == expected


def test_field_selector_metadata_namespace_across_namespaces(api, pods, ns):
    r = api.get("/api/v1/pods", params={"fieldSelector": f"metadata.namespace={ns}"})
    assert names(r) == ["a", "b", "c", "d", "e"]


def test_limit_and_continue_pages_through_everything_once(api, pods):
    seen, cont, pages = [], "", 0
    while True:
        r = api.get(pods, params={"limit": 2, **({"continue": cont} if cont else {})})
        body = r.json()
        seen += [i["metadata"]["name"] for i in body["items"]]
        pages += 1
        cont = body["metadata"].get("continue", "")
        if not cont:
            break
        assert body["metadata"]["remainingItemCount"] == 5 - len(seen)
    assert seen == ["a", "b", "c", "d", "e"] and pages == 3


def test_limit_with_selector(api, pods):
    r = api.get(pods, params={"limit": 1, "labelSelector": "tier"})
    assert names(r) == ["a"]
    r2 = api.get(pods, params={"limit": 5, "labelSelector": "tier", "continue": r.json()["metadata"]["continue"]})
    assert names(r2) == ["b", "e"]


def test_bad_continue_token_and_limit(api, pods):
    assert status_of(api.get(pods, params={"limit": 1, "continue": "garbage"}))["code"] == 400
    assert status_of(api.get(pods, params={"limit": "x"}))["code"] == 400
