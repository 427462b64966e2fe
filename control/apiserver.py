"""`nodeagent apiserver`: the API server process (uvicorn serving control.api on SQLite)."""
from __future__ import annotations

import argparse
import logging
import os
import sys

import yaml

from .api.app import ApiConfig, create_app
from .store import SQLiteStore

log = logging.getLogger("nodeagent.apiserver")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="/var/lib/nodeagent",
                   help="where the SQLite database lives (default: %(default)s)")
    p.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="address to serve on (default: %(default)s)")
    p.add_argument("--kubeconfig", default="",
                   help="write a kubeconfig for kubectl here (default: <data-dir>/admin.kubeconfig)")
    p.add_argument("--service-cidr", default="10.96.0.0/12")
    p.add_argument("--node-port-range", default="30000-32767")
    p.add_argument("--history", type=int, default=100_000,
                   help="revisions of event history kept for watches to resume from (default: %(default)s)")
    p.add_argument("--log-level", default="info")


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def write_kubeconfig(path: str, server: str, name: str = "nodeagent") -> None:
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": name,
           "clusters": [{"name": name, "cluster": {"server": server}}],
           "users": [{"name": "admin", "user": {}}],
           "contexts": [{"name": name, "context": {"cluster": name, "user": "admin", "namespace": "default"}}]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = split_host_port(args.listen)
    lo, _, hi = args.node_port_range.partition("-")
    try:
        node_ports = (int(lo), int(hi))
    except ValueError:
        raise SystemExit(f"--node-port-range must be LOW-HIGH, got {args.node_port_range!r}")
    store = SQLiteStore(os.path.join(args.data_dir, "state.db"), history=args.history)
    shown = f"[{host}]" if ":" in host else host
    server = f"http://{shown}:{port}"
    app = create_app(store, ApiConfig(service_cidr=args.service_cidr, node_port_range=node_ports,
                                      advertise_address=f"{shown}:{port}"))
    kubeconfig = args.kubeconfig or os.path.join(args.data_dir, "admin.kubeconfig")
    write_kubeconfig(kubeconfig, server)
    log.warning("serving plain HTTP on %s without authentication: keep it on a trusted address", server)
    log.info("kubeconfig for kubectl: %s", kubeconfig)
    uvicorn.run(app, host=host, port=port, log_level=args.log_level.lower(), access_log=False,
                loop="uvloop", http="httptools", timeout_graceful_shutdown=2)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent apiserver")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
