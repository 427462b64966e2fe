"""Builders for Service and EndpointSlice objects, shared by the tests and the benchmark."""
from __future__ import annotations

from typing import Iterable


def service(name: str, cluster_ip: str | None = "10.96.0.10", ports: Iterable = (("http", 80),),
            namespace: str = "default", type: str = "ClusterIP", external_ips: Iterable[str] = (),
            lb_ips: Iterable[str] = (), affinity: int | None = None, etp: str | None = None,
            itp: str | None = None, hc_port: int = 0) -> dict:
    """ports: tuples (name, port[, protocol[, nodePort[, targetPort]]])."""
    plist = []
    for p in ports:
        name_, port = p[0], p[1]
        proto = p[2] if len(p) > 2 else "TCP"
        entry = {"port": port, "protocol": proto, "targetPort": p[4] if len(p) > 4 else port}
        if name_:
            entry["name"] = name_
        if len(p) > 3 and p[3]:
            entry["nodePort"] = p[3]
        plist.append(entry)
    spec: dict = {"type": type, "ports": plist, "clusterIP": cluster_ip or "None",
                  "sessionAffinity": "ClientIP" if affinity else "None",
                  "internalTrafficPolicy": itp or "Cluster"}
    if affinity:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    if external_ips:
        spec["externalIPs"] = list(external_ips)
    if type in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = etp or "Cluster"
    elif etp:
        spec["externalTrafficPolicy"] = etp
    if hc_port:
        spec["healthCheckNodePort"] = hc_port
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
           "spec": spec}
    if lb_ips:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in lb_ips]}}
    return obj


def endpoint(ip: str, node: str = "", ready: bool = True, serving: bool | None = None,
             terminating: bool = False, zone: str = "") -> dict:
    ep: dict = {"addresses": [ip], "conditions": {"ready": ready, "serving": ready if serving is None else serving,
                                                   "terminating": terminating}}
    if node:
        ep["nodeName"] = node
    if zone:
        ep["zone"] = zone
    return ep


def endpoint_slice(name: str, service_name: str, endpoints: Iterable, ports: Iterable = (("http", 80),),
                   namespace: str = "default") -> dict:
    """endpoints: dicts from `endpoint()` or plain IPs; ports: (name, port[, protocol])."""
    eps = [e if isinstance(e, dict) else endpoint(e) for e in endpoints]
    plist = []
    for p in ports:
        entry = {"port": p[1], "protocol": p[2] if len(p) > 2 else "TCP"}
        if p[0]:
            entry["name"] = p[0]
        plist.append(entry)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": eps, "ports": plist}


# -- a small lab in network namespaces (kernel tests and the benchmark) -----------------------------
import os
import secrets
import socket
import subprocess
import threading
import time

from .netns import check_netns, socket_in


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


class Lab:
    """A "node" namespace that routes between a few "pod" namespaces and a "client" namespace
    outside the cluster, each joined to the node by a veth pair:

        client 192.168.50.9/24 -- node 192.168.50.2/24
        pod<i>  10.244.<i>.5/24 -- node 10.244.<i>.1/24     (i = 1..pods)

    Everything is created with a unique prefix and removed by `close()` (deleting a namespace
    removes its links). Servers run as threads of the calling process on sockets created inside
    the pod namespaces, so no process is left behind.
    """
    NODE_IP = "192.168.50.2"
    CLIENT_IP = "192.168.50.9"

    def __init__(self, pods: int = 2, prefix: str = "np"):
        tag = f"{prefix}{os.getpid() % 10000:04d}{secrets.token_hex(2)}"
        self.node = check_netns(f"{tag}n")
        self.client = check_netns(f"{tag}c")
        self.pods = [check_netns(f"{tag}p{i}") for i in range(1, pods + 1)]
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self.created: list[str] = []
        try:
            for ns in [self.node, self.client] + self.pods:
                _run("ip", "netns", "add", ns)
                self.created.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            self._veth(self.client, f"{tag}vc", self.NODE_IP, self.CLIENT_IP, 24)
            for i, ns in enumerate(self.pods, 1):
                self._veth(ns, f"{tag}v{i}", f"10.244.{i}.1", self.pod_ip(i), 24)
        except Exception:
            self.close()
            raise

    @staticmethod
    def pod_ip(i: int) -> str:
        return f"10.244.{i}.5"

    def _veth(self, ns: str, name: str, node_ip: str, ip: str, plen: int) -> None:
        _run("ip", "link", "add", name, "netns", self.node, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "-n", self.node, "addr", "add", f"{node_ip}/{plen}", "dev", name)
        _run("ip", "-n", self.node, "link", "set", name, "up")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/{plen}", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", ns, "route", "add", "default", "via", node_ip)

    # -- servers ---------------------------------------------------------------------------------
    def serve(self, ns: str, port: int, proto: str = "tcp", name: str = "") -> None:
        """Answer every TCP connection / UDP datagram with "<name> <client address>"."""
        name = name or ns
        if proto == "tcp":
            s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            s.listen(128)
        else:
            s = socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", port))
        s.settimeout(0.2)
        self._socks.append(s)

        def loop():
            while not self._stop.is_set():
                try:
                    if proto == "tcp":
                        c, peer = s.accept()
                        with c:
                            c.sendall(f"{name} {peer[0]}\n".encode())
                    else:
                        data, peer = s.recvfrom(2048)
                        s.sendto(f"{name} {peer[0]}".encode(), peer)
                except (socket.timeout, OSError):
                    continue

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        self._threads.append(t)

    # -- clients ---------------------------------------------------------------------------------
    def tcp(self, ns: str, ip: str, port: int, timeout: float = 2.0) -> str:
        """One TCP request from inside `ns`; the server's answer, or raises OSError."""
        s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect((ip, port))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.decode().strip()
        finally:
            s.close()

    def udp_socket(self, ns: str, sport: int = 0) -> socket.socket:
        s = socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", sport))
        self._socks.append(s)
        return s

    def udp(self, ns: str, ip: str, port: int, timeout: float = 2.0, sock: socket.socket | None = None) -> str:
        s = sock or socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout)
            s.connect((ip, port))
            s.send(b"ping")
            return s.recv(2048).decode()
        finally:
            if sock is None:
                s.close()

    def wait_listening(self, ns: str, ip: str, port: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tcp(ns, ip, port, 0.5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(1)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
