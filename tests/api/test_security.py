"""The secure default: init, HTTPS, client certificates and tokens, join, and node authorization,
with real kubectl and a real `nodeagent apiserver` process."""
from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from control.auth import pki

from .server import ROOT, ProcessServer
from .test_kubectl import KUBECTLS

STATIC_TOKEN = "s3cr3t-static-token-for-tests-0123456789"


def nodeagent(*args, env=None, check=False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nodeagent.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, check=check, timeout=60)


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    d = tmp_path_factory.mktemp("secure")
    tokens = d / "tokens.csv"
    tokens.write_text(f'{STATIC_TOKEN},bench-admin,1,"system:masters"\n')
    srv = ProcessServer(str(d), secure=True, extra_args=["--token-auth-file", str(tokens)]).start()
    srv.ca = str(d / "pki" / "ca.crt")
    srv.token = re.search(r"NODEAGENT_JOIN_TOKEN=(\S+)", srv.init_output).group(1)
    srv.pin = re.search(r"--ca-cert-hash (\S+)", srv.init_output).group(1)
    yield srv
    srv.kill()


def admin(srv) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=srv.ca)
    ctx.load_cert_chain(*_admin_pem(srv))
    return httpx.Client(base_url=srv.url, verify=ctx, timeout=10)


def _admin_pem(srv):
    from control.kubeconfig import load
    creds = load(srv.kubeconfig)
    d = os.path.join(srv.data_dir, "admin-pem")
    os.makedirs(d, exist_ok=True)
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    pki.write_private(cert, creds.cert_pem)
    pki.write_private(key, creds.key_pem)
    return cert, key


def join(srv, node: str, token: str | None = None, pin: str | None = None) -> subprocess.CompletedProcess:
    d = os.path.join(srv.data_dir, "nodes", node)
    return nodeagent("join", "--server", srv.url, "--ca-cert-hash", pin or srv.pin, "--node-name", node,
                     "--data-dir", d, env={"NODEAGENT_JOIN_TOKEN": token or srv.token})


def node_kubeconfig(srv, node: str) -> str:
    path = os.path.join(srv.data_dir, "nodes", node, "node.kubeconfig")
    if not os.path.exists(path):
        r = join(srv, node)
        assert r.returncode == 0, r.stderr
    return path


def kubectl(path: str, cfg: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, KUBECONFIG=cfg, HOME=os.path.dirname(cfg)))


def test_init_is_safe_to_run_again(secure):
    before = {n: open(os.path.join(secure.data_dir, "pki", n), "rb").read() for n in ("ca.key", "apiserver.key")}
    r = nodeagent("init", "--data-dir", secure.data_dir, "--port", str(secure.port), check=True)
    assert "created" not in r.stdout and "NODEAGENT_JOIN_TOKEN=" in r.stdout
    after = {n: open(os.path.join(secure.data_dir, "pki", n), "rb").read() for n in before}
    assert after == before
    assert oct(os.stat(os.path.join(secure.data_dir, "pki", "ca.key")).st_mode & 0o777) == "0o600"


def test_init_takes_a_given_token_from_a_file_and_it_joins(secure, tmp_path):
    given = tmp_path / "token"
    given.write_text("abcdef.0123456789abcdef\n")
    for _ in range(2):   # the same token again is fine: init may run twice
        r = nodeagent("init", "--data-dir", secure.data_dir, "--port", str(secure.port), "--token-file", str(given))
        assert r.returncode == 0, r.stderr
        assert "NODEAGENT_JOIN_TOKEN=abcdef.0123456789abcdef " in r.stdout
    assert join(secure, "given-token", token="abcdef.0123456789abcdef").returncode == 0
    for bad in ("abcdef.0123456789abcdeX", "abcdef.ffffffffffffffff"):   # malformed; same id, other secret
        given.write_text(bad)
        r = nodeagent("init", "--data-dir", secure.data_dir, "--port", str(secure.port), "--token-file", str(given))
        assert r.returncode != 0 and bad not in r.stdout + r.stderr and "token" in r.stderr


