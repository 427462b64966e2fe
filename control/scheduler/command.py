"""`nodeagent scheduler`: binds pending pods to nodes, through the API server's HTTP API only."""
from __future__ import annotations

import argparse
import logging
import sys

from control.leaderelection import (add_connection_arguments, add_leader_election_arguments,
                                    connection_from_args, fast_httpx, main_loop, run_component)

log = logging.getLogger("nodeagent.scheduler")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_connection_arguments(p)
    add_leader_election_arguments(p, "kube-scheduler")
    p.add_argument("--scheduler-name", default="default-scheduler",
                   help="schedule pods whose spec.schedulerName is this (default: %(default)s)")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0, metavar="PERCENT",
                   help="stop filtering once this share of nodes is found feasible; 0 = adaptive "
                        "as kube-scheduler (50%% at 100 nodes down to 5%%, at least 100 nodes)")
    p.add_argument("--score-weights", default="", metavar="NAME=W,...",
                   help="score weights, e.g. least_allocated=1,balanced_allocation=1,selector_spread=2,"
                        "node_affinity=2,inter_pod_affinity=2,taint_toleration=3 (those are the defaults)")
    p.add_argument("--pod-initial-backoff", type=float, default=1.0, metavar="SECONDS")
    p.add_argument("--pod-max-backoff", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("--unschedulable-retry", type=float, default=60.0, metavar="SECONDS",
                   help="retry unschedulable pods at least this often even without cluster changes")
    p.add_argument("--parallel-binds", type=int, default=16, help="binding requests in flight at most")


def config_from_args(args: argparse.Namespace):
    from .scheduler import SchedulerConfig
    from .scores import Weights
    try:
        weights = Weights.parse(args.score_weights)
    except ValueError as err:
        raise SystemExit(f"--score-weights: {err}")
    if args.parallel_binds < 1:
        raise SystemExit("--parallel-binds must be at least 1")
    return SchedulerConfig(scheduler_name=args.scheduler_name,
                           percentage_of_nodes_to_score=args.percentage_of_nodes_to_score,
                           weights=weights, initial_backoff=args.pod_initial_backoff,
                           max_backoff=args.pod_max_backoff, unschedulable_timeout=args.unschedulable_retry,
                           parallel_binds=args.parallel_binds)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    fast_httpx()
    conn = connection_from_args(args)
    config = config_from_args(args)

    async def main() -> None:
        from .scheduler import Scheduler
        client = conn.client()
        try:
            await run_component(args, client, lambda: Scheduler(client, config, ssl_context=conn.ssl_context,
                                                                  token=conn.token).run())
        finally:
            await client.close()

    log.info("scheduler %s talking to %s", args.scheduler_name, ", ".join(conn.servers))
    return main_loop(main)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent scheduler")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
