"""The `nodeagent` command. Each subcommand imports its module only when it runs, so that a
quick command does not pay for the imports of a heavy one."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodeagent", description="Kubernetes-style networking on your own Linux nodes")
    sub = parser.add_subparsers(dest="command", required=True)

    from control import apiserver
    p = sub.add_parser("apiserver", help="run the control plane's API server")
    apiserver.add_arguments(p)
    p.set_defaults(run=apiserver.run)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
