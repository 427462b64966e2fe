"""The `nodeagent` command. Each subcommand imports its module only when it runs, so that a
quick command does not pay for the imports of a heavy one."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent", description="Kubernetes-style networking on your own Linux nodes")
    sub = parser.add_subparsers(dest="command", required=True)

    from control import apiserver, init, tokencmd
    from control.store import migrate
    from control.controllers import command as controllers
    from control.scheduler import command as scheduler
    from nodeagent import join, netexec, trace
    from nodeagent.agent import command as agent
    from nodeagent.lab import command as lab
    from nodeagent.proxy import command as proxy

    for name, module, text in (
        ("apiserver", apiserver, "run the control plane's API server"),
        ("init", init, "set up a control node: CA, certificates, kubeconfigs, a join token"),
        ("join", join, "join this machine to a cluster as a node"),
        ("token", tokencmd, "list, create and revoke join tokens"),
        ("migrate", migrate, "copy a cluster's state between stores (SQLite to etcd, export/import)"),
        ("agent", agent, "run the node agent (registration, heartbeat, overlay)"),
        ("netexec", netexec, "run the built-in test server (HTTP, TCP and UDP echo)"),
        ("scheduler", scheduler, "run the scheduler"),
        ("controller-manager", controllers, "run the controllers (endpoints, replica sets, deployments, node IPAM, ...)"),
        ("proxy", proxy, "run the service proxy; `nodeagent proxy cleanup` removes its rules"),
        ("lab", lab, "a multi-node cluster of network namespaces on this machine"),
        ("trace", trace, "watch new connections to services: VIP, chosen endpoint, node, verdict"),
    ):
        # No abbreviations: `join --token SECRET` must not be taken for `--token-file SECRET`.
        p = sub.add_parser(name, help=text, allow_abbrev=False,
                           description=(module.__doc__ or "").strip().split("\n\n")[0])
        module.add_arguments(p)
        p.set_defaults(run=module.run)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