def test_anonymous_only_reaches_health_and_version(secure):
    ctx = ssl.create_default_context(cafile=secure.ca)
    with httpx.Client(base_url=secure.url, verify=ctx) as c:
        for path in ("/healthz", "/livez", "/readyz", "/version"):
            assert c.get(path).status_code == 200
        for path in ("/api", "/api/v1/pods", "/apis/apps/v1/deployments", "/openapi/v2", "/bootstrap/v1/tokens"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
        r = c.get("/api/v1/pods", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = c.get("/api/v1/pods", headers={"Authorization": f"Bearer {STATIC_TOKEN}"})
        assert r.status_code == 200


def test_a_client_that_does_not_trust_the_ca_fails(secure):
    with pytest.raises(httpx.ConnectError):
        httpx.get(secure.url + "/healthz")  # the system trust store does not know our CA
    cfg = os.path.join(secure.data_dir, "untrusting.kubeconfig")
    text = open(secure.kubeconfig).read()
    open(cfg, "w").write(re.sub(r"\n\s*certificate-authority-data: \S+", "", text))
    r = kubectl(KUBECTLS["kubectl-1.20"], cfg, "get", "ns")
    assert r.returncode != 0 and "certificate" in r.stderr.lower()


@pytest.mark.parametrize("which", sorted(KUBECTLS))
def test_kubectl_as_admin_over_tls(secure, which):
    r = kubectl(KUBECTLS[which], secure.kubeconfig, "get", "namespaces")
    assert r.returncode == 0, r.stderr
    assert "kube-system" in r.stdout
    r = kubectl(KUBECTLS[which], secure.kubeconfig, "-n", "default", "create", "service", "clusterip",
                f"adm-{which.replace('.', '-')}", "--tcp=80:80")
    assert r.returncode == 0, r.stderr


def test_join_and_node_authorization_with_kubectl(secure):
    cfg = node_kubeconfig(secure, "worker-1")
    assert oct(os.stat(cfg).st_mode & 0o777) == "0o600"
    k = KUBECTLS["kubectl-1.20"]
    # its own Node: yes; another node, a service, another node's pod: 403
    node = os.path.join(secure.data_dir, "n.yaml")
    open(node, "w").write("apiVersion: v1\nkind: Node\nmetadata:\n  name: worker-1\n")
    r = kubectl(k, cfg, "create", "-f", node)
    assert r.returncode == 0, r.stderr
    with admin(secure) as api:
        api.post("/api/v1/nodes", json={"metadata": {"name": "worker-2"}})
        api.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": "mine"}, "spec": {
            "nodeName": "worker-1", "containers": [{"name": "c", "image": "x"}]}})
        api.post("/api/v1/namespaces/default/pods", json={"metadata": {"name": "theirs"}, "spec": {
            "nodeName": "worker-2", "containers": [{"name": "c", "image": "x"}]}})
    assert kubectl(k, cfg, "label", "node", "worker-1", "a=b").returncode == 0
    r = kubectl(k, cfg, "label", "node", "worker-2", "a=b")
    assert r.returncode != 0 and "Forbidden" in r.stderr and 'User "system:node:worker-1"' in r.stderr
    r = kubectl(k, cfg, "-n", "default", "create", "service", "clusterip", "evil", "--tcp=80:80")
    assert r.returncode != 0 and 'services "evil" is forbidden' in r.stderr
    assert kubectl(k, cfg, "get", "nodes").returncode == 0
    assert kubectl(k, cfg, "-n", "default", "get", "pods").returncode != 0       # not all pods
    r = kubectl(k, cfg, "-n", "default", "get", "pods", "--field-selector", "spec.nodeName=worker-1", "-o", "name")
    assert r.returncode == 0 and r.stdout.split() == ["pod/mine"]
    assert kubectl(k, cfg, "-n", "default", "get", "pod", "mine").returncode == 0
    r = kubectl(k, cfg, "-n", "default", "get", "pod", "theirs")
    assert r.returncode != 0 and "Forbidden" in r.stderr
    status = '{"status":{"phase":"Running"}}'
    # kubectl 1.20 has no --subresource: write pod status through the API with the node's credential
    from control.kubeconfig import load
    ctx = load(cfg).ssl_context()
    with httpx.Client(base_url=secure.url, verify=ctx) as c:
        hdr = {"content-type": "application/merge-patch+json"}
        assert c.patch("/api/v1/namespaces/default/pods/mine/status", content=status, headers=hdr).status_code == 200
        r = c.patch("/api/v1/namespaces/default/pods/theirs/status", content=status, headers=hdr)
        assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
        assert c.patch("/api/v1/namespaces/default/pods/mine", content='{"metadata":{"labels":{"x":"y"}}}',
                       headers=hdr).status_code == 403
        lease = {"metadata": {"name": "worker-1"}, "spec": {"holderIdentity": "worker-1", "leaseDurationSeconds": 40}}
        assert c.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease).status_code == 201
        lease["metadata"]["name"] = "worker-2"
        assert c.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease).status_code == 403


