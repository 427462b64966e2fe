"""Running a real API server for tests: in a thread of the test process (fast to start, the
store inspectable), or as a real `nodeagent apiserver` process (for kill -9 and restarts).

Both run on either storage backend: `backend="sqlite"` or `"etcd"`; without one they take
BACKEND, which tests/api/conftest.py sets for each parametrised run of the suite. An etcd server
gets a throwaway etcd of its own (stopped with it) unless it is handed an `etcd` cluster to share."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import uvicorn

from control.api.app import ApiConfig, create_app
from control.store import SQLiteStore

from .etcd import EtcdCluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKEND = "sqlite"  # the default backend; conftest.py switches it per parametrised run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 20.0, verify=True) -> None:
    if isinstance(verify, str):
        verify = ssl.create_default_context(cafile=verify)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"API server at {url} did not become ready")


class ThreadServer:
    def __init__(self, db_path: str = ":memory:", *, history: int = 100_000, watch_queue: int = 10_000,
                 node_ports: tuple[int, int] = (30000, 32767), service_cidr: str = "10.96.0.0/12",
                 bookmark_interval: float = 60.0, extra_sockets: list[socket.socket] | None = None,
                 backend: str | None = None, etcd: EtcdCluster | None = None, etcd_prefix: str = "",
                 compaction_interval: float = 300.0):
        """extra_sockets: more listening sockets to serve, e.g. one bound inside a test's
        network namespace, so that both the test and the namespaces' agents reach the server.
        backend: "sqlite" or "etcd" (default: BACKEND); etcd: a cluster to share (default: a
        throwaway one of its own, stopped by stop())."""
        self.backend = backend or BACKEND
        self.etcd = self._own_etcd = None
        if self.backend == "etcd":
            from control.store.etcd import EtcdStore
            if etcd is None:
                etcd = self._own_etcd = EtcdCluster().start()
            self.etcd = etcd
            self.store = EtcdStore(etcd.endpoints, prefix=etcd_prefix, history=history, watch_queue=watch_queue,
                                   compaction_interval=compaction_interval)
        elif self.backend == "sqlite":
            self.store = SQLiteStore(db_path, history=history, watch_queue=watch_queue)
        else:
            raise ValueError(f"unknown backend {self.backend!r}")
        # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets accepted from a listener
        # whose protocol says TCP; without it every request waits ~40 ms for a delayed ACK.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.sockets = [self.sock, *(extra_sockets or [])]
        app = create_app(self.store, ApiConfig(service_cidr=service_cidr, node_port_range=node_ports,
                                               bookmark_interval=bookmark_interval))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                loop="asyncio", lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run if self.backend == "sqlite" else self._run,
                                       kwargs={"sockets": self.sockets}, daemon=True)

    def _run(self, sockets) -> None:
        async def main():
            try:
                await self.server.serve(sockets=sockets)
            finally:
                await self.store.close()  # its gRPC channels belong to this thread's event loop
        asyncio.run(main())

    def start(self) -> "ThreadServer":
        self.thread.start()
        try:
            wait_ready(self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        for s in self.sockets:
            s.close()
        if self._own_etcd is not None:
            self._own_etcd.stop()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)


class ProcessServer:
    """`nodeagent apiserver` as its own process, on a data dir that survives it."""

    def __init__(self, data_dir: str, port: int | None = None, *, secure: bool = False,
                 extra_args: list[str] | None = None, backend: str | None = None,
                 etcd: EtcdCluster | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.secure = secure
        self.url = f"{'https' if secure else 'http'}://127.0.0.1:{self.port}"
        self.kubeconfig = os.path.join(data_dir, "admin.kubeconfig")
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.init_output = ""
        self.backend = backend or BACKEND
        self.etcd = self._own_etcd = None
        if self.backend == "etcd":
            if etcd is None:
                # outlives kill()/start() (restarts keep their data); stopped by stop() or when
                # this object goes away
                etcd = self._own_etcd = EtcdCluster().start()
            self.etcd = etcd
            self.extra_args += ["--storage", "etcd", "--etcd-endpoints", etcd.endpoints]
        if secure:
            self.init_output = subprocess.run(
                [sys.executable, "-m", "nodeagent.cli", "init", "--data-dir", data_dir, "--port", str(self.port)],
                cwd=ROOT, check=True, capture_output=True, text=True).stdout
            if self.backend == "etcd":
                # `nodeagent init` puts its join token into <data-dir>/state.db (SQLite): carry it
                # over the way a user moving to etcd would
                subprocess.run([sys.executable, "-m", "control.store.migrate", "--from",
                                f"sqlite:{os.path.join(data_dir, 'state.db')}", "--to", f"etcd:{etcd.endpoints}"],
                               cwd=ROOT, check=True, capture_output=True, text=True)

    def start(self) -> "ProcessServer":
        self.log = open(os.path.join(self.data_dir, "apiserver.log"), "ab")
        mode = [] if self.secure else ["--insecure-http"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodeagent.cli", "apiserver", "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.port}", "--log-level", "info", *mode, *self.extra_args],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        wait_ready(self.url, verify=os.path.join(self.data_dir, "pki", "ca.crt") if self.secure else True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()

    def stop(self) -> None:
        """kill(), and stop the etcd this server started for itself."""
        self.kill()
        if self._own_etcd is not None:
            self._own_etcd.stop()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kw)
