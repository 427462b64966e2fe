"""Throwaway etcd for tests: one member or a three-member cluster on free loopback ports, data in
a temporary directory, from Debian's etcd-server (/usr/bin/etcd). Every member is killed and its
data removed when the cluster stops, when the object is garbage collected, and at exit; members
run in their own process group so that nothing outlives the tests."""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
import weakref

import socket

import httpx

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
_LIVE: "weakref.WeakSet[EtcdCluster]" = weakref.WeakSet()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return os.access(ETCD, os.X_OK)


class Member:
    def __init__(self, name: str, data_dir: str, token: str, tls: dict | None = None):
        self.name = name
        self.data_dir = data_dir
        self.token = token
        self.tls = tls or {}
        self.client_port = free_port()
        self.peer_port = free_port()
        scheme = "https" if self.tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(data_dir, f"{name}.log")

    def start(self, initial_cluster: str, state: str = "new") -> None:
        args = [ETCD, "--name", self.name, "--data-dir", os.path.join(self.data_dir, self.name),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                # quick elections on loopback: a killed member is replaced as leader in ~0.5 s
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--logger", "zap", "--log-level", "warn"]
        if self.tls:
            args += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                     "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        if self.tls:
            return self.alive  # the cluster's readiness is checked through the store instead
        try:
            r = httpx.get(self.url + "/health", timeout=1)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False


class EtcdCluster:
    """`EtcdCluster(3).start()`; `.endpoints` is the comma-separated client URL list."""

    def __init__(self, size: int = 1, tls: dict | None = None):
        self.dir = tempfile.mkdtemp(prefix="nodeagent-etcd-")
        token = "t" + os.urandom(6).hex()
        self.members = [Member(f"m{i}", self.dir, token, tls) for i in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        self._finalizer = weakref.finalize(self, _cleanup, list(self.members), self.dir)
        _LIVE.add(self)

    @property
    def endpoints(self) -> str:
        return ",".join(m.url for m in self.members)

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def start(self, timeout: float = 20.0) -> "EtcdCluster":
        for m in self.members:
            if not m.alive:
                m.start(self.initial_cluster)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [m for m in self.members if m.alive]
            if live and all(m.healthy() for m in live):
                return
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError(f"etcd member {m.name} exited: {self.log_tail(m)}")
            time.sleep(0.05)
        raise RuntimeError(f"etcd did not become healthy: {self.log_tail(self.members[0])}")

    def log_tail(self, m: Member) -> str:
        try:
            with open(m.log_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def kill_member(self, i: int, sig: int = signal.SIGKILL) -> None:
        self.members[i].kill(sig)

    def restart_member(self, i: int) -> None:
        m = self.members[i]
        m.kill()
        m.start(self.initial_cluster, state="existing" if len(self.members) > 1 else "new")

    def stop(self) -> None:
        self._finalizer()


def _cleanup(members: list[Member], path: str) -> None:
    for m in members:
        m.kill()
    shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _stop_all() -> None:
    for c in list(_LIVE):
        c.stop()