def test_wrong_ca_hash_makes_join_refuse(secure):
    r = join(secure, "liar-check", pin="sha256:" + "0" * 64)
    assert r.returncode != 0 and "does not match --ca-cert-hash" in r.stderr
    assert not os.path.exists(os.path.join(secure.data_dir, "nodes", "liar-check", "node.kubeconfig"))


def test_expired_and_revoked_tokens_are_refused(secure):
    admin_cfg = secure.kubeconfig
    short = nodeagent("token", "--kubeconfig", admin_cfg, "create", "--ttl", "1s", check=True).stdout.strip()
    time.sleep(1.5)
    r = join(secure, "late", token=short)
    assert r.returncode != 0 and "invalid, expired or revoked" in r.stderr
    tok = nodeagent("token", "--kubeconfig", admin_cfg, "create", "--ttl", "1h", "--description", "t").stdout.strip()
    assert join(secure, "first", token=tok).returncode == 0
    listed = nodeagent("token", "--kubeconfig", admin_cfg, "list", check=True).stdout
    assert tok.split(".")[0] in listed and tok.split(".")[1] not in listed  # secrets are not kept
    nodeagent("token", "--kubeconfig", admin_cfg, "revoke", tok.split(".")[0], check=True)
    r = join(secure, "replay", token=tok)  # the same token, replayed after revocation
    assert r.returncode != 0 and "invalid, expired or revoked" in r.stderr
    r = join(secure, "garbage", token="not-a-token")
    assert r.returncode != 0


def test_node_credential_cannot_manage_tokens(secure):
    cfg = node_kubeconfig(secure, "worker-3")
    r = nodeagent("token", "--kubeconfig", cfg, "create")
    assert r.returncode != 0 and "cannot manage bootstrap tokens" in r.stdout


def test_secrets_never_reach_logs_errors_or_the_command_line(secure):
    tok = nodeagent("token", "--kubeconfig", secure.kubeconfig, "create", check=True).stdout.strip()
    secret = tok.split(".")[1]
    r = join(secure, "quiet", token=tok)
    assert r.returncode == 0
    r2 = join(secure, "quiet2", token=tok[:-1] + ("a" if tok[-1] != "a" else "b"))
    # `join --token SECRET` is not an abbreviation of --token-file: refused, and not echoed
    r3 = nodeagent("join", "--server", secure.url, "--ca-cert-hash", secure.pin, "--token", tok)
    assert r3.returncode != 0
    assert "unrecognized arguments" in r3.stderr
    log = open(os.path.join(secure.data_dir, "apiserver.log")).read()
    for text in (log, r.stdout, r.stderr, r2.stdout, r2.stderr):
        assert secret not in text and STATIC_TOKEN not in text
