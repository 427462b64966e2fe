"""`nodeagent init`: set up a control node (like `kubeadm init`).

Creates, under <data-dir>/pki, the cluster CA and the API server's serving certificate; client
certificates and kubeconfigs for the admin, the scheduler and the controller manager; and a join
token, then prints the command that joins a worker. Safe to run again: nothing that exists is
overwritten (a new join token is made each time, as `kubeadm token create` would)."""
from __future__ import annotations

import argparse
import asyncio
import os
import socket

from . import kubeconfig
from .auth import pki
from .auth.authz import ADMIN_GROUP, CONTROLLERS, SCHEDULER
from .auth.tokens import TOKEN_RE, BootstrapTokens, TokenError, parse_ttl
from .store import SQLiteStore

CLIENTS = {  # kubeconfig file -> (user, groups)
    "admin.kubeconfig": ("kubernetes-admin", (ADMIN_GROUP,)),
    "scheduler.kubeconfig": (SCHEDULER, ()),
    "controller-manager.kubeconfig": (CONTROLLERS, ()),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default="/var/lib/nodeagent")
    p.add_argument("--advertise-address", default="127.0.0.1",
                   help="the address workers reach the API server on (default: %(default)s)")
    p.add_argument("--port", type=int, default=6443)
    p.add_argument("--cert-extra-sans", default="",
                   help="more names or IPs for the serving certificate, comma-separated")
    p.add_argument("--token-ttl", default="24h", help="lifetime of the join token (0: never expires)")
    p.add_argument("--token-file", default="",
                   help="use the join token in this file instead of a new one (as kubeadm init --token; "
                        "a file, so that the secret never shows on a command line)")


def ensure_pki(data_dir: str, sans: list[str], server: str) -> list[str]:
    """Create what is missing; return what was created."""
    d = os.path.join(data_dir, "pki")
    made: list[str] = []
    ca_crt, ca_key = os.path.join(d, "ca.crt"), os.path.join(d, "ca.key")
    if not os.path.exists(ca_key):
        key, cert = pki.make_ca()
        pki.write_new(ca_key, pki.key_pem(key), 0o600)
        pki.write_new(ca_crt, pki.cert_pem(cert), 0o644)
        made += [ca_key, ca_crt]
    with open(ca_key, "rb") as f:
        ca_k = pki.load_key(f.read())
    with open(ca_crt, "rb") as f:
        ca_pem = f.read()
    ca_c = pki.load_cert(ca_pem)
    srv_key, srv_crt = os.path.join(d, "apiserver.key"), os.path.join(d, "apiserver.crt")
    if not os.path.exists(srv_key):
        key = pki.new_key()
        cert = pki.sign(ca_k, ca_c, key.public_key(), "nodeagent-apiserver", server_names=sans, client=False)
        pki.write_new(srv_key, pki.key_pem(key), 0o600)
        pki.write_new(srv_crt, pki.cert_pem(cert), 0o644)
        made += [srv_key, srv_crt]
    for name, (user, groups) in CLIENTS.items():
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            continue
        key = pki.new_key()
        cert = pki.sign(ca_k, ca_c, key.public_key(), user, orgs=groups)
        kubeconfig.write(path, server, user=user, ca_pem=ca_pem, cert_pem=pki.cert_pem(cert), key_pem=pki.key_pem(key))
        made.append(path)
    return made


def run(args: argparse.Namespace) -> int:
    given = None
    try:
        ttl = parse_ttl(args.token_ttl)
        if args.token_file:
            with open(args.token_file) as f:
                given = f.read().strip()
            if not TOKEN_RE.match(given):
                raise TokenError(f"{args.token_file}: a join token has the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    except (TokenError, OSError) as err:
        raise SystemExit(str(err))
    host = args.advertise_address
    shown = f"[{host}]" if ":" in host else host
    server = f"https://{shown}:{args.port}"
    sans = ["127.0.0.1", "localhost", socket.gethostname(), host] + [s.strip() for s in args.cert_extra_sans.split(",") if s.strip()]
    made = ensure_pki(args.data_dir, list(dict.fromkeys(sans)), server)
    for path in made:
        print(f"created {path}")
    store = SQLiteStore(os.path.join(args.data_dir, "state.db"))

    async def token() -> str:
        try:
            t, _ = await BootstrapTokens(store).create(ttl, "made by nodeagent init", token=given)
        finally:
            await store.close()
        return t

    try:
        tok = asyncio.run(token())
    except TokenError as err:
        raise SystemExit(str(err))
    with open(os.path.join(args.data_dir, "pki", "ca.crt"), "rb") as f:
        pin = pki.ca_cert_hash(pki.load_cert(f.read()))
    print(f"""
The control node is set up. Start the API server with:
  nodeagent apiserver --data-dir {args.data_dir} --listen {shown}:{args.port}
and use it with:
  export KUBECONFIG={os.path.join(args.data_dir, 'admin.kubeconfig')}

Join a worker, as root on that machine (the token is passed in the environment, never on a
command line, so that it does not show in `ps`; it expires in {args.token_ttl}):
  NODEAGENT_JOIN_TOKEN={tok} nodeagent join --server {server} --ca-cert-hash {pin}
""")
    return 0
