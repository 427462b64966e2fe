"""`nodeagent trace`: watch new connections to services, live: client, service VIP and port, the
endpoint the proxy chose and its pod and node, and the verdict (DNAT, masquerade, reject).

kube-proxy gives no view of where a connection went. Here rules of our own, in chains of our own
(NA-TRACE-PRE, NA-TRACE-POST), copy the first packet of each new connection to a service port to
user space with NFQUEUE: once before the proxy's DNAT (it sees the VIP), once after it (it sees
the endpoint, and the proxy's masquerade mark). Both queue with `--queue-bypass`, so traffic
never stops if the tracer dies: with nobody listening the kernel lets packets through. The
chains are removed on exit (also on Ctrl-C or SIGTERM; after kill -9, the next run removes what
is left), so tracing costs nothing when it is not running. Packets are decoded with scapy and
always accepted unchanged.

The tracer works in the network namespace it runs in (a node's); `nodeagent lab trace` runs one
in every node of a lab and merges their lines."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import subprocess
import sys
import time

MASQ_MARK = 0x4000
NODE_PORT = "node"   # a target's address for node ports
IPT = "iptables-legacy"
PRE, POST = "NA-TRACE-PRE", "NA-TRACE-POST"
COMMENT = "nodeagent trace"
# (table, built-in chain, our chain): before the proxy's DNAT (mangle runs at -150, DNAT at -100)
# and after it (filter). This kernel has xtables' NFQUEUE but not nftables' queue expression,
# so the tracer's rules are iptables rules (legacy backend), in chains of its own.
HOOKS = [("mangle", "PREROUTING", PRE), ("mangle", "OUTPUT", PRE),
         ("filter", "FORWARD", POST), ("filter", "OUTPUT", POST), ("filter", "INPUT", POST)]
log = logging.getLogger("nodeagent.trace")


def rules(targets: list[tuple[str, str, int]], queue: int) -> list[list[str]]:
    """iptables argument lists for our chains, for targets (VIP, protocol, port). Every value is
    validated before it becomes an argument (and no shell is involved)."""
    if not targets:
        raise ValueError("nothing to trace: no service with a ClusterIP")
    out = []
    for vip, proto, port in targets:
        if proto not in ("tcp", "udp", "sctp") or not 0 < int(port) < 65536:
            raise ValueError(f"bad target {vip} {proto} {port}")
        queue_to = ["-j", "NFQUEUE", "--queue-num"]
        if vip == NODE_PORT:   # a node port: any local address of this node
            pre_dst, post_dst = ["-m", "addrtype", "--dst-type", "LOCAL"], []
        else:
            ip = str(ipaddress.IPv4Address(vip))
            pre_dst, post_dst = ["-d", ip], ["--ctorigdst", ip]
        out.append(["-t", "mangle", "-A", PRE, *pre_dst, "-p", proto, "--dport", str(int(port)), "-m", "conntrack",
                    "--ctstate", "NEW", *queue_to, str(queue), "--queue-bypass"])
        # the DNAT state: a connection the proxy did not translate (no endpoint: it is rejected,
        # in iptables mode from filter chains that run after ours) stays pending and shows as REJECT
        out.append(["-t", "filter", "-A", POST, "-p", proto, "-m", "conntrack", "--ctstate", "NEW",
                    "-m", "conntrack", "--ctstate", "DNAT", *post_dst,
                    "--ctorigdstport", str(int(port)), *queue_to, str(queue + 1), "--queue-bypass"])
    return out


def _ipt(*args: str, check: bool = True) -> bool:
    p = subprocess.run([IPT, "-w", *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise OSError(f"{IPT} {' '.join(args)}: {p.stderr.strip()}")
    return p.returncode == 0


def install(targets, queue: int) -> None:
    remove()
    for table, chain in {(t, c) for t, _, c in HOOKS}:
        _ipt("-t", table, "-N", chain)
    for args in rules(targets, queue):
        _ipt(*args)
    for table, builtin, chain in HOOKS:
        _ipt("-t", table, "-I", builtin, "1", "-m", "comment", "--comment", COMMENT, "-j", chain)


def remove() -> None:
    """Our jumps and chains only; quiet when there is nothing (idempotent)."""
    for table, builtin, chain in HOOKS:
        while _ipt("-t", table, "-D", builtin, "-m", "comment", "--comment", COMMENT, "-j", chain, check=False):
            pass
    for table, chain in {(t, c) for t, _, c in HOOKS}:
        _ipt("-t", table, "-F", chain, check=False)
        _ipt("-t", table, "-X", chain, check=False)


class Tracer:
    """Pairs what the two queues see into one line per connection."""

    def __init__(self, names: dict, node: str, out=sys.stdout, wait_for_dnat: float = 0.3):
        self.names = names          # ip -> "pod ns/name on node", vip:port -> "service ns/name"
        self.node = node
        self.out = out
        self.pending: dict[tuple, tuple[float, str, str]] = {}
        self.done: dict[tuple, float] = {}   # connections already shown: their SYN retransmits are not
        self.wait = wait_for_dnat
        self.lines = 0

    @staticmethod
    def flow(pkt_bytes: bytes):
        from scapy.layers.inet import IP
        ip = IP(pkt_bytes)
        l4 = ip.payload
        proto = {6: "tcp", 17: "udp", 132: "sctp"}.get(ip.proto, str(ip.proto))
        sport, dport = getattr(l4, "sport", 0), getattr(l4, "dport", 0)
        return ip.src, sport, ip.dst, dport, proto

    def before(self, payload: bytes) -> None:
        src, sport, dst, dport, proto = self.flow(payload)
        if (src, sport, proto) not in self.done and (src, sport, proto) not in self.pending:
            self.pending[(src, sport, proto)] = (time.monotonic(), f"{dst}:{dport}", proto)

    def after(self, payload: bytes, mark: int) -> None:
        src, sport, dst, dport, proto = self.flow(payload)
        key = (src, sport, proto)
        if key in self.done:
            return  # a retransmitted first packet of a connection already shown
        seen = self.pending.pop(key, None)
        self.done[key] = time.monotonic()
        vip = seen[1] if seen else "?"
        verdict = "DNAT+masquerade" if mark & MASQ_MARK else "DNAT"
        self.emit(src, sport, proto, vip, f"{dst}:{dport}", verdict)

    def expire(self) -> None:
        """A connection seen before DNAT but never after it was rejected (no usable endpoint)."""
        now = time.monotonic()
        for key, t in list(self.done.items()):
            if now - t > 10:
                del self.done[key]
        for key, (t, vip, proto) in list(self.pending.items()):
            if now - t > self.wait:
                del self.pending[key]
                self.done[key] = now
                self.emit(key[0], key[1], proto, vip, "-", "REJECT (no usable endpoint)")

    def emit(self, src, sport, proto, vip, endpoint, verdict) -> None:
        svc = self.names.get(vip) or self.names.get(f"nodeport:{vip.rsplit(':', 1)[-1]}", "")
        ep_ip = endpoint.split(":")[0]
        who = self.names.get(ep_ip, "")
        self.out.write(f"{time.strftime('%H:%M:%S')} {self.node:6} {proto:4} {src}:{sport} -> {vip} {svc} "
                       f"=> {endpoint} {who} [{verdict}]\n")
        self.out.flush()
        self.lines += 1


async def names_from_api(kubeconfig: str, service: str) -> tuple[dict, list[tuple[str, str, int]]]:
    from control.client import ApiClient
    client = ApiClient.from_kubeconfig(kubeconfig)
    names: dict = {}
    targets = []
    try:
        svcs = (await client.list("v1", "services"))["items"]
        try:
            pods = (await client.list("v1", "pods"))["items"]
        except Exception:  # a node's credential cannot list every pod: endpoints are then IPs only
            pods = []
        for s in svcs:
            key = f"{s['metadata']['namespace']}/{s['metadata']['name']}"
            cip = s["spec"].get("clusterIP")
            if not cip or cip == "None":
                continue
            for p in s["spec"].get("ports") or []:
                names[f"{cip}:{p['port']}"] = f"({key})"
                if not service or service == key:
                    targets.append((cip, p.get("protocol", "TCP").lower(), p["port"]))
                    if p.get("nodePort"):
                        names[f"nodeport:{p['nodePort']}"] = f"({key} node port)"
                        targets.append((NODE_PORT, p.get("protocol", "TCP").lower(), p["nodePort"]))
        for p in pods:
            ip = (p.get("status") or {}).get("podIP")
            if ip:
                names[ip] = f"(pod {p['metadata']['namespace']}/{p['metadata']['name']} on {p['spec'].get('nodeName', '?')})"
    finally:
        await client.close()
    if not targets:
        raise SystemExit(f"no service {service} with a ClusterIP" if service else "no service with a ClusterIP to trace")
    return names, targets


async def run_tracer(args) -> int:
    from netfilterqueue import NetfilterQueue
    from scapy.layers.inet import IP  # noqa: F401  imported now: not while a first packet waits
    names, targets = await names_from_api(args.kubeconfig, args.service)
    tracer = Tracer(names, args.node)
    queues = []
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    def on_before(pkt):
        try:
            tracer.before(pkt.get_payload())
        finally:
            pkt.accept()

    def on_after(pkt):
        try:
            tracer.after(pkt.get_payload(), pkt.get_mark())
        finally:
            pkt.accept()

    try:
        for num, cb in ((args.queue, on_before), (args.queue + 1, on_after)):
            q = NetfilterQueue()
            q.bind(num, cb)
            loop.add_reader(q.get_fd(), lambda q=q: q.run(block=False))
            queues.append(q)
        install(targets, args.queue)
        print(f"tracing {'service ' + args.service if args.service else 'all services'} on {args.node} "
              f"({len(targets)} VIP ports); Ctrl-C to stop", flush=True)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stop.done():
            await asyncio.wait([stop], timeout=0.1)
            tracer.expire()
            if deadline and time.monotonic() > deadline:
                break
            if args.count and tracer.lines >= args.count:
                break
    finally:
        remove()
        for q in queues:
            loop.remove_reader(q.get_fd())
            q.unbind()
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service", default="", help="NAMESPACE/NAME to trace (default: every service)")
    p.add_argument("--kubeconfig", default="/var/lib/nodeagent/admin.kubeconfig",
                   help="to name services, pods and nodes")
    p.add_argument("--node", default="", help="this node's name, printed on each line")
    p.add_argument("--queue", type=int, default=4200, help="first of the two NFQUEUE numbers used")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (default: on Ctrl-C)")
    p.add_argument("--count", type=int, default=0, help="stop after this many connections")


def run(args: argparse.Namespace) -> int:
    import socket
    args.node = args.node or socket.gethostname()
    remove()  # what a tracer killed with -9 may have left
    return asyncio.run(run_tracer(args))
