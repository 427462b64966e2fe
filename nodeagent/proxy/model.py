"""The proxy's desired state, parsed from Services and EndpointSlices.

Everything that reaches a ruleset passes through here first, and every value is validated here
(addresses with `ipaddress`, ports as integers in range, protocols from a fixed set): the
renderers interpolate only values that came out of this module. An invalid field makes the
object (or the port, or the endpoint) be skipped with a log line; it never reaches the kernel.

Parsing is pure and cheap, and the parsed values are frozen dataclasses that compare by value:
the change tracker compares them to notice that a change returned to the old state (an update
that only touched annotations or status conditions is no change at all for the proxy).

IPv4 only, for now: IPv6 service and endpoint addresses are skipped (a dual-stack proxy would
render a second `ip6` table from the same model).
"""
from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

log = logging.getLogger("nodeagent.proxy")

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
# Kubernetes names: DNS-1123 labels/subdomains. Port names are IANA_SVC_NAME-like.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class Invalid(ValueError):
    """A value from the API that cannot be used (the object, port or endpoint is skipped)."""


def ipv4(value: object) -> str:
    """The canonical text of an IPv4 address, or Invalid."""
    if not isinstance(value, str):
        raise Invalid(f"address {value!r} is not a string")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError as err:
        raise Invalid(f"address {value!r}: {err}") from None


def is_ipv4(value: object) -> bool:
    try:
        ipv4(value)
        return True
    except Invalid:
        return False


def port_number(value: object, what: str = "port") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise Invalid(f"{what} {value!r} is not in 1-65535")
    return value


def protocol(value: object) -> str:
    p = PROTOCOLS.get(value if value is not None else "TCP")  # type: ignore[arg-type]
    if p is None:
        raise Invalid(f"protocol {value!r} is not TCP, UDP or SCTP")
    return p


def ipv4_cidr(value: str) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except ValueError as err:
        raise Invalid(f"CIDR {value!r}: {err}") from None


def check_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise Invalid(f"{what} {value!r} is not a Kubernetes name")
    return value


class ServiceName(NamedTuple):
    # NamedTuples for the keys: hashed and compared in C, which matters at 10,000 services
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ServicePortName(NamedTuple):
    """One port of one service: the unit the proxy programs (kube-proxy's ServicePortName)."""
    service: ServiceName
    port_name: str  # "" for an unnamed port
    protocol: str   # tcp, udp, sctp

    def __str__(self) -> str:
        return f"{self.service}:{self.port_name}/{self.protocol}"


