"""`nodeagent lab up|down|status|logs|kubeconfig`: a cluster of network namespaces on this machine.

    nodeagent lab up [--name lab] [--nodes 3] [--proxy-mode nftables|iptables]
    nodeagent lab demo | status | logs [COMPONENT] | kubeconfig | down   [--name lab]

`up` is safe to run twice (a lab that is up is left as it is; a half-made one is removed first);
`down` removes every process, namespace, rule and file of the lab, also after a crash."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from . import topology as T

UNDERLAY = "192.168.220"           # isolated inside the lab's namespaces: every lab may use it
PREFIXLEN = 24
CONTROL_IP = f"{UNDERLAY}.1"
CLIENT_IP = f"{UNDERLAY}.250"
CLUSTER_CIDR = "10.244.0.0/16"
PY = sys.executable


def node_ip(i: int) -> str:
    return f"{UNDERLAY}.{10 + i}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["up", "down", "status", "logs", "kubeconfig", "demo", "restart", "trace"])
    p.add_argument("component", nargs="?", default="", help="for logs and restart: apiserver, scheduler, "
                   "controller-manager, forward, or a node name (logs without one lists them)")
    p.add_argument("--name", default="lab", help="the lab's name (several labs can coexist)")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--proxy-mode", choices=["nftables", "iptables"], default="nftables",
                   help="the nodes' service proxy mode (default: %(default)s)")
    p.add_argument("--state-root", default="/var/lib/nodeagent/labs",
                   help="each lab keeps its files in <state-root>/<name>")
    p.add_argument("--api-port", type=int, default=0, help="host loopback port for kubectl (default: a free one)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every node to be Ready")
    p.add_argument("--service", default="", help="for trace: NAMESPACE/NAME (default: every service)")
    p.add_argument("--seconds", type=float, default=0, help="for trace: stop after this long")
    p.add_argument("--count", type=int, default=0, help="for trace: stop after this many connections (per node)")
    p.add_argument("--node-grace", type=float, default=40.0,
                   help="seconds without a heartbeat before a node is Unknown and its endpoints leave")
    p.add_argument("--eviction-timeout", type=float, default=300.0,
                   help="seconds pods stay on an unreachable node before they are evicted")


class Lab:
    def __init__(self, args: argparse.Namespace):
        self.name = T.check_name(args.name)
        self.args = args
        self.dir = os.path.join(args.state_root, self.name)
        self.logs = os.path.join(self.dir, "logs")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.info_path = os.path.join(self.dir, "lab.json")

    # -- bookkeeping --------------------------------------------------------------------
    def info(self) -> dict:
        try:
            with open(self.info_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save(self, info: dict) -> None:
        os.makedirs(self.dir, exist_ok=True)
        with open(self.info_path + ".tmp", "w") as f:
            json.dump(info, f, indent=1)
        os.replace(self.info_path + ".tmp", self.info_path)

    def say(self, text: str) -> None:
        print(f"[lab {self.name}] {text}", flush=True)

    def spawn(self, component: str, argv: list[str], netns: str = "", env: dict | None = None) -> int:
        os.makedirs(self.logs, exist_ok=True)
        cmd = (["nsenter", f"--net=/run/netns/{netns}"] if netns else []) + argv
        with open(os.path.join(self.logs, f"{component}.log"), "ab") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={**os.environ, **(env or {})}, cwd=ROOT)
        info = self.info()
        info.setdefault("pids", {})[component] = p.pid
        self.save(info)
        return p.pid

    def ours(self) -> list[int]:
        """Processes of this lab, found by its state directory on their command line (works
        after a crash lost lab.json); our own process is never among them."""
        out = []
        needle = self.dir.encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if any(a == needle or a.startswith(needle + b"/") for a in args):
                out.append(int(pid))
        return out

    # -- up ---------------------------------------------------------------------------------
    def alive(self) -> bool:
        pids = self.info().get("pids", {})
        return bool(pids) and all(os.path.exists(f"/proc/{p}") for p in pids.values()) and \
            T.exists(T.ns_name(self.name, "ul"))

    def up(self) -> int:
        if self.alive():
            self.say("is up already")
            return self.wait_ready()
        if self.info() or T.lab_namespaces(self.name) or self.ours():
            self.say("found a half-made lab: removing it first")
            self.down(quiet=True)
        n = self.args.nodes
        if not 1 <= n <= 50:
            raise T.LabError("--nodes must be between 1 and 50")
        os.makedirs(self.dir, exist_ok=True)
        self.save({"name": self.name, "nodes": [f"n{i}" for i in range(1, n + 1)], "proxy_mode": self.args.proxy_mode,
                   "node_grace": self.args.node_grace,
                   "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        self.say(f"underlay: namespace {T.ns_name(self.name, 'ul')}, bridge br0, {UNDERLAY}.0/{PREFIXLEN}")
        ul = T.make_underlay(self.name, CONTROL_IP, PREFIXLEN)
        for i in range(1, n + 1):
            T.make_host(self.name, f"n{i}", node_ip(i), PREFIXLEN, CONTROL_IP)
        T.make_host(self.name, "client", CLIENT_IP, PREFIXLEN, CONTROL_IP)
        self.say(f"{n} node namespaces and a client namespace ({CLIENT_IP}, outside the cluster)")

        control = os.path.join(self.dir, "control")
        out = subprocess.run([PY, "-m", "nodeagent.cli", "init", "--data-dir", control, "--advertise-address",
                              CONTROL_IP, "--token-ttl", "2h"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
        token = re.search(r"NODEAGENT_JOIN_TOKEN=(\S+)", out).group(1)
        pin = re.search(r"--ca-cert-hash (\S+)", out).group(1)
        self.say("control plane: CA, certificates and a join token made (nodeagent init)")
        self.spawn("apiserver", [PY, "-m", "nodeagent.cli", "apiserver", "--data-dir", control,
                                 "--listen", f"{CONTROL_IP}:6443"], netns=ul)
        port = self.args.api_port or free_port()
        self.spawn("forward", [PY, "-m", "nodeagent.lab.forward", "--port", str(port), "--netns", ul,
                               "--to", f"{CONTROL_IP}:6443", "--state", self.dir])
        info = self.info()
        info["api_port"] = port
        self.save(info)
        write_lab_kubeconfig(os.path.join(control, "admin.kubeconfig"), self.kubeconfig, f"https://127.0.0.1:{port}")
        self.wait_api()
        self.say(f"API server up (HTTPS) at {CONTROL_IP}:6443, reachable from this host at 127.0.0.1:{port}")
        self.spawn("scheduler", [PY, "-m", "nodeagent.cli", "scheduler", "--kubeconfig",
                                 os.path.join(control, "scheduler.kubeconfig")], netns=ul)
        self.spawn("controller-manager", [PY, "-m", "nodeagent.cli", "controller-manager", "--kubeconfig",
                                          os.path.join(control, "controller-manager.kubeconfig"),
                                          "--cluster-cidr", CLUSTER_CIDR,
                                          "--node-monitor-grace-period", str(self.args.node_grace),
                                          "--default-toleration-seconds", str(self.args.eviction_timeout)], netns=ul)
        self.say("scheduler and controller manager started")
        for i in range(1, n + 1):
            self.start_node(f"n{i}", token, pin)
        return self.wait_ready()

    def start_node(self, node: str, token: str, pin: str) -> None:
        ns = T.ns_name(self.name, node)
        d = os.path.join(self.dir, "nodes", node)
        join = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", PY, "-m", "nodeagent.cli", "join",
                               "--server", f"https://{CONTROL_IP}:6443", "--ca-cert-hash", pin, "--node-name", node,
                               "--data-dir", d], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "NODEAGENT_JOIN_TOKEN": token})
        if join.returncode != 0:
            raise T.LabError(f"node {node} could not join: {join.stderr.strip()}")
        self.start_agent(node)
        self.say(f"node {node} joined (nodeagent join) and its agent started in {ns}")

    def start_agent(self, node: str) -> None:
        ns = T.ns_name(self.name, node)
        d = os.path.join(self.dir, "nodes", node)
        self.spawn(node, [PY, "-m", "nodeagent.cli", "agent", "--kubeconfig", os.path.join(d, "node.kubeconfig"),
                          "--node-name", node, "--underlay-interface", "eth0", "--cluster-cidr", CLUSTER_CIDR,
                          "--run-dir", os.path.join(d, "run"), "--data-dir", os.path.join(d, "data"),
                          "--cni-conf-dir", os.path.join(d, "net.d"), "--cni-bin-dir", f"{os.path.join(d, 'bin')},/usr/lib/cni",
                          "--cni-ipam-dir", os.path.join(d, "ipam"), "--netns-prefix", f"{T.ns_name(self.name, node)}-",
                          "--proxy-mode", self.info().get("proxy_mode", "nftables"),
                          # heartbeats well inside the grace period the controllers allow, or a
                          # healthy node would be marked Unknown between two renewals
                          "--renew-interval", str(self.renew_interval())], netns=ns)

    def renew_interval(self) -> float:
        grace = float(self.info().get("node_grace", 40.0))
        return max(0.5, min(10.0, grace / 4))

    def restart(self, component: str) -> int:
        """Stop one component with SIGKILL (as a crash would) and start it again."""
        info = self.info()
        pid = info.get("pids", {}).get(component)
        if pid is None:
            raise T.LabError(f"no component {component!r}; components: {' '.join(sorted(info.get('pids', {})))}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while os.path.exists(f"/proc/{pid}") and not open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z"):
            time.sleep(0.02)
        control = os.path.join(self.dir, "control")
        if component in info.get("nodes", []):
            self.start_agent(component)
        elif component == "apiserver":
            self.spawn("apiserver", [PY, "-m", "nodeagent.cli", "apiserver", "--data-dir", control,
                                     "--listen", f"{CONTROL_IP}:6443"], netns=T.ns_name(self.name, "ul"))
            self.wait_api()
        else:
            raise T.LabError(f"restarting {component} is not supported (agents and the apiserver are)")
        self.say(f"{component} restarted")
        return 0

    def client(self):
        from control.client import ApiClient
        return ApiClient.from_kubeconfig(self.kubeconfig)

    def wait_api(self, timeout: float = 30) -> None:
        import asyncio
        from control.client import ApiStatusError

        async def go():
            c = self.client()
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        await c.request("GET", "/readyz")
                        return
                    except (OSError, ApiStatusError, Exception):
                        if time.monotonic() > deadline:
                            raise T.LabError(f"the API server did not come up: see {self.logs}/apiserver.log")
                        await asyncio.sleep(0.2)
            finally:
                await c.close()
        asyncio.run(go())

    def wait_ready(self) -> int:
        import asyncio
        nodes = self.info().get("nodes", [])

        async def go() -> bool:
            c = self.client()
            try:
                deadline = time.monotonic() + self.args.timeout
                last = ""
                while time.monotonic() < deadline:
                    try:
                        items = (await c.list("v1", "nodes"))["items"]
                    except Exception:
                        items = []
                    ready = sorted(n["metadata"]["name"] for n in items if _ready(n))
                    line = f"nodes Ready: {len(ready)}/{len(nodes)} {' '.join(ready)}"
                    if line != last:
                        self.say(line)
                        last = line
                    if len(ready) == len(nodes):
                        return True
                    await asyncio.sleep(0.5)
                return False
            finally:
                await c.close()

        if not asyncio.run(go()):
            self.say(f"not every node became Ready in {self.args.timeout:g} s: see `nodeagent lab logs --name {self.name}`")
            return 1
        self.say("ready. Next:")
        print(f"  export KUBECONFIG={self.kubeconfig}\n"
              f"  kubectl get nodes -o wide\n"
              f"  kubectl apply -f examples/bookinfo.yaml\n"
              f"  nodeagent lab status --name {self.name}     nodeagent lab logs --name {self.name} [COMPONENT]\n"
              f"  ip netns exec {T.ns_name(self.name, 'client')} curl http://{node_ip(1)}:30080/health   # a NodePort, from outside\n"
              f"  nodeagent lab down --name {self.name}", flush=True)
        return 0

    # -- down, status, logs -----------------------------------------------------------------
    def down(self, quiet: bool = False) -> int:
        pids = set(self.info().get("pids", {}).values()) & set(self.ours()) | set(self.ours())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 3
            while sig == signal.SIGTERM and time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
                time.sleep(0.05)
        removed = T.remove_all(self.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        if not quiet:
            self.say(f"down: {len(pids)} processes stopped, {len(removed)} namespaces removed, {self.dir} removed")
        return 0

    def status(self) -> int:
        import asyncio
        if not self.info():
            print(f"lab {self.name} is not up")
            return 1

        async def go():
            c = self.client()
            try:
                nodes = (await c.list("v1", "nodes"))["items"]
                pods = (await c.list("v1", "pods"))["items"]
                svcs = (await c.list("v1", "services"))["items"]
            finally:
                await c.close()
            print(f"{'NODE':8} {'READY':6} {'INTERNAL-IP':16} {'POD-CIDR':16}")
            for n in nodes:
                addr = next((a["address"] for a in n["status"].get("addresses", []) if a["type"] == "InternalIP"), "")
                print(f"{n['metadata']['name']:8} {str(_ready(n)):6} {addr:16} {n['spec'].get('podCIDR', ''):16}")
            print(f"\n{'NAMESPACE':12} {'POD':28} {'PHASE':10} {'IP':14} NODE")
            for p in pods:
                st = p.get("status") or {}
                print(f"{p['metadata']['namespace']:12} {p['metadata']['name']:28} {st.get('phase', ''):10} "
                      f"{st.get('podIP', ''):14} {p['spec'].get('nodeName', '')}")
            print(f"\n{'NAMESPACE':12} {'SERVICE':20} {'TYPE':10} {'CLUSTER-IP':14} PORTS")
            for s in svcs:
                ports = ",".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                                 for p in s["spec"].get("ports") or [])
                print(f"{s['metadata']['namespace']:12} {s['metadata']['name']:20} {s['spec'].get('type', ''):10} "
                      f"{s['spec'].get('clusterIP', ''):14} {ports}")
        asyncio.run(go())
        return 0

    def demo(self) -> int:
        if not self.alive():
            raise T.LabError(f"lab {self.name} is not up: run `nodeagent lab up --name {self.name}` first")
        from .demo import run as run_demo
        return run_demo(self.kubeconfig, self.name)

    def trace(self) -> int:
        """`nodeagent trace` in every node's namespace, their lines merged as they come."""
        import selectors
        if not self.alive():
            raise T.LabError(f"lab {self.name} is not up")
        admin = os.path.join(self.dir, "control", "admin.kubeconfig")   # the underlay address
        procs = []
        for node in self.info().get("nodes", []):
            cmd = ["nsenter", f"--net=/run/netns/{T.ns_name(self.name, node)}", PY, "-m", "nodeagent.cli", "trace",
                   "--kubeconfig", admin, "--node", node]
            for flag, value in (("--service", self.args.service), ("--seconds", self.args.seconds),
                                ("--count", self.args.count)):
                if value:
                    cmd += [flag, str(value)]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, bufsize=1))
        sel = selectors.DefaultSelector()
        for p in procs:
            sel.register(p.stdout, selectors.EVENT_READ)
        try:
            open_streams = len(procs)
            while open_streams:
                for key, _ in sel.select(timeout=0.5):
                    line = key.fileobj.readline()
                    if not line:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
                    else:
                        sys.stdout.write(line)
                        sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)   # each tracer removes its table on the way out
            for p in procs:
                p.wait(10)
        return 0

    def show_logs(self, component: str) -> int:
        try:
            names = sorted(n[:-4] for n in os.listdir(self.logs) if n.endswith(".log"))
        except FileNotFoundError:
            print(f"lab {self.name} has no logs")
            return 1
        if not component:
            print("components: " + " ".join(names))
            return 0
        if component not in names:
            print(f"no log for {component!r}; components: {' '.join(names)}")
            return 1
        with open(os.path.join(self.logs, f"{component}.log"), errors="replace") as f:
            sys.stdout.write("".join(f.readlines()[-200:]))
        return 0


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (node.get("status") or {}).get("conditions", []))


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_kubeconfig(admin: str, path: str, server: str) -> None:
    from control import kubeconfig
    creds = kubeconfig.load(admin)
    kubeconfig.write(path, server, user="lab-admin", ca_pem=creds.ca_pem, cert_pem=creds.cert_pem,
                     key_pem=creds.key_pem, cluster="nodeagent-lab")


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("nodeagent lab needs root (network namespaces)", file=sys.stderr)
        return 1
    lab = Lab(args)
    try:
        return {"up": lab.up, "down": lab.down, "status": lab.status,
                "logs": lambda: lab.show_logs(args.component),
                "kubeconfig": lambda: print(lab.kubeconfig) or 0,
                "demo": lab.demo,
                "restart": lambda: lab.restart(args.component),
                "trace": lab.trace}[args.action]()
    except T.LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
