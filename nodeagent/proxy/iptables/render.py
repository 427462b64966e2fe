"""The iptables renderer: service ports in, `iptables-restore --noflush` text of our chains out.
Pure: no kernel, no clock, no I/O.

Layout (kube-proxy's iptables mode, with our prefix; every chain we own starts with `NA-`):

nat
  PREROUTING, OUTPUT  -> NA-SERVICES            (jump rules, comment "nodeagent", ensured separately)
  POSTROUTING         -> NA-POSTROUTING
  NA-SERVICES     one rule per (ClusterIP | external IP | LB IP, proto, port) that has endpoints:
                  -> NA-SVC-<h> / NA-SVL-<h> (ClusterIP) or NA-EXT-<h> (external addresses);
                  last: node addresses -> NA-NODEPORTS
  NA-NODEPORTS    one rule per (proto, node port) -> NA-EXT-<h>
  NA-SVC-<h>      cluster endpoints: [off-cluster clients of the ClusterIP -> NA-MARK-MASQ],
                  [affinity: `recent --rcheck` per endpoint], `statistic` spread -> NA-SEP-<h>
  NA-SVL-<h>      the same over this node's endpoints (traffic policies Local)
  NA-EXT-<h>      external traffic; policy Cluster: mark, -> NA-SVC; policy Local: pods -> NA-SVC,
                  the node itself: mark, -> NA-SVC; everyone else -> NA-SVL (source preserved)
  NA-SEP-<h>      one endpoint: [hairpin: source is the endpoint -> NA-MARK-MASQ],
                  [affinity: `recent --set`] DNAT
  NA-MARK-MASQ    set the masquerade bit (0x4000 by default)
  NA-POSTROUTING  not marked: RETURN; clear the bit (kubernetes#92035: a packet that is
                  re-routed through here must not be masqueraded twice); MASQUERADE
filter
  INPUT, FORWARD, OUTPUT (ctstate NEW) -> NA-SERVICES    (jump rules, ensured separately)
  NA-SERVICES          REJECT per (address, proto, port) without usable endpoints; last: node
                       addresses -> NA-EXTERNAL-SERVICES
  NA-EXTERNAL-SERVICES REJECT per (proto, node port) without usable endpoints

Filter runs after nat's DNAT, so a reject rule sees only packets that were *not* DNATed: that is
how policy Local without a local endpoint rejects outside clients only (pods and the node were
DNATed to cluster endpoints in NA-EXT-<h> and no longer match the rule). A packet takes exactly
one of INPUT / FORWARD / OUTPUT (a locally generated one to a local address also INPUT, where
it is rejected the same way), so one filter chain serves all three.

Chain names hash the service port (and the endpoint) like kube-proxy: `NA-SVC-` + 16 base32
characters of SHA-256, 23 characters (iptables allows 28). The `recent` list of an endpoint is
named after its NA-SEP chain, so affinity is per (service port, endpoint) and the list goes away
with the chain.

Every interpolated value has been validated by the model (addresses, ports, protocols, names);
`_comment` checks the one free-text field once more, since a newline would be a restore command.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

from ..model import EndpointGroups, NodeConfig, ServicePort, ServicePortName

PREFIX = "NA-"
COMMENT = "nodeagent"        # marks our jump rules in the built-in chains
SERVICES = PREFIX + "SERVICES"
NODEPORTS = PREFIX + "NODEPORTS"
EXTERNAL = PREFIX + "EXTERNAL-SERVICES"
POSTROUTING = PREFIX + "POSTROUTING"
MARK_MASQ = PREFIX + "MARK-MASQ"
NAT_STATIC = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
FILTER_STATIC = (SERVICES, EXTERNAL)
MAX_CHAIN = 28

# (table, built-in chain, rule spec): the only rules we put outside our own chains
JUMPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("nat", "PREROUTING", ("-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("nat", "OUTPUT", ("-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("nat", "POSTROUTING", ("-m", "comment", "--comment", COMMENT, "-j", POSTROUTING)),
    ("filter", "INPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("filter", "FORWARD", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
    ("filter", "OUTPUT", ("-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", COMMENT, "-j", SERVICES)),
)

_COMMENT_OK = re.compile(r"^[a-z0-9][a-z0-9./:-]{0,250}$")
OUR_CHAIN = re.compile(r"^NA-[A-Z0-9-]{1,25}$")


def _comment(text: str) -> str:
    if not _COMMENT_OK.match(text):
        raise ValueError(f"comment {text!r} is not safe for iptables-restore")
    return text


def chain_name(kind: str, spn: ServicePortName, endpoint: str = "") -> str:
    """Deterministic: the same service port (and endpoint) always gives the same chain."""
    key = f"{spn.service.namespace}/{spn.service.name}:{spn.port_name}/{spn.protocol}"
    if endpoint:
        key += f"/{endpoint}"
    h = base64.b32encode(hashlib.sha256(key.encode()).digest()).decode()[:16]
    name = f"{PREFIX}{kind}-{h}"
    assert len(name) <= MAX_CHAIN
    return name


def probability(n: int) -> str:
    """`statistic` probability for the first of n remaining endpoints (kube-proxy's format)."""
    return f"{1.0 / n:0.10f}"


def node_address_matches(cfg: NodeConfig) -> list[str]:
    """The match(es) for "a destination that is this node", for node ports: the configured CIDRs,
    or every local address except loopback (a node port on 127.0.0.1 needs route_localnet)."""
    if cfg.nodeport_addresses:
        return [f"-d {c}" for c in cfg.nodeport_addresses]
    return ["! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL"]


@dataclass(frozen=True)
class Fragment:
    """What one service port contributes; the proxier keeps one per service port and joins them."""
    chains: tuple[str, ...]     # nat chains it owns (declared and flushed by every restore)
    nat_services: str           # rules of NA-SERVICES (each line ends with a newline)
    nat_nodeports: str          # rules of NA-NODEPORTS
    nat_rules: str              # the rules of its own chains
    filter_services: str        # rejects by address
    filter_external: str        # rejects by node port

    @property
    def rules(self) -> int:
        return sum(t.count("\n") for t in (self.nat_services, self.nat_nodeports, self.nat_rules,
                                           self.filter_services, self.filter_external))


def _dport(proto: str, port: int) -> str:
    return f"-p {proto} -m {proto} --dport {int(port)}"


def _reject(proto: str) -> str:
    return "-j REJECT --reject-with tcp-reset" if proto == "tcp" else "-j REJECT"


def service_fragment(sp: ServicePort, groups: EndpointGroups, cfg: NodeConfig) -> Fragment:
    spn, proto = sp.name, sp.protocol
    c = _comment(f"{spn.service.namespace}/{spn.service.name}" + (f":{spn.port_name}" if spn.port_name else ""))
    svc, svl, ext = chain_name("SVC", spn), chain_name("SVL", spn), chain_name("EXT", spn)
    cluster, local = groups.cluster, groups.local
    mark = f"-j {MARK_MASQ}"
    chains: dict[str, list[str]] = {}
    seps: dict[tuple[str, int], str] = {}

    def sep(e) -> str:
        name = seps.get(e.addr)
        if name is None:
            name = seps[e.addr] = chain_name("SEP", spn, f"{e.ip}:{e.port}")
        return name

    def spread(chain: str, endpoints, masq_offcluster: bool) -> None:
        rules = chains.setdefault(chain, [])
        if masq_offcluster and cfg.cluster_cidr:
            # off-cluster clients (and the node itself) of the ClusterIP are masqueraded, or the
            # endpoint would answer them directly; this chain also serves external traffic,
            # hence the destination in the rule
            rules.append(f"! -s {cfg.cluster_cidr} -d {sp.cluster_ip}/32 {_dport(proto, sp.port)} {mark}")
        if sp.affinity_timeout:
            for e in endpoints:
                s = sep(e)
                rules.append(f"-m recent --rcheck --seconds {int(sp.affinity_timeout)} --reap --name {s} "
                             f"--mask 255.255.255.255 --rsource -j {s}")
        n = len(endpoints)
        for i, e in enumerate(endpoints):
            if i < n - 1:
                rules.append(f"-m statistic --mode random --probability {probability(n - i)} -j {sep(e)}")
            else:
                rules.append(f"-j {sep(e)}")

    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    filter_services: list[str] = []
    filter_external: list[str] = []

    # ClusterIP
    dst = f"-d {sp.cluster_ip}/32 -p {proto} -m comment --comment {c} -m {proto} --dport {sp.port}"
    if groups.internal:
        internal = svl if sp.internal_local else svc
        spread(internal, groups.internal, True)
        nat_services.append(f"-A {SERVICES} {dst} -j {internal}")
    else:
        filter_services.append(f"-A {SERVICES} {dst} {_reject(proto)}")

    # external IPs, load-balancer IPs, node port: all through NA-EXT-<h>
    if sp.has_external:
        if cluster:
            rules = chains.setdefault(ext, [])
            if not sp.external_local:
                rules += [mark, f"-j {svc}"]
            else:
                # pods and the node itself may use every endpoint (the node is masqueraded: its
                # source address would not route back through us); outside clients reach only
                # this node's endpoints, with their source address preserved
                if cfg.cluster_cidr:
                    rules.append(f"-s {cfg.cluster_cidr} -j {svc}")
                rules += [f"-m addrtype --src-type LOCAL {mark}", f"-m addrtype --src-type LOCAL -j {svc}"]
                if local:
                    rules.append(f"-j {svl}")
                    if svl not in chains:   # already built when it is also the ClusterIP's chain
                        spread(svl, local, False)
                # no local endpoint: outside clients are not DNATed and meet the filter REJECT
            if svc not in chains:
                spread(svc, cluster, False)
        for addr in sp.external_ips + sp.load_balancer_ips:
            d = f"-d {addr}/32 -p {proto} -m comment --comment {c} -m {proto} --dport {sp.port}"
            if cluster:
                nat_services.append(f"-A {SERVICES} {d} -j {ext}")
            if not groups.external:
                filter_services.append(f"-A {SERVICES} {d} {_reject(proto)}")
        if sp.node_port:
            d = f"-p {proto} -m comment --comment {c} -m {proto} --dport {sp.node_port}"
            if cluster:
                nat_nodeports.append(f"-A {NODEPORTS} {d} -j {ext}")
            if not groups.external:
                filter_external.append(f"-A {EXTERNAL} {d} {_reject(proto)}")

    for (ip, port), name in seps.items():
        rules = chains[name] = [f"-s {ip}/32 {mark}"]   # hairpin: a pod reaching itself
        if sp.affinity_timeout:
            rules.append(f"-p {proto} -m recent --set --name {name} --mask 255.255.255.255 --rsource "
                         f"-m {proto} -j DNAT --to-destination {ip}:{port}")
        else:
            rules.append(f"-p {proto} -m {proto} -j DNAT --to-destination {ip}:{port}")

    order = sorted(chains)
    nat_rules = "".join(f"-A {ch} {r}\n" for ch in order for r in chains[ch])

    def text(lines):
        return "".join(line + "\n" for line in lines)

    return Fragment(tuple(order), text(nat_services), text(nat_nodeports), nat_rules,
                    text(filter_services), text(filter_external))


def static_rules(cfg: NodeConfig) -> tuple[str, str, str, str]:
    """(nat dispatch to node ports, nat postrouting + mark chain, filter dispatch) rule texts."""
    m = cfg.masquerade_mark
    nat_dispatch = "".join(f"-A {SERVICES} {match} -j {NODEPORTS}\n" for match in node_address_matches(cfg))
    post = (f"-A {POSTROUTING} -m mark ! --mark {m:#x}/{m:#x} -j RETURN\n"
            f"-A {POSTROUTING} -j MARK --xor-mark {m:#x}\n"
            f"-A {POSTROUTING} -m comment --comment {COMMENT} -j MASQUERADE --random-fully\n")
    mark = f"-A {MARK_MASQ} -j MARK --or-mark {m:#x}\n"
    filter_dispatch = "".join(f"-A {SERVICES} {match} -j {EXTERNAL}\n" for match in node_address_matches(cfg))
    return nat_dispatch, post, mark, filter_dispatch


def render(fragments, cfg: NodeConfig, stale_nat=(), stale_filter=(), changed=None) -> str:
    """The restore text: `fragments` in the order they are to appear (the proxier sorts by
    service port, so the smaller service port wins a conflicting address); stale chains (ours,
    present in the kernel, no longer wanted) are flushed and deleted at the end, after every rule
    that referred to them has been rewritten.

    `changed` (a partial sync, as kube-proxy's since 1.28): only those fragments' own chains are
    declared and written; a chain that is not declared keeps its rules under `--noflush`. The
    dispatch chains (NA-SERVICES, NA-NODEPORTS, the filter ones) are always written whole: they
    hold a rule per service and their order matters."""
    own = fragments if changed is None else changed
    nat_dispatch, post, mark, filter_dispatch = static_rules(cfg)
    out: list[str] = ["*filter\n"]
    out += [f":{c} - [0:0]\n" for c in FILTER_STATIC]
    out += [f":{c} - [0:0]\n" for c in stale_filter]
    out += [f.filter_services for f in fragments]
    out.append(filter_dispatch)
    out += [f.filter_external for f in fragments]
    out += [f"-X {c}\n" for c in stale_filter]
    out.append("COMMIT\n*nat\n")
    out += [f":{c} - [0:0]\n" for c in NAT_STATIC]
    out += [f":{c} - [0:0]\n" for f in own for c in f.chains]
    out += [f":{c} - [0:0]\n" for c in stale_nat]
    out += [f.nat_services for f in fragments]
    out.append(nat_dispatch)
    out += [f.nat_nodeports for f in fragments]
    out.append(post)
    out.append(mark)
    out += [f.nat_rules for f in own]
    out += [f"-X {c}\n" for c in stale_nat]
    out.append("COMMIT\n")
    return "".join(out)


def our_chains(save_text: str) -> set[str]:
    """Our chains declared in an iptables-save text of one table."""
    out = set()
    for line in save_text.splitlines():
        if line.startswith(":" + PREFIX):
            name = line[1:].split(" ", 1)[0]
            if OUR_CHAIN.match(name):
                out.add(name)
    return out
