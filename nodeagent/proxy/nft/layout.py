"""The shape of our nftables table: its maps and sets, its static chains, and the few shared
"selection" chains. This is the design decision that makes syncs fast, so it is written down here.

Why this layout
---------------
kube-proxy's nftables mode gives every service and every endpoint a chain of its own. Loading
10,000 services x 3 endpoints that way took 23 s on our machines; with one map keyed by
(address, protocol, port, slot) and no per-service chains it took 1.2 s (docs/proxy.md). So:

* Per-service data lives only in map elements. A ClusterIP port is one element of the verdict map
  `service-ips` ((VIP, proto, port) -> `goto ip-c-3`) plus one element per endpoint in
  `ip-c-3-ep` ((VIP, proto, port, slot) -> (endpoint IP, port)).
* Chains are shared by every service with the same *shape*: `ip-c-3` means "a ClusterIP entry
  with 3 endpoints": masquerade off-cluster clients, then `dnat` through its own map `ip-c-3-ep`
  keyed by the packet's own destination plus `numgen random mod 3`. There is one such chain (and
  map) per endpoint count and kind in use (a handful), created and deleted as counts come and go.
* Why one endpoint map per shared chain rather than one for all: nft 1.0.6 (Debian 12) cannot add
  a rule that refers to an existing `typeof ... numgen ... : ip daddr . th dport` map (it fails
  rebuilding the map's type from the kernel: "conflicting protocols specified: ip vs. th"), while
  a rule and the map it uses created in the same transaction work. So a chain is always created
  together with its map, and no later transaction adds a rule that refers to an older map.
* An endpoint change therefore touches only that service's elements (and at most the one element
  that says how many endpoints it has); the work grows with the change, not with the table.
* Per-packet cost is a constant number of hash lookups, whatever the number of services.

Chain kinds (`{entry}-{group}{a}-{N}`):
  entry  ip: destination is an address (ClusterIP, external IP, load-balancer IP), the endpoint
             map is keyed by (daddr, proto, dport, slot);
         np: a node port on one of the node's addresses, keyed by (proto, dport, slot).
  group  c: cluster endpoints, masquerade when the client is outside the cluster CIDR;
         x: cluster endpoints, always masquerade (external traffic, policy Cluster);
         l: node-local endpoints (policy Local), no masquerade, so the client's source address
            is preserved.
  a      session affinity: first look the client up in the `affinity` map.
  N      number of endpoints (the `numgen` modulus).

Session affinity: `nat-postrouting` sees the connection after DNAT; for services listed in
`affinity-ips` / `affinity-nodeports` it records (client, original destination, proto, original
port) -> chosen endpoint in the dynamic map `affinity`, with the service's timeout. The selection
chains look that up first. (`ct original proto-dst` needs a protocol in the same rule to be typed,
hence one rule per protocol.)

Services without usable endpoints are rejected in filter chains *before* NAT (`filter-prerouting`
and `filter-output`, priority dstnat - 10) through `no-endpoint-services` /
`no-endpoint-nodeports`: a TCP reset or ICMP port unreachable at once, never a silent drop.

Traffic to a ClusterIP on a port no service uses is refused too, after DNAT (kube-proxy's
`cluster-ips-check`): the `cluster-ips` set holds every ClusterIP, and what still has one as its
destination in the forward hook (or after DNAT in output) was not DNATed.

Masquerade uses a mark bit (kube-proxy's 0x4000 by default) set where it is needed and turned
into `masquerade` in `nat-postrouting`; hairpin traffic (a pod reaching itself through its own
service) is marked there from the `hairpin` set of (endpoint, endpoint) pairs.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from ..model import NodeConfig

AFFINITY_SIZE = 262144
PROTOS = ("tcp", "udp", "sctp")

IP_KEY = ("ipv4_addr", "inet_proto", "inet_service")
NP_KEY = ("inet_proto", "inet_service")
EP_VALUE = ("ipv4_addr", "inet_service")


@dataclass(frozen=True)
class MapDef:
    name: str
    key: tuple[str, ...]            # field types of the key
    value: tuple[str, ...] | None   # field types of the value; ("verdict",) ; None for a set
    spec: str                       # the body of `add map/set ... { spec }`
    dynamic: bool = False           # written by the packet path: never diffed or flushed

    @property
    def kind(self) -> str:
        return "set" if self.value is None else "map"


def _vmap(name: str, key: tuple[str, ...]) -> MapDef:
    return MapDef(name, key, ("verdict",), f"type {' . '.join(key)} : verdict ;")


MAPS: dict[str, MapDef] = {m.name: m for m in (
    _vmap("service-ips", IP_KEY),
    _vmap("service-nodeports", NP_KEY),
    _vmap("ext-cluster", IP_KEY),
    _vmap("ext-local", IP_KEY),
    _vmap("np-cluster", NP_KEY),
    _vmap("np-local", NP_KEY),
    _vmap("no-endpoint-services", IP_KEY),
    _vmap("no-endpoint-nodeports", NP_KEY),
    _vmap("affinity-ips", IP_KEY),
    _vmap("affinity-nodeports", NP_KEY),
    MapDef("affinity", ("ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"), EP_VALUE,
           "type ipv4_addr . ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; "
           f"flags dynamic,timeout ; size {AFFINITY_SIZE} ;", dynamic=True),
    MapDef("hairpin", ("ipv4_addr", "ipv4_addr"), None, "type ipv4_addr . ipv4_addr ;"),
    MapDef("cluster-ips", ("ipv4_addr",), None, "type ipv4_addr ;"),
    MapDef("nodeport-addresses", ("ipv4_prefix",), None, "type ipv4_addr ; flags interval ;"),
    MapDef("fingerprint", ("mark",), None, "type mark ;"),
)}


@dataclass(frozen=True)
class Hook:
    type: str       # filter, nat
    hook: str       # prerouting, output, postrouting
    priority: str   # numeric: the named priorities (dstnat...) are not valid on every hook in nft 1.0.6


@dataclass(frozen=True)
class ChainDef:
    name: str
    rules: tuple[str, ...]
    hook: Hook | None = None


SELECTION = re.compile(r"^(ip|np)-([cxl])(a?)-([1-9][0-9]{0,5})$")
AFFINITY_RECORD = re.compile(r"^affinity-record-([1-9][0-9]{0,5})$")
STATIC_TARGETS = ("reject-chain", "reject-external", "external-local", "nodeport-local")
_IDENT = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def check_table_name(name: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$", name or ""):
        raise ValueError(f"nftables table name {name!r} must be letters, digits, '_' or '-'")
    return name


def _mark(cfg: NodeConfig) -> str:
    return f"meta mark set meta mark or {cfg.masquerade_mark:#x}"


def _np_match(cfg: NodeConfig) -> str:
    """Which destinations count as "this node" for node ports."""
    if cfg.nodeport_addresses:
        return "ip daddr @nodeport-addresses"
    # Every local address except loopback (a node port on 127.0.0.1 would need route_localnet).
    return "fib daddr type local ip daddr != 127.0.0.0/8"


def static_chains(cfg: NodeConfig) -> dict[str, ChainDef]:
    mark, np, cidr = _mark(cfg), _np_match(cfg), cfg.cluster_cidr
    m = cfg.masquerade_mark
    ipk, npk = "ip daddr . meta l4proto . th dport", "meta l4proto . th dport"
    chains = [
        ChainDef("filter-prerouting", ("ct state new jump endpoints-check",), Hook("filter", "prerouting", "-110")),
        ChainDef("filter-output", ("ct state new jump endpoints-check",), Hook("filter", "output", "-110")),
        ChainDef("endpoints-check", (f"{ipk} vmap @no-endpoint-services",
                                     f"{np} {npk} vmap @no-endpoint-nodeports")),
        ChainDef("reject-chain", ("meta l4proto tcp reject with tcp reset", "reject")),
        # A ClusterIP on a port no service uses (kube-proxy's cluster-ips-check): after DNAT a valid
        # port has the endpoint as destination, so what still goes to a ClusterIP is refused at
        # once instead of being routed on to wherever the default route leads.
        ChainDef("filter-forward", ("ct state new jump cluster-ips-check",), Hook("filter", "forward", "-110")),
        ChainDef("filter-output-post-dnat", ("ct state new jump cluster-ips-check",), Hook("filter", "output", "-90")),
        ChainDef("cluster-ips-check", ("ip daddr @cluster-ips goto reject-chain",)),
        # policy Local without a local endpoint: reject clients from outside only; pods and the
        # node itself are sent to cluster endpoints by external-local / nodeport-local.
        ChainDef("reject-external", ((f"ip saddr {cidr} return",) if cidr else ()) + (
            "fib saddr type local return", "goto reject-chain")),
        ChainDef("nat-prerouting", ("jump services",), Hook("nat", "prerouting", "-100")),
        ChainDef("nat-output", ("jump services",), Hook("nat", "output", "-100")),
        ChainDef("services", (f"{ipk} vmap @service-ips", f"{np} {npk} vmap @service-nodeports")),
        ChainDef("external-local", ((f"ip saddr {cidr} {ipk} vmap @ext-cluster",) if cidr else ()) + (
            f"fib saddr type local {mark}", f"fib saddr type local {ipk} vmap @ext-cluster",
            f"{ipk} vmap @ext-local")),
        ChainDef("nodeport-local", ((f"ip saddr {cidr} {npk} vmap @np-cluster",) if cidr else ()) + (
            f"fib saddr type local {mark}", f"fib saddr type local {npk} vmap @np-cluster",
            f"{npk} vmap @np-local")),
        ChainDef("nat-postrouting", ("ct status dnat jump post-dnat", f"meta mark & {m:#x} == 0 return",
                                     f"meta mark set meta mark xor {m:#x}", "masquerade fully-random"),
                 Hook("nat", "postrouting", "100")),
        ChainDef("post-dnat", (f"ip saddr . ip daddr @hairpin {mark}",) + tuple(
            r for p in PROTOS for r in (
                f"meta l4proto {p} ct original ip daddr . meta l4proto . ct original proto-dst vmap @affinity-ips",
                f"meta l4proto {p} meta l4proto . ct original proto-dst vmap @affinity-nodeports"))),
    ]
    return {c.name: c for c in chains}


def dynamic_chain(name: str, cfg: NodeConfig) -> ChainDef | None:
    """The rules of a shared selection or affinity-record chain, derived from its name alone."""
    m = SELECTION.match(name)
    if m:
        entry, group, aff, n = m.group(1), m.group(2), m.group(3), int(m.group(4))
        rules: list[str] = []
        if group == "c" and cfg.cluster_cidr:
            rules.append(f"ip saddr != {cfg.cluster_cidr} {_mark(cfg)}")
        elif group == "x":
            rules.append(_mark(cfg))
        if aff:
            rules.append("dnat ip to ip saddr . ip daddr . meta l4proto . th dport map @affinity")
        if entry == "ip":
            rules.append(f"dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @{name}-ep")
        else:
            rules.append(f"dnat ip to meta l4proto . th dport . numgen random mod {n} map @{name}-ep")
        return ChainDef(name, tuple(rules))
    m = AFFINITY_RECORD.match(name)
    if m:
        t = int(m.group(1))
        return ChainDef(name, tuple(
            f"meta l4proto {p} update @affinity {{ ip saddr . ct original ip daddr . meta l4proto . "
            f"ct original proto-dst timeout {t}s : ip daddr . th dport }}" for p in PROTOS))
    return None


_SELECTION_MAP = re.compile(r"^((ip|np)-[cxl]a?-[1-9][0-9]{0,5})-ep$")


def selection_map(chain: str) -> MapDef:
    """The endpoint map of a shared selection chain (created and deleted with the chain)."""
    if chain.startswith("ip-"):
        return MapDef(f"{chain}-ep", IP_KEY + ("integer",), EP_VALUE,
                      "typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ;")
    return MapDef(f"{chain}-ep", NP_KEY + ("integer",), EP_VALUE,
                  "typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport ;")


def map_def(name: str) -> MapDef | None:
    """Any map of our table by name: a static one or the endpoint map of a selection chain."""
    d = MAPS.get(name)
    if d is None:
        m = _SELECTION_MAP.match(name)
        if m:
            d = selection_map(m.group(1))
    return d


def is_dynamic_chain(name: str) -> bool:
    return bool(SELECTION.match(name) or AFFINITY_RECORD.match(name))


def maps_for(cfg: NodeConfig) -> dict[str, MapDef]:
    return {n: d for n, d in MAPS.items() if n != "nodeport-addresses" or cfg.nodeport_addresses}


def static_elements(cfg: NodeConfig) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {"fingerprint": {f"{fingerprint(cfg):#010x}": None}}
    if cfg.nodeport_addresses:
        out["nodeport-addresses"] = {c: None for c in cfg.nodeport_addresses}
    return out


LAYOUT_VERSION = 1


def fingerprint(cfg: NodeConfig) -> int:
    """A hash of everything static (map definitions, static chains and their rules, config). The
    table stores it in the `fingerprint` set; a table whose fingerprint differs was written by
    another version or configuration and is rebuilt in one transaction."""
    text = [f"v{LAYOUT_VERSION} {cfg.cluster_cidr} {cfg.nodeport_addresses} {cfg.masquerade_bit}"]
    text += [f"{d.kind} {d.name} {d.spec}" for d in maps_for(cfg).values()]
    for c in static_chains(cfg).values():
        text.append(f"chain {c.name} {c.hook}")
        text.extend(c.rules)
    return zlib.crc32("\n".join(text).encode())


def check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"bad nftables identifier {name!r}")
    return name