@dataclass(frozen=True)
class ServicePort:
    name: ServicePortName
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_timeout: int = 0          # seconds; 0 = no session affinity
    external_local: bool = False        # externalTrafficPolicy: Local
    internal_local: bool = False        # internalTrafficPolicy: Local
    health_check_node_port: int = 0

    @property
    def protocol(self) -> str:
        return self.name.protocol

    @property
    def has_external(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


class Endpoint(NamedTuple):
    """A NamedTuple, not a dataclass: tens of thousands are built per full sync, and a tuple is
    several times cheaper to construct and compare."""
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node: str = ""
    zone: str = ""

    @property
    def addr(self) -> tuple[str, int]:
        return self.ip, self.port


@dataclass(frozen=True)
class SlicePort:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Slice:
    """What the proxy needs of one EndpointSlice."""
    service: ServiceName
    ports: tuple[SlicePort, ...]
    endpoints: tuple[Endpoint, ...]   # port 0 here: the port comes from `ports`
    trigger_time: float | None = field(default=None, compare=False)
    # (port name, protocol) -> the endpoints with that port, sorted: built once when the event is
    # recorded (as kube-proxy's endpointSliceInfo), so that a sync only looks them up
    by_port: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        for p in self.ports:
            eps: dict[str, Endpoint] = {}
            for e in self.endpoints:
                old = eps.get(e[0])
                if old is None or (e[2], e[3]) > (old[2], old[3]):   # a duplicate: keep the usable one
                    eps[e[0]] = Endpoint(e[0], p.port, e[2], e[3], e[4], e[5], e[6])
            self.by_port[(p.name, p.protocol)] = tuple(sorted(eps.values()))


def service_ports(obj: dict) -> dict[ServicePortName, ServicePort]:
    """The ports the proxy programs for one Service object; {} for the ones it skips (headless,
    ExternalName, no IPv4 cluster IP). Invalid ports are skipped one by one."""
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    try:
        svc = ServiceName(check_name(meta.get("namespace"), "namespace"), check_name(meta.get("name")))
    except Invalid as err:
        log.warning("skipping a service: %s", err)
        return {}
    if spec.get("type") == "ExternalName":
        return {}
    cluster_ip = spec.get("clusterIP")
    if not cluster_ip or cluster_ip == "None":  # headless: DNS only, nothing to proxy
        return {}
    try:
        cluster_ip = ipv4(cluster_ip)
    except Invalid:
        log.info("service %s: cluster IP %r is not IPv4; skipped", svc, cluster_ip)
        return {}

    def addresses(values, what):
        out = []
        for v in values or []:
            try:
                out.append(ipv4(v))
            except Invalid as err:
                log.warning("service %s: %s %s ignored", svc, what, err)
        return tuple(sorted(set(out)))

    external_ips = addresses(spec.get("externalIPs"), "external IP")
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb_ips = addresses([i.get("ip") for i in ingress if isinstance(i, dict) and i.get("ip")],
                       "load balancer IP") if spec.get("type") == "LoadBalancer" else ()
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = cfg.get("timeoutSeconds", DEFAULT_AFFINITY_TIMEOUT)
        if isinstance(affinity, bool) or not isinstance(affinity, int) or not 0 < affinity <= MAX_AFFINITY_TIMEOUT:
            log.warning("service %s: affinity timeout %r invalid; using %d", svc, affinity, DEFAULT_AFFINITY_TIMEOUT)
            affinity = DEFAULT_AFFINITY_TIMEOUT
    external_local = spec.get("externalTrafficPolicy") == "Local"
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    hc_port = spec.get("healthCheckNodePort") or 0
    if hc_port:
        try:
            hc_port = port_number(hc_port, "healthCheckNodePort")
        except Invalid as err:
            log.warning("service %s: %s", svc, err)
            hc_port = 0
    out: dict[ServicePortName, ServicePort] = {}
    for p in spec.get("ports") or []:
        try:
            name = p.get("name") or ""
            if name and not _PORT_NAME.match(name):
                raise Invalid(f"port name {name!r} is invalid")
            spn = ServicePortName(svc, name, protocol(p.get("protocol")))
            node_port = p.get("nodePort") or 0
            if node_port:
                node_port = port_number(node_port, "nodePort")
            out[spn] = ServicePort(
                spn, cluster_ip, port_number(p.get("port")), node_port if spec.get("type") in
                ("NodePort", "LoadBalancer") else 0, external_ips, lb_ips, affinity,
                external_local, internal_local, hc_port if external_local else 0)
        except Invalid as err:
            log.warning("service %s: port skipped: %s", svc, err)
    return out


def _trigger_time(meta: dict) -> float | None:
    value = (meta.get("annotations") or {}).get(TRIGGER_TIME_ANNOTATION)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()
    except ValueError:
        return None


def parse_slice(obj: dict) -> Slice | None:
    """The proxy's view of one EndpointSlice, or None when it is not for a service we proxy
    (no service label, a non-IPv4 address type) or is unusable."""
    meta = obj.get("metadata") or {}
    svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not svc_name or obj.get("addressType") != "IPv4":
        return None
    try:
        svc = ServiceName(check_name(meta.get("namespace"), "namespace"), check_name(svc_name, "service name"))
    except Invalid as err:
        log.warning("skipping endpoint slice %s: %s", meta.get("name"), err)
        return None
    ports = []
    for p in obj.get("ports") or []:
        try:
            name = p.get("name") or ""
            if name and not _PORT_NAME.match(name):
                raise Invalid(f"port name {name!r} is invalid")
            ports.append(SlicePort(name, protocol(p.get("protocol")), port_number(p.get("port"))))
        except Invalid as err:
            log.warning("endpoint slice %s/%s: port skipped: %s", svc.namespace, meta.get("name"), err)
    endpoints = []
    for ep in obj.get("endpoints") or []:
        addrs = ep.get("addresses") or []
        if not addrs:
            continue
        try:
            ip = ipv4(addrs[0])  # Kubernetes: consumers use the first address only
        except Invalid as err:
            log.warning("endpoint slice %s/%s: endpoint skipped: %s", svc.namespace, meta.get("name"), err)
            continue
        cond = ep.get("conditions") or {}
        ready = cond.get("ready")
        ready = True if ready is None else bool(ready)       # nil means ready (API docs)
        serving = cond.get("serving")
        serving = ready if serving is None else bool(serving)  # nil means "same as ready"
        node = ep.get("nodeName") or ""
        endpoints.append(Endpoint(ip, 0, ready, serving, bool(cond.get("terminating")),
                                  node if isinstance(node, str) else "", ep.get("zone") or ""))
    return Slice(svc, tuple(ports), tuple(endpoints), _trigger_time(meta))


def endpoints_for(spn: ServicePortName, slices) -> list[Endpoint]:
    """The endpoints of one service port across the service's slices: a slice port matches by
    name and protocol (this is where named target ports resolve: the slice carries the number
    each pod uses). Duplicates (an address in two slices) keep the most usable copy."""
    if len(slices) == 1:
        return list(slices[0].by_port.get((spn.port_name, spn.protocol), ()))
    found: list[Endpoint] = []
    for s in slices:
        for p in s.ports:
            if p.name == spn.port_name and p.protocol == spn.protocol:
                port = p.port
                found += [Endpoint(e[0], port, e[2], e[3], e[4], e[5], e[6]) for e in s.endpoints]
    if len({(e[0], e[1]) for e in found}) == len(found):   # the usual case: no duplicates
        return sorted(found)
    best: dict[tuple[str, int], Endpoint] = {}
    for ep in found:
        old = best.get((ep.ip, ep.port))
        if old is None or (ep.ready, ep.serving) > (old.ready, old.serving):
            best[(ep.ip, ep.port)] = ep
    return sorted(best.values())


def usable(endpoints) -> list[Endpoint]:
    """Ready endpoints; when none is ready, the serving-and-terminating ones (KEP-1669), so that a
    rolling update that takes every pod down at once still has somewhere to send traffic."""
    ready = [e for e in endpoints if e[2]]
    if len(ready) == len(endpoints) or ready:
        return ready
    return [e for e in endpoints if e[3] and e[4]]


class EndpointGroups(NamedTuple):
    """Which endpoints serve which kind of traffic for one service port on this node."""
    cluster: tuple[Endpoint, ...]    # all usable endpoints
    local: tuple[Endpoint, ...]      # usable endpoints on this node
    internal: tuple[Endpoint, ...]   # for ClusterIP traffic (local ones when iTP=Local)
    external: tuple[Endpoint, ...]   # for NodePort / external / LB traffic (local ones when eTP=Local)


def categorize(sp: ServicePort, endpoints, node_name: str) -> EndpointGroups:
    cluster = tuple(usable(endpoints))
    mine = [e for e in endpoints if e[5] == node_name] if node_name else ()
    local = tuple(usable(mine)) if mine else ()
    return EndpointGroups(cluster, local, local if sp.internal_local else cluster,
                          local if sp.external_local else cluster)


@dataclass(frozen=True)
class NodeConfig:
    """What the proxy knows about the node it runs on (all validated at construction)."""
    node_name: str = ""
    cluster_cidr: str = ""                    # "" = unknown: no masquerade for off-cluster clients
    nodeport_addresses: tuple[str, ...] = ()  # CIDRs; () = every local address
    masquerade_bit: int = 14

    def __post_init__(self):
        if self.cluster_cidr:
            object.__setattr__(self, "cluster_cidr", ipv4_cidr(self.cluster_cidr))
        object.__setattr__(self, "nodeport_addresses", tuple(ipv4_cidr(c) for c in self.nodeport_addresses))
        if not 0 <= self.masquerade_bit <= 31:
            raise Invalid(f"masquerade bit {self.masquerade_bit} is not in 0-31")

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.masquerade_bit
