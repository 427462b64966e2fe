"""Discovery documents (/version, /api, /apis, /api/v1, /apis/<group>/<version>) and the OpenAPI
v2 document that kubectl's client-side validation asks for."""
from __future__ import annotations

from .resources import RESOURCES, VERBS, group_versions

# kubectl's dispatcher here picks a kubectl (1.27..1.33) matching the server's minor version.
KUBE_VERSION = {"major": "1", "minor": "30", "gitVersion": "v1.30.0-nodeagent", "gitCommit": "",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "python3.11",
                "compiler": "cpython", "platform": "linux/amd64"}


def api_versions(server_address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> dict:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": gvs,
            "preferredVersion": gvs[0]}


def api_group_list() -> dict:
    groups = [_group(g, vs) for g, vs in group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> dict | None:
    versions = group_versions().get(name)
    return _group(name, versions) if name and versions else None


def resource_list(group: str, version: str) -> dict | None:
    found = [r for r in RESOURCES if r.group == group and r.version == version]
    if not found:
        return None
    out = []
    for r in found:
        out.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                    "kind": r.kind, "verbs": VERBS, **({"shortNames": list(r.short_names)} if r.short_names else {}),
                    **({"categories": list(r.categories)} if r.categories else {})})
        for sub in r.subresources:
            kind, verbs = {"status": (r.kind, ["get", "patch", "update"]),
                           "scale": ("Scale", ["get", "patch", "update"]),
                           "binding": ("Binding", ["create"])}[sub]
            entry = {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                     "kind": kind, "verbs": verbs}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1")
            out.append(entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def _pb_field(number: int, payload: bytes) -> bytes:
    # protobuf wire format, length-delimited (wire type 2); our payloads are < 128 bytes
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


def openapi_v2_protobuf() -> bytes:
    """A minimal gnostic openapi_v2.Document: swagger "2.0", info {title, version}, empty paths and
    definitions. kubectl 1.20 decodes /openapi/v2 as protobuf only (JSON breaks it); with no
    definitions, validation accepts every object and the server's own validation decides."""
    info = _pb_field(1, b"nodeagent") + _pb_field(2, KUBE_VERSION["gitVersion"].encode())
    return _pb_field(1, b"2.0") + _pb_field(2, info) + _pb_field(8, b"") + _pb_field(9, b"")
