"""`nodeagent join`: make this machine a node of a cluster (like `kubeadm join`).

The join token comes from a file (--token-file) or the NODEAGENT_JOIN_TOKEN environment
variable, never from the command line, where `ps` would show it. The cluster CA is trusted only
if the hash of its public key matches --ca-cert-hash (no trust on first use); the token is then
sent only over TLS verified with that CA. The node makes its own key and gets a certificate for
system:node:<name>; the key never leaves the machine."""
from __future__ import annotations

import argparse
import hmac
import os
import socket
import sys

import httpx

from control import kubeconfig
from control.auth import pki

TOKEN_ENV = "NODEAGENT_JOIN_TOKEN"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", required=True, help="the API server, https://HOST:PORT")
    p.add_argument("--ca-cert-hash", required=True, help="sha256:<hex> printed by `nodeagent init`")
    p.add_argument("--token-file", default="", help=f"a file holding the join token (or set {TOKEN_ENV})")
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--data-dir", default="/var/lib/nodeagent")
    p.add_argument("--force", action="store_true", help="join again even if this node has a credential")


class JoinError(Exception):
    pass


def read_token(args: argparse.Namespace) -> str:
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise JoinError(f"no join token: pass --token-file or set {TOKEN_ENV}")
    return token


def join(server: str, pin: str, token: str, node: str, data_dir: str, force: bool = False) -> str:
    if not server.startswith("https://"):
        raise JoinError("--server must be an https:// URL")
    out = os.path.join(data_dir, "node.kubeconfig")
    if os.path.exists(out) and not force:
        raise JoinError(f"{out} exists: this node has joined already (use --force to join again)")
    # Discovery without trust: whatever we receive is checked against the pin before use.
    try:
        info = httpx.get(f"{server}/cluster-info", verify=False, timeout=10).json()
        ca_pem = info["certificateAuthority"].encode()
        got = pki.ca_cert_hash(pki.load_cert(ca_pem))
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise JoinError(f"could not read the cluster's CA from {server}/cluster-info: {err}")
    if not hmac.compare_digest(got, pin.strip().lower()):
        raise JoinError(f"refusing to join: the cluster CA's hash {got} does not match --ca-cert-hash "
                        f"{pin}; someone may be impersonating the API server")
    key = pki.new_key()
    csr = pki.make_csr(key, f"system:node:{node}", ("system:nodes",))
    ctx = kubeconfig.Credentials(server, ca_pem).ssl_context()
    try:
        r = httpx.post(f"{server}/bootstrap/v1/join", verify=ctx, timeout=10,
                       headers={"Authorization": f"Bearer {token}"},
                       json={"nodeName": node, "csr": csr.decode()})
    except httpx.HTTPError as err:
        raise JoinError(f"join request to {server} failed: {err}")
    if r.status_code != 200:
        try:
            message = r.json().get("message", r.text)
        except ValueError:
            message = r.text
        raise JoinError(f"the API server refused the join ({r.status_code}): {message}")
    cert = r.json()["certificate"].encode()
    kubeconfig.write(out, server, user=f"system:node:{node}", ca_pem=ca_pem, cert_pem=cert,
                     key_pem=pki.key_pem(key))
    return out


def run(args: argparse.Namespace) -> int:
    try:
        path = join(args.server, args.ca_cert_hash, read_token(args), args.node_name, args.data_dir, args.force)
    except (JoinError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"node {args.node_name} joined {args.server}; its credential is in {path} (mode 0600)")
    return 0
