"""Let pod traffic through a host firewall that drops forwarded packets (as Docker sets the
FORWARD policy to DROP), as flannel's FLANNEL-FWD and kube-proxy's KUBE-FORWARD do.

nftables evaluates every table's forward hook: an accept in a table of ours cannot override a
drop in iptables' filter table, so the accept must go into that FORWARD chain. For each iptables
backend (legacy and nft) whose FORWARD chain drops (policy DROP, or a DROP or REJECT rule), we
keep a chain of ours, NODEAGENT-FORWARD, accepting traffic from and to the cluster CIDR (after
DNAT a service's traffic is addressed to a pod), and one jump to it near the top of FORWARD
(below our iptables-mode proxy's jumps, which must reject first). A backend whose filter table
does not exist, or whose FORWARD drops nothing, is left untouched: no table is created for
nothing. Only our chain and our jump are ever written or removed."""
from __future__ import annotations

import shutil
import subprocess

from .masquerade import cluster_net

CHAIN = "NODEAGENT-FORWARD"
COMMENT = "nodeagent: pod traffic through a dropping FORWARD"
BACKENDS = ("iptables-legacy", "iptables-nft")


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def _forward_rules(tool: str) -> list[str] | None:
    """`-S FORWARD` of that backend, or None when its filter table does not exist (asking
    iptables-nft would create it, and iptables-legacy would load the table's module)."""
    if shutil.which(tool) is None:
        return None
    if tool == "iptables-nft":
        if _run(["nft", "list", "chain", "ip", "filter", "FORWARD"]).returncode != 0:
            return None
    else:
        try:   # the legacy tables instantiated in this network namespace
            with open("/proc/net/ip_tables_names") as f:
                if "filter" not in f.read().split():
                    return None
        except OSError:
            return None
    out = _run([tool, "-w", "-t", "filter", "-S", "FORWARD"])
    return out.stdout.splitlines() if out.returncode == 0 else None


def _target(rule: str) -> str:
    words = rule.split()
    return words[words.index("-j") + 1] if "-j" in words[:-1] else ""


def needed(rules: list[str]) -> bool:
    """The chain drops forwarded traffic: policy DROP, or a DROP or REJECT rule of its own."""
    return "-P FORWARD DROP" in rules or any(
        r.startswith("-A FORWARD ") and _target(r) in ("DROP", "REJECT") for r in rules)


def in_place(rules: list[str]) -> bool:
    """Our jump is there once, with only our proxy's jumps (NA-*, iptables mode) above it: those
    reject new connections to services without endpoints and must see pod traffic first."""
    body = [r for r in rules if r.startswith("-A FORWARD ")]
    ours = [i for i, r in enumerate(body) if _target(r) == CHAIN]
    return len(ours) == 1 and all(_target(r).startswith("NA-") for r in body[:ours[0]])


def _position(rules: list[str]) -> int:
    """Where our jump goes (1-based): right below the leading run of our proxy's jumps."""
    body = [r for r in rules if r.startswith("-A FORWARD ") and _target(r) != CHAIN]
    n = 0
    while n < len(body) and _target(body[n]).startswith("NA-"):
        n += 1
    return n + 1


def restore_input(cluster_cidr: str) -> str:
    net = cluster_net(cluster_cidr)
    # declaring the chain in a --noflush restore creates it or empties it: one atomic rewrite
    return (f"*filter\n:{CHAIN} - [0:0]\n"
            f'-A {CHAIN} -s {net} -m comment --comment "{COMMENT}" -j ACCEPT\n'
            f'-A {CHAIN} -d {net} -m comment --comment "{COMMENT}" -j ACCEPT\n'
            "COMMIT\n")


def apply(cluster_cidr: str) -> list[str]:
    """Make sure every dropping backend lets pod traffic through; returns the backends changed."""
    text = restore_input(cluster_cidr)
    changed = []
    for tool in BACKENDS:
        rules = _forward_rules(tool)
        if rules is None or not needed(rules):
            continue
        have = _run([tool + "-save", "-t", "filter"]).stdout
        if in_place(rules) and _ours_intact(have, cluster_cidr):
            continue
        _run([tool + "-restore", "-w", "--noflush"], input=text, check=True)
        while _run([tool, "-w", "-t", "filter", "-D", "FORWARD", "-j", CHAIN]).returncode == 0:
            pass   # one jump, moved back up if something was inserted above it
        rules = _forward_rules(tool) or []
        _run([tool, "-w", "-t", "filter", "-I", "FORWARD", str(_position(rules)), "-j", CHAIN], check=True)
        changed.append(tool)
    return changed


def _ours_intact(save: str, cluster_cidr: str) -> bool:
    net = str(cluster_net(cluster_cidr))
    mine = [ln for ln in save.splitlines() if ln.startswith(f"-A {CHAIN} ")]
    return len(mine) == 2 and f"-s {net} " in mine[0] and f"-d {net} " in mine[1]


def remove() -> None:
    for tool in BACKENDS:
        if _forward_rules(tool) is None:
            continue
        while _run([tool, "-w", "-t", "filter", "-D", "FORWARD", "-j", CHAIN]).returncode == 0:
            pass
        _run([tool, "-w", "-t", "filter", "-F", CHAIN])
        _run([tool, "-w", "-t", "filter", "-X", CHAIN])
