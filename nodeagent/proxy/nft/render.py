"""The nftables renderer: desired state in, elements out. Pure: no kernel, no clock, no I/O.

`service_fragment` turns one service port and its endpoints into the map elements it owns;
`render` is the whole desired table (static part from layout.py plus every fragment). The
proxier keeps fragments per service port so that a partial sync re-renders only what changed.

Element keys and values are the exact text of the element in an nft script ("10.96.0.10 . tcp .
80 . 0" -> "10.244.1.5 . 8080", verdicts like "goto ip-c-3"); set elements have the value None.
Text, not tuples: at 10,000 services the script is 40,000 elements, and building each once as a
string is the cheapest form to index, compare with the kernel's and write out.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..model import EndpointGroups, NodeConfig, ServicePort, ServicePortName, categorize
from .layout import ChainDef, MapDef, dynamic_chain, maps_for, static_chains, static_elements

Elements = dict[str, dict[str, object]]   # map name -> key text -> value text (None in sets)


def _select(out: Elements, vmap: str, key: str, chain: str, endpoints) -> None:
    """Point `key` of a verdict map at a shared selection chain and fill that chain's endpoint
    map with one element per slot."""
    out[vmap][key] = f"goto {chain}"
    eps = out[f"{chain}-ep"]
    for i, e in enumerate(endpoints):
        eps[f"{key} . {i}"] = f"{e.ip} . {e.port}"


def service_fragment(sp: ServicePort, groups: EndpointGroups, cfg: NodeConfig) -> Elements:
    out: Elements = defaultdict(dict)
    proto, port = sp.protocol, str(sp.port)
    aff = "a" if sp.affinity_timeout else ""
    record = f"goto affinity-record-{sp.affinity_timeout}"

    # ClusterIP: internal endpoints (node-local ones when internalTrafficPolicy is Local).
    key = f"{sp.cluster_ip} . {proto} . {port}"
    if groups.internal:
        _select(out, "service-ips", key, f"ip-c{aff}-{len(groups.internal)}", groups.internal)
    else:
        out["no-endpoint-services"][key] = "goto reject-chain"
    if aff:
        out["affinity-ips"][key] = record
    out["cluster-ips"][sp.cluster_ip] = None   # every port of the service claims it (elements.py)

    # External destinations: external IPs and load-balancer IPs by address, node ports by port.
    cluster, local = groups.cluster, groups.local
    entries = [("ip", f"{x} . {proto} . {port}") for x in sp.external_ips + sp.load_balancer_ips]
    if sp.node_port:
        entries.append(("np", f"{proto} . {sp.node_port}"))
    for entry, key in entries:
        vmap, nomap = (("service-ips", "no-endpoint-services") if entry == "ip" else
                       ("service-nodeports", "no-endpoint-nodeports"))
        if aff:
            out["affinity-ips" if entry == "ip" else "affinity-nodeports"][key] = record
        if not cluster:
            out[nomap][key] = "goto reject-chain"
        elif not sp.external_local:
            _select(out, vmap, key, f"{entry}-x{aff}-{len(cluster)}", cluster)
        else:
            # Policy Local: clients outside the cluster reach only this node's endpoints with their
            # source address preserved; pods and the node itself use every endpoint (as kube-proxy).
            out[vmap][key] = "goto external-local" if entry == "ip" else "goto nodeport-local"
            _select(out, "ext-cluster" if entry == "ip" else "np-cluster", key, f"{entry}-c{aff}-{len(cluster)}", cluster)
            if local:
                _select(out, "ext-local" if entry == "ip" else "np-local", key, f"{entry}-l{aff}-{len(local)}", local)
            else:
                out[nomap][key] = "goto reject-external"

    # Hairpin: a pod reaching itself through the service must be masqueraded, or it would see a
    # packet from its own address and answer itself directly. Only endpoints on this node (or of
    # unknown node) can be hairpinned here.
    for e in set(groups.internal + groups.cluster + groups.local):
        if not e.node or e.node == cfg.node_name:
            out["hairpin"][f"{e.ip} . {e.ip}"] = None
    return out


@dataclass
class Ruleset:
    """A whole desired table (what `render` returns and what the fake can be compared with)."""
    maps: dict[str, MapDef]
    chains: dict[str, ChainDef]
    elements: Elements = field(default_factory=dict)


def chains_for(elements: Elements, cfg: NodeConfig) -> dict[str, ChainDef]:
    """Static chains plus the shared chains that some element points at."""
    chains = dict(static_chains(cfg))
    for name in sorted(referenced_chains(elements)):
        if name not in chains:
            c = dynamic_chain(name, cfg)
            if c is None:
                raise ValueError(f"element points at unknown chain {name!r}")
            chains[name] = c
    return chains


def referenced_chains(elements: Elements) -> set[str]:
    out = set()
    for m in elements.values():
        for v in m.values():
            if isinstance(v, str) and v.startswith(("goto ", "jump ")):
                out.add(v[5:])
    return out


def render(ports: dict[ServicePortName, ServicePort], endpoints, cfg: NodeConfig) -> Ruleset:
    """The whole desired table. `endpoints(spn)` gives the endpoints of one service port.
    Where two service ports claim the same key, the smaller ServicePortName wins (deterministic)."""
    elements: Elements = {n: dict(v) for n, v in static_elements(cfg).items()}
    for spn in sorted(ports, reverse=True):
        sp = ports[spn]
        frag = service_fragment(sp, categorize(sp, endpoints(spn), cfg.node_name), cfg)
        for m, items in frag.items():
            elements.setdefault(m, {}).update(items)
    return Ruleset(maps_for(cfg), chains_for(elements, cfg), elements)
