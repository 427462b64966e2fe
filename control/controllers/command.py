"""`nodeagent controller-manager`: the controllers, through the API server's HTTP API only."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from control.leaderelection import (add_connection_arguments, add_leader_election_arguments,
                                    connection_from_args, fast_httpx, main_loop, run_component)

log = logging.getLogger("nodeagent.controllers")

ALL = ("endpointslice", "endpoints", "replicaset", "deployment", "nodeipam", "nodelifecycle",
       "garbagecollector")


@dataclass
class ControllerOptions:
    controllers: tuple[str, ...] = ALL
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    default_toleration_seconds: float = 300.0
    node_lease_namespace: str = "kube-node-lease"
    max_endpoints_per_slice: int = 100
    pod_gc_period: float = 20.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_connection_arguments(p)
    add_leader_election_arguments(p, "kube-controller-manager")
    p.add_argument("--controllers", default=",".join(ALL),
                   help="comma-separated controllers to run; '*' for all (default: all: %(default)s)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="pod CIDR of the cluster (default: %(default)s)")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, help="size of each node's pod CIDR (default: /%(default)s)")
    p.add_argument("--allocate-node-cidrs", action=argparse.BooleanOptionalAction, default=True,
                   help="run node IPAM (default: on)")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="SECONDS",
                   help="a node not heard of for this long is marked Unknown and tainted (default: %(default)s)")
    p.add_argument("--node-monitor-period", type=float, default=5.0, metavar="SECONDS",
                   help="how often node health is checked (default: %(default)s)")
    p.add_argument("--default-toleration-seconds", type=float, default=300.0, metavar="SECONDS",
                   help="how long pods without their own toleration stay on a not-ready or unreachable "
                        "node before eviction (default: %(default)s)")
    p.add_argument("--node-lease-namespace", default="kube-node-lease")
    p.add_argument("--max-endpoints-per-slice", type=int, default=100)
    p.add_argument("--pod-gc-period", type=float, default=20.0, metavar="SECONDS")


def options_from_args(args: argparse.Namespace) -> ControllerOptions:
    wanted = ALL if args.controllers.strip() in ("*", "") else tuple(
        c.strip() for c in args.controllers.split(",") if c.strip())
    unknown = [c for c in wanted if c not in ALL]
    if unknown:
        raise SystemExit(f"--controllers: unknown {', '.join(unknown)} (known: {', '.join(ALL)})")
    if not args.allocate_node_cidrs:
        wanted = tuple(c for c in wanted if c != "nodeipam")
    if not 1 <= args.max_endpoints_per_slice <= 1000:
        raise SystemExit("--max-endpoints-per-slice must be between 1 and 1000")
    opts = ControllerOptions(controllers=wanted, cluster_cidr=args.cluster_cidr,
                             node_cidr_mask_size=args.node_cidr_mask_size,
                             node_monitor_grace_period=args.node_monitor_grace_period,
                             node_monitor_period=args.node_monitor_period,
                             default_toleration_seconds=args.default_toleration_seconds,
                             node_lease_namespace=args.node_lease_namespace,
                             max_endpoints_per_slice=args.max_endpoints_per_slice,
                             pod_gc_period=args.pod_gc_period)
    if "nodeipam" in wanted:
        from .nodeipam import CidrSet
        try:
            CidrSet(opts.cluster_cidr, opts.node_cidr_mask_size)
        except ValueError as err:
            raise SystemExit(f"--cluster-cidr/--node-cidr-mask-size: {err}")
    return opts


def build(client, opts: ControllerOptions, watch_client=None):
    """The manager and the controllers it runs."""
    from .deployment import DeploymentController
    from .endpoints import EndpointsController
    from .endpointslice import EndpointSliceController
    from .gc import GarbageCollector
    from .manager import Manager
    from .nodeipam import NodeIpamController
    from .nodelifecycle import NodeLifecycleController
    from .replicaset import ReplicaSetController

    mgr = Manager(client, node_lease_namespace=opts.node_lease_namespace, watch_client=watch_client)
    make = {
        "endpointslice": lambda: EndpointSliceController(mgr, opts.max_endpoints_per_slice),
        "endpoints": lambda: EndpointsController(mgr),
        "replicaset": lambda: ReplicaSetController(mgr),
        "deployment": lambda: DeploymentController(mgr),
        "nodeipam": lambda: NodeIpamController(mgr, opts.cluster_cidr, opts.node_cidr_mask_size),
        "nodelifecycle": lambda: NodeLifecycleController(mgr, opts.node_monitor_grace_period,
                                                         opts.node_monitor_period, opts.default_toleration_seconds),
        "garbagecollector": lambda: GarbageCollector(mgr, opts.pod_gc_period),
    }
    return mgr, [make[name]() for name in opts.controllers]


async def run_controllers(client, opts: ControllerOptions, watch_client=None) -> None:
    mgr, controllers = build(client, opts, watch_client)
    await mgr.run(controllers)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fast_httpx()
    conn = connection_from_args(args)
    opts = options_from_args(args)

    async def main() -> None:
        client, watch_client = conn.client(), conn.client()
        try:
            await run_component(args, client, lambda: run_controllers(client, opts, watch_client))
        finally:
            await client.close()
            await watch_client.close()

    log.info("controller-manager (%s) talking to %s", ", ".join(opts.controllers), ", ".join(conn.servers))
    return main_loop(main)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent controller-manager")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
