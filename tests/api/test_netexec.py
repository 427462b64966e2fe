"""The built-in test server, over real loopback sockets."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import pytest

from tests.api.server import ROOT, free_port


@pytest.fixture(scope="module")
def netexec():
    http, tcp, udp = free_port(), free_port(), free_port()
    env = dict(os.environ, POD_NAME="ratings-7d9f", NODE_NAME="node-2", POD_NAMESPACE="bookinfo")
    p = subprocess.Popen([sys.executable, "-m", "nodeagent.netexec", "--address", "127.0.0.1", "--http-port", str(http),
                          "--tcp-port", str(tcp), "--udp-port", str(udp), "--health-status", "Ratings is healthy"],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert "netexec serving" in p.stdout.readline()
    yield f"http://127.0.0.1:{http}", tcp, udp
    p.terminate()
    assert p.wait(5) == 0  # SIGTERM ends it cleanly


def test_http_endpoints(netexec):
    url, _, _ = netexec
    with httpx.Client(base_url=url) as c:
        assert c.get("/hostname").text == "ratings-7d9f"
        assert c.get("/node").text == "node-2"
        assert c.get("/echo", params={"msg": "hello world"}).text == "hello world"
        assert c.get("/health").json() == {"status": "Ratings is healthy"}
        ip, port = c.get("/clientip").text.rsplit(":", 1)
        assert ip == "127.0.0.1" and int(port) > 0
        everything = c.get("/").json()
        assert everything["pod"] == "ratings-7d9f" and everything["namespace"] == "bookinfo"
        assert c.get("/nope").status_code == 404


def test_tcp_and_udp_echo(netexec):
    _, tcp, udp = netexec
    with socket.create_connection(("127.0.0.1", tcp), 2) as s:
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(2)
        u.sendto(b"hi", ("127.0.0.1", udp))
        assert u.recv(64) == b"ratings-7d9f hi"
