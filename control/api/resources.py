"""The resources this API server serves, at Kubernetes' paths and with Kubernetes' names."""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from . import models as m

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    model: type[BaseModel]
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "has_status", "status" in self.subresources)

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    def prefix(self, namespace: str = "") -> str:
        """Storage key prefix, laid out as Kubernetes lays out etcd: /registry/<resource>/<ns>/<name>."""
        base = f"/registry/{self.group + '/' if self.group else ''}{self.plural}/"
        return base + namespace + "/" if namespace else base

    def key(self, namespace: str, name: str) -> str:
        return self.prefix(namespace) + name if self.namespaced else self.prefix() + name


RESOURCES: list[Resource] = [
    Resource("", "v1", "namespaces", "namespace", "Namespace", False, m.Namespace, ("ns",),
             ("status",)),
    Resource("", "v1", "nodes", "node", "Node", False, m.Node, ("no",), ("status",)),
    Resource("", "v1", "pods", "pod", "Pod", True, m.Pod, ("po",), ("status", "binding"), ("all",)),
    Resource("", "v1", "services", "service", "Service", True, m.Service, ("svc",), ("status",),
             ("all",)),
    Resource("", "v1", "endpoints", "endpoints", "Endpoints", True, m.Endpoints, ("ep",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True,
             m.EndpointSlice),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, m.Deployment,
             ("deploy",), ("status", "scale"), ("all",)),
    Resource("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, m.ReplicaSet, ("rs",),
             ("status", "scale"), ("all",)),
    Resource("coordination.k8s.io", "v1", "leases", "lease", "Lease", True, m.Lease),
]

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}


def group_versions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        out.setdefault(r.group, [])
        if r.version not in out[r.group]:
            out[r.group].append(r.version)
    return out
