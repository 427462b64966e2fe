"""Stale UDP conntrack entries (kubernetes/kubernetes#19029, #59368).

A UDP "connection" lives in conntrack for as long as the client keeps sending, and every packet
follows the DNAT chosen for the first one. When that endpoint goes away the client keeps sending
into the void: new rules do not help, the entry must go. After each successful sync we delete:

* for every UDP service port, the entries DNATed to an endpoint it no longer has (one filter per
  destination the port is reachable on: ClusterIP, external and load-balancer IPs, node port);
* for a UDP service port that just got its first endpoint, the entries to its destinations that
  were never DNATed (created while there was no rule; they would black-hole the flow).

Commands are argument lists for the `conntrack` binary (no shell); every address is validated
again here and ports are integers. `plan` is pure and unit-tested.
"""
from __future__ import annotations

import ipaddress
import logging
import subprocess

from .netns import command_prefix
from .view import Change

log = logging.getLogger("nodeagent.proxy.conntrack")


def _ip(v: str) -> str:
    return str(ipaddress.IPv4Address(v))


def _endpoints(view) -> set[str]:
    if view is None:
        return set()
    g = view.groups
    return {e.ip for grp in (g.cluster, g.local) for e in grp}


def plan(changes: dict[object, Change]) -> list[list[str]]:
    cmds: list[list[str]] = []
    for before, after in changes.values():
        ref = after or before
        if ref is None or ref.port.protocol != "udp":
            continue
        old, new = _endpoints(before), _endpoints(after)
        gone = sorted(old - new)
        sp_old = before.port if before else None
        # destinations of the port as it was (removed endpoints) and as it is (new endpoints)
        for sp, eps, first in ((sp_old, gone, False), (after.port if after else None, None, True)):
            if sp is None:
                continue
            if first and (old or not new):
                continue   # not a "first endpoint" transition
            addrs = (sp.cluster_ip,) + sp.external_ips + sp.load_balancer_ips
            if first:
                for a in addrs:
                    cmds.append(["-D", "-p", "udp", "--orig-dst", _ip(a), "--orig-port-dst", str(int(sp.port))])
                if sp.node_port:
                    cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(int(sp.node_port))])
                continue
            for ep in eps:
                for a in addrs:
                    cmds.append(["-D", "-p", "udp", "--orig-dst", _ip(a), "--orig-port-dst", str(int(sp.port)),
                                 "--dst-nat", _ip(ep)])
                if sp.node_port:
                    cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(int(sp.node_port)), "--dst-nat", _ip(ep)])
    return cmds


class Conntrack:
    def __init__(self, netns: str | None = None, binary: str = "conntrack", timeout: float = 10.0):
        self.prefix = command_prefix(netns) + [binary]
        self.timeout = timeout
        self.deleted_runs = 0

    def cleanup(self, changes: dict[object, Change]) -> int:
        """Run the deletions; returns how many commands ran. `conntrack -D` exits 1 when nothing
        matched, which is not an error here."""
        cmds = plan(changes)
        for args in cmds:
            r = subprocess.run(self.prefix + args, capture_output=True, timeout=self.timeout)
            if r.returncode not in (0, 1):
                raise RuntimeError(f"conntrack {' '.join(args)}: {r.stderr.decode(errors='replace').strip()}")
            self.deleted_runs += 1
        return len(cmds)
