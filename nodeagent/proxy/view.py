"""What each service port looks like on this node, as last rendered: the port and its endpoint
groups. Shared by both modes; a sync asks it which service ports changed, and the answer drives
the renderer (only those are re-rendered), the conntrack cleanup (endpoints that went away) and
the health check node ports (local endpoint counts)."""
from __future__ import annotations

from typing import NamedTuple

from .model import EndpointGroups, ServiceName, ServicePort, ServicePortName, categorize
from .tracker import ProxyState


class PortView(NamedTuple):
    port: ServicePort
    groups: EndpointGroups


Change = tuple[PortView | None, PortView | None]   # (before, after); None = absent


class ServiceView:
    def __init__(self, node_name: str = ""):
        self.node_name = node_name
        self.ports: dict[ServicePortName, PortView] = {}
        self.by_service: dict[ServiceName, set[ServicePortName]] = {}

    def update(self, state: ProxyState, services=None) -> dict[ServicePortName, Change]:
        """Re-derive the given services (all when None); return the ports that changed."""
        if services is None:
            services = set(state.services) | set(self.by_service)
        changes: dict[ServicePortName, Change] = {}
        for svc in services:
            new_ports = state.ports(svc)
            old = self.by_service.get(svc, set())
            for spn in old - new_ports.keys():
                changes[spn] = (self.ports.pop(spn), None)
            for spn, sp in new_ports.items():
                view = PortView(sp, categorize(sp, state.endpoints(spn), self.node_name))
                before = self.ports.get(spn)
                if before != view:
                    changes[spn] = (before, view)
                    self.ports[spn] = view
            if new_ports:
                if len(old) != len(new_ports) or old != new_ports.keys():
                    self.by_service[svc] = set(new_ports)
            else:
                self.by_service.pop(svc, None)
        return changes

    def health_check_ports(self) -> dict[int, tuple[ServiceName, int]]:
        """healthCheckNodePort -> (service, local endpoint count) for policy-Local services."""
        out: dict[int, tuple[ServiceName, int]] = {}
        for spn, v in self.ports.items():
            if v.port.health_check_node_port and v.port.external_local:
                svc, n = spn.service, len(v.groups.local)
                prev = out.get(v.port.health_check_node_port)
                # one node port per service; several ports of one service count each local pod once
                out[v.port.health_check_node_port] = (svc, max(n, prev[1]) if prev and prev[0] == svc else n)
        return out
