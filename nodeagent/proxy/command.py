"""`nodeagent proxy` (run the service proxy) and `nodeagent proxy cleanup` (remove everything
the proxy owns: our nftables table, or in iptables mode our NA- chains and jump rules, and
nothing else)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

log = logging.getLogger("nodeagent.proxy")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["run", "cleanup"], default="run",
                   help="run the proxy (default), or remove every rule it owns and exit")
    p.add_argument("--server", action="append", default=[],
                   help="API server URL (repeat for fail-over); default: from --kubeconfig")
    p.add_argument("--kubeconfig", default="", help="read the API server URL from this kubeconfig")
    p.add_argument("--mode", choices=["nftables", "iptables"], default="nftables",
                   help="data path (default: %(default)s; see docs/proxy.md)")
    p.add_argument("--iptables-backend", choices=["legacy", "nft"], default="legacy",
                   help="iptables mode: which iptables binaries write the rules (default: %(default)s)")
    p.add_argument("--node-name", default="", help="this node's name (default: the host name)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="pod CIDR of the cluster: clients outside it are masqueraded to ClusterIPs (default: %(default)s)")
    p.add_argument("--nodeport-addresses", default="",
                   help="comma-separated CIDRs whose local addresses serve node ports (default: every local address)")
    p.add_argument("--masquerade-bit", type=int, default=14, help="fwmark bit for masquerading (default: %(default)s)")
    p.add_argument("--table", default="nodeagent", help="our nftables table (ip family) (default: %(default)s)")
    p.add_argument("--healthz-bind-address", default="0.0.0.0:10256", metavar="HOST:PORT")
    p.add_argument("--metrics-bind-address", default="127.0.0.1:10249", metavar="HOST:PORT")
    p.add_argument("--health-check-bind-host", default="0.0.0.0",
                   help="address the service health check node ports listen on (default: %(default)s)")
    p.add_argument("--min-sync-period", type=float, default=0.1, help="seconds between syncs at least")
    p.add_argument("--sync-period", type=float, default=30.0,
                   help="seconds between periodic syncs; health fails after twice this with a change unsynced")
    p.add_argument("--full-sync-period", type=float, default=300.0,
                   help="seconds between full syncs that read our table back and repair drift")
    p.add_argument("--netns", default="",
                   help="program rules (and serve health check node ports) inside this named network namespace")
    p.add_argument("--log-level", default="info")


def _host_port(value: str, what: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"{what} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _client(args):
    """The API client: the kubeconfig's server and credentials (TLS, client certificate or
    token), or plain --server URLs; --server overrides the kubeconfig's server (fail-over)."""
    from control.client import ApiClient
    servers = [x for v in args.server for x in v.split(",") if x]
    if args.kubeconfig:
        return ApiClient.from_kubeconfig(args.kubeconfig, servers or None)
    if not servers:
        raise SystemExit("give --server URL or --kubeconfig PATH")
    return ApiClient(servers)


def _build(args):
    from .conntrack import Conntrack
    from .engine import SyncEngine
    from .model import Invalid, NodeConfig
    from .nft.backend import NftBackend
    from .nft.layout import check_table_name
    from .nft.proxier import NftProxier

    netns = args.netns or None
    try:
        cfg = NodeConfig(args.node_name or socket.gethostname(), args.cluster_cidr,
                         tuple(c for c in args.nodeport_addresses.split(",") if c), args.masquerade_bit)
        check_table_name(args.table)
    except (Invalid, ValueError) as err:
        raise SystemExit(f"invalid configuration: {err}")
    if getattr(args, "mode", "nftables") == "iptables":
        from .iptables.backend import IptablesBackend
        from .iptables.proxier import IptablesProxier
        proxier = IptablesProxier(IptablesBackend(getattr(args, "iptables_backend", "legacy"), netns=netns), cfg)
    else:
        proxier = NftProxier(NftBackend(netns=netns), cfg, args.table)
    return cfg, proxier, SyncEngine(proxier, cfg.node_name, conntrack=Conntrack(netns=netns))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.geteuid() != 0:
        log.warning("not running as root: programming the kernel will fail")
    cfg, proxier, engine = _build(args)
    if args.action == "cleanup":
        removed = proxier.cleanup()
        if proxier.mode == "iptables":
            print("removed our iptables chains and jump rules" if removed else "nothing to remove (no NA- chains)")
        else:
            print(f"removed nftables table ip {args.table}" if removed else f"nothing to remove (no table ip {args.table})")
        return 0
    return asyncio.run(_run(args, cfg, engine))


def make_runner(client, engine, args):
    """The runner and its two informers, for `nodeagent proxy` and for the agent, which runs the
    proxy in its own process with its own client."""
    from control.client import Informer

    from .runner import ProxyRunner

    services = Informer(client, "v1", "services", handler=engine.tracker.service_event)
    slices = Informer(client, "discovery.k8s.io/v1", "endpointslices", handler=engine.tracker.slice_event)
    runner = ProxyRunner(engine, min_sync_period=args.min_sync_period, sync_period=args.sync_period,
                         full_sync_period=args.full_sync_period,
                         healthz=_host_port(args.healthz_bind_address, "--healthz-bind-address"),
                         metrics_addr=_host_port(args.metrics_bind_address, "--metrics-bind-address"),
                         health_check_host=args.health_check_bind_host, netns=args.netns or None)
    return runner, [services, slices]


def build(args):
    """(config, proxier, engine) from parsed arguments (see add_arguments)."""
    return _build(args)


async def _run(args, cfg, engine) -> int:
    client = _client(args)
    runner, informers = make_runner(client, engine, args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = (f"iptables-{args.iptables_backend}, NA- chains" if args.mode == "iptables"
             else f"nftables table ip {args.table}")
    log.info("proxy for node %s (%s%s)", cfg.node_name, where, f" in netns {args.netns}" if args.netns else "")
    task = asyncio.create_task(runner.run(informers, stop))
    await stop.wait()
    # Rules stay: traffic keeps flowing while we are down; the next start reconciles them.
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    await client.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent proxy")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
