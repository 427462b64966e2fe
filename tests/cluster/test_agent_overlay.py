"""Node agents on a namespace cluster: registration and heartbeat, the subnet file, the overlay
between nodes with pods reaching each other, a node removed from the API, kill -9 and restart."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.api.server import ROOT, ThreadServer
from tests.netlab import NetLab, listening_socket_in, sh
from tests.waiting import wait

pytestmark = pytest.mark.slow


class Agent:
    def __init__(self, lab: NetLab, node: str, server_url: str, run_dir: str):
        self.ns, self.ip = lab.nodes[node]
        # nsenter --net switches only the network namespace. `ip netns exec` would also give the
        # agent a private mount namespace, and the pod namespaces it creates (bind mounts under
        # /run/netns) would then be invisible to everyone else, its own next run included.
        self.args = ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-m", "nodeagent.cli", "agent",
                     "--server", server_url, "--node-name", node, "--underlay-interface", "eth0",
                     "--run-dir", run_dir, "--vxlan-device", "navx0", "--renew-interval", "1",
                     "--log-level", "info",
                     # every path of the agent's own under the test's directory: nothing on the host
                     "--data-dir", f"{run_dir}-data", "--cni-conf-dir", f"{run_dir}-net.d",
                     "--cni-bin-dir", f"{run_dir}-bin,/usr/lib/cni", "--cni-ipam-dir", f"{run_dir}-ipam",
                     "--cni-bridge", f"nacni{node}", "--netns-prefix", f"{lab.tag}-{node}-"]
        self.run_dir = run_dir
        os.makedirs(os.path.dirname(run_dir), exist_ok=True)
        self.log = open(run_dir + ".log", "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)


def tcp_ok(ns: str, ip: str, port: int) -> bool:
    code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close(); print('ok')\n"
            "except OSError as e: print('fail', e)\n")
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, ip, str(port)],
                          capture_output=True, text=True, timeout=20).stdout.startswith("ok")


@pytest.fixture
def cluster(tmp_path):
    lab = NetLab()
    agents: list[Agent] = []
    server = None
    try:
        for n in ("a", "b", "c"):
            lab.add_node(n)
        inside = listening_socket_in(lab.underlay, lab.control_ip)
        server = ThreadServer(extra_sockets=[inside]).start()
        url = f"http://{lab.control_ip}:{inside.getsockname()[1]}"
        for n in ("a", "b", "c"):
            agents.append(Agent(lab, n, url, str(tmp_path / n)).start())
        yield lab, server, {a.args[a.args.index("--node-name") + 1]: a for a in agents}
    finally:
        for a in agents:
            a.kill()
        if server:
            server.stop()
        lab.close()


def test_agents_register_build_the_overlay_and_survive_kill_9(cluster):
    lab, server, agents = cluster
    api = httpx.Client(base_url=server.url, timeout=10)
    nodes = wait(lambda: (lambda items: items if len(items) == 3 else None)(api.get("/api/v1/nodes").json()["items"]),
                 what="three registered nodes")
    for n in nodes:
        ann = n["metadata"]["annotations"]
        assert ann["nodeagent.io/underlay-ip"] == lab.nodes[n["metadata"]["name"]][1]
        assert len(ann["nodeagent.io/vtep-mac"].split(":")) == 6
        assert n["status"]["addresses"][0] == {"type": "InternalIP", "address": lab.nodes[n["metadata"]["name"]][1]}
        assert {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "False"  # no podCIDR yet
    lease = wait(lambda: api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/a").json().get("spec"),
                 what="node a's lease")
    first_renew = lease["renewTime"]
    wait(lambda: api.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/a").json()["spec"]["renewTime"] != first_renew,
         what="a lease renewal")

    # play the node IPAM controller
    cidrs = {"a": "10.244.1.0/24", "b": "10.244.2.0/24", "c": "10.244.3.0/24"}
    for n, cidr in cidrs.items():
        r = api.patch(f"/api/v1/nodes/{n}", json={"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}},
                      headers={"content-type": "application/merge-patch+json"})
        assert r.status_code == 200
    for n in cidrs:
        env = wait(lambda: os.path.exists(os.path.join(agents[n].run_dir, "subnet.env")), what=f"{n}'s subnet.env")
        assert env
        text = open(os.path.join(agents[n].run_dir, "subnet.env")).read()
        assert f"NODEAGENT_SUBNET={cidrs[n].replace('.0/24', '.1/24')}" in text and "NODEAGENT_MTU=1450" in text
    wait(lambda: all({c["type"]: c["status"] for c in api.get(f"/api/v1/nodes/{n}").json()["status"]["conditions"]}["Ready"] == "True"
                     for n in cidrs), what="all nodes Ready")
    assert "masquerade" in sh("ip", "netns", "exec", lab.nodes["a"][0], "nft", "list", "table", "ip", "nodeagent-masq")

    pods = {n: lab.add_pod(n, "p1", cidrs[n]) for n in cidrs}
    srv = subprocess.Popen(["ip", "netns", "exec", pods["b"][0], sys.executable, "-m", "nodeagent.netexec",
                            "--http-port", "8080"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "serving" in srv.stdout.readline()
        wait(lambda: tcp_ok(pods["a"][0], pods["b"][1], 8080), what="pod a -> pod b across VXLAN")
        assert tcp_ok(pods["c"][0], pods["b"][1], 8080)
        # the server sees the client pod's own address: pod to pod is not masqueraded
        seen = subprocess.run(["ip", "netns", "exec", pods["a"][0], sys.executable, "-c",
                               f"import urllib.request;print(urllib.request.urlopen('http://{pods['b'][1]}:8080/clientip',timeout=3).read().decode())"],
                              capture_output=True, text=True, timeout=20).stdout
        assert seen.split(":")[0] == pods["a"][1]

        # kill -9 the agent on a: the kernel keeps forwarding; a restart adopts what it finds
        agents["a"].kill()
        assert tcp_ok(pods["a"][0], pods["b"][1], 8080)
        agents["a"].start()
        time.sleep(3)
        assert tcp_ok(pods["a"][0], pods["b"][1], 8080)
        assert agents["a"].proc.poll() is None

        # node c leaves the cluster: the others drop its entries
        agents["c"].kill()
        assert api.delete("/api/v1/nodes/c").status_code == 200
        wait(lambda: sh("ip", "-n", lab.nodes["a"][0], "route", "show", "10.244.3.0/24").strip() == "",
             what="node c's route gone from a")
        assert not tcp_ok(pods["a"][0], pods["c"][1], 8080)
        assert tcp_ok(pods["a"][0], pods["b"][1], 8080)
    finally:
        srv.kill()
        srv.wait()
        api.close()
