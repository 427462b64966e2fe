"""The `nodeagent` command. Each subcommand imports its module only when it runs, so that a
quick command does not pay for the imports of a heavy one."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent", description="Kubernetes-style networking on your own Linux nodes")
    sub = parser.add_subparsers(dest="command", required=True)

    from control import apiserver, init, tokencmd
    from nodeagent import join, netexec
    from nodeagent.agent import command as agent

    for name, module, text in (
        ("apiserver", apiserver, "run the control plane's API server"),
        ("init", init, "set up a control node: CA, certificates, kubeconfigs, a join token"),
        ("join", join, "join this machine to a cluster as a node"),
        ("token", tokencmd, "list, create and revoke join tokens"),
        ("agent", agent, "run the node agent (registration, heartbeat, overlay)"),
        ("netexec", netexec, "run the built-in test server (HTTP, TCP and UDP echo)"),
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
