"""`nodeagent apiserver`: the API server process (uvicorn serving control.api on SQLite, or on
etcd with `--storage etcd`, where several API servers share one etcd cluster).

HTTPS with client-certificate and token authentication is the default; it needs the files that
`nodeagent init` makes. `--insecure-http` serves plain HTTP with no authentication at all, for
tests and throwaway setups, and says so loudly."""
from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys

from . import kubeconfig
from .api.app import ApiConfig, Security, create_app
from .auth.tokens import StaticTokens, TokenError
from .store import SQLiteStore, Store

log = logging.getLogger("nodeagent.apiserver")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="/var/lib/nodeagent",
                   help="the SQLite database and, under pki/, the certificates from `nodeagent init` (default: %(default)s)")
    p.add_argument("--listen", default="127.0.0.1:6443", metavar="HOST:PORT",
                   help="address to serve on (default: %(default)s)")
    p.add_argument("--advertise-url", default="",
                   help="the URL joining nodes are told to use (default: https://<listen address>)")
    p.add_argument("--token-auth-file", default="",
                   help='static bearer tokens, lines of: token,user,uid,"group1,group2"')
    p.add_argument("--insecure-http", action="store_true",
                   help="serve plain HTTP with NO authentication or authorization (tests only)")
    p.add_argument("--kubeconfig", default="",
                   help="with --insecure-http: where to write a kubeconfig (default: <data-dir>/admin.kubeconfig)")
    p.add_argument("--service-cidr", default="10.96.0.0/12")
    p.add_argument("--node-port-range", default="30000-32767")
    p.add_argument("--history", type=int, default=100_000,
                   help="revisions of event history kept for watches to resume from (default: %(default)s)")
    p.add_argument("--storage", choices=("sqlite", "etcd"), default="sqlite",
                   help="sqlite: <data-dir>/state.db, for one control node; etcd: an etcd cluster shared "
                        "by several API servers (default: %(default)s)")
    p.add_argument("--etcd-endpoints", default="http://127.0.0.1:2379", metavar="URL[,URL...]",
                   help="with --storage etcd: the etcd members' client URLs (default: %(default)s)")
    p.add_argument("--etcd-cafile", default="", help="CA bundle that verifies the etcd members (https endpoints)")
    p.add_argument("--etcd-certfile", default="", help="client certificate for etcd (--client-cert-auth)")
    p.add_argument("--etcd-keyfile", default="", help="the client certificate's key")
    p.add_argument("--etcd-prefix", default="",
                   help="put every key under this prefix, to share one etcd between clusters (default: none)")
    p.add_argument("--etcd-compaction-interval", type=float, default=300.0, metavar="SECONDS",
                   help="how often to compact etcd to --history revisions; 0: never (default: %(default)s)")
    p.add_argument("--log-level", default="info")


def split_host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def write_kubeconfig(path: str, server: str) -> None:
    """A kubeconfig for a plain-HTTP server (no credentials needed)."""
    kubeconfig.write(path, server, user="insecure")


def pki_paths(data_dir: str) -> dict[str, str]:
    d = os.path.join(data_dir, "pki")
    return {n: os.path.join(d, n) for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key")}


def make_store(args: argparse.Namespace) -> Store:
    if getattr(args, "storage", "sqlite") != "etcd":
        return SQLiteStore(os.path.join(args.data_dir, "state.db"), history=args.history)
    from .store.etcd import EtcdStore
    for opt in ("etcd_cafile", "etcd_certfile", "etcd_keyfile"):
        path = getattr(args, opt)
        if path and not os.path.exists(path):
            raise SystemExit(f"--{opt.replace('_', '-')}: {path} does not exist")
    if bool(args.etcd_certfile) != bool(args.etcd_keyfile):
        raise SystemExit("--etcd-certfile and --etcd-keyfile go together")
    try:
        return EtcdStore(args.etcd_endpoints, prefix=args.etcd_prefix, history=args.history,
                         ca_file=args.etcd_cafile or None, cert_file=args.etcd_certfile or None,
                         key_file=args.etcd_keyfile or None,
                         compaction_interval=args.etcd_compaction_interval)
    except ValueError as err:
        raise SystemExit(f"--etcd-endpoints: {err}")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = split_host_port(args.listen)
    lo, _, hi = args.node_port_range.partition("-")
    try:
        node_ports = (int(lo), int(hi))
    except ValueError:
        raise SystemExit(f"--node-port-range must be LOW-HIGH, got {args.node_port_range!r}")
    shown = f"[{host}]" if ":" in host else host
    scheme = "http" if args.insecure_http else "https"
    url = args.advertise_url or f"{scheme}://{shown}:{port}"
    tls: dict = {}
    security = None
    if not args.insecure_http:
        paths = pki_paths(args.data_dir)
        missing = [p for p in paths.values() if not os.path.exists(p)]
        if missing:
            raise SystemExit(f"missing {', '.join(missing)}: run `nodeagent init --data-dir {args.data_dir}` "
                             "first (or use --insecure-http for a throwaway plain-HTTP server)")
        try:
            static = StaticTokens(args.token_auth_file or None)
        except (OSError, TokenError) as err:
            raise SystemExit(f"--token-auth-file: {err}")
        with open(paths["ca.crt"], "rb") as f:
            ca_pem = f.read()
        with open(paths["ca.key"], "rb") as f:
            ca_key = f.read()
        security = Security(ca_pem, ca_key, static, url)
        from .auth.authn import PeerCertProtocol
        tls = dict(ssl_certfile=paths["apiserver.crt"], ssl_keyfile=paths["apiserver.key"],
                   ssl_ca_certs=paths["ca.crt"], ssl_cert_reqs=ssl.CERT_OPTIONAL, http=PeerCertProtocol)
    store = make_store(args)
    if args.storage == "etcd":
        log.info("storage: etcd at %s", args.etcd_endpoints)
    app = create_app(store, ApiConfig(service_cidr=args.service_cidr, node_port_range=node_ports,
                                      advertise_address=f"{shown}:{port}"), security)
    if args.insecure_http:
        path = args.kubeconfig or os.path.join(args.data_dir, "admin.kubeconfig")
        write_kubeconfig(path, url)
        log.warning("serving plain HTTP on %s with NO authentication or authorization: anyone who can "
                    "reach it controls the cluster (and the nodes). Use it for tests only.", url)
        log.info("kubeconfig for kubectl: %s", path)
    else:
        log.info("serving HTTPS on %s", url)
    uvicorn.run(app, host=host, port=port, log_level=args.log_level.lower(), access_log=False,
                loop="uvloop", **({"http": "httptools"} | tls), timeout_graceful_shutdown=2)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent apiserver")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
