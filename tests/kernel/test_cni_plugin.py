"""The installed plugin executable on the real kernel, in throwaway namespaces.

Every test gets a namespace playing the node's root namespace (the `netns` fixture) where the
plugin runs (nsenter), pod namespaces from `pods`, a unique bridge name and IPAM state under
tmp_path. Nothing here touches the machine's root namespace.
"""
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from cni import install, plugin
from cni.runtime import PluginError, Runtime
from tests.conftest import unique
from tests.waiting import wait

REF_DIR = "/usr/lib/cni"
PING = r"""
import socket, struct, sys, time
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(0.5)
for attempt in range(6):
    hdr = struct.pack("!BBHHH", 8, 0, 0, 77, attempt) + b"nodeagent"
    s.sendto(hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:], (dst, 0))
    try:
        while True:
            data, addr = s.recvfrom(2048)
            ihl = (data[0] & 15) * 4
            if addr[0] == dst and data[ihl] == 0 and struct.unpack("!H", data[ihl+4:ihl+6])[0] == 77:
                print("ok"); sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"""


def sh(*cmd, ns=None, check=True, **kw):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[:2000]}")
    return r


def links(ns):
    return {l["ifname"]: l for l in json.loads(sh("ip", "-n", ns, "-d", "-j", "link", "show").stdout)}


def addrs(ns, dev):
    out = json.loads(sh("ip", "-n", ns, "-j", "-4", "addr", "show", "dev", dev).stdout)
    return [f"{a['local']}/{a['prefixlen']}" for a in out[0]["addr_info"]] if out else []


def routes(ns):
    return [(r["dst"], r.get("gateway")) for r in json.loads(sh("ip", "-n", ns, "-j", "-4", "route", "show").stdout)]


def ping(ns, dst) -> bool:
    return sh(sys.executable, "-c", PING, dst, ns=ns, check=False).returncode == 0


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    d = tmp_path_factory.mktemp("cnibin")
    return install.write_executable(str(d), "nodeagent", socket="")


@pytest.fixture
def pods():
    made = []

    def make():
        name = unique("nacp-")
        for attempt in range(3):
            # `ip netns add` failed once in a whole-suite run, right after tiers that tear down
            # hundreds of namespaces (the kernel destroys them in a work queue): try again
            # before failing a plugin test on the fixture, saying why it failed
            r = sh("ip", "netns", "add", name, check=False)
            if r.returncode == 0:
                break
            warnings.warn(f"ip netns add {name} failed, retrying: {r.stderr.strip()}")
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            time.sleep(1)
        else:
            raise AssertionError(f"ip netns add {name}: {r.stderr.strip()}")
        made.append(name)
        return name
    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


class Node:
    """The plugin as a runtime calls it, inside the node namespace `ns`."""

    def __init__(self, ns, exe, tmp_path, **conf_extra):
        self.ns, self.exe, self.tmp = ns, exe, tmp_path
        self.bridge = unique("nab")
        self.data_dir = str(tmp_path / "ipam")
        self.conf = {"cniVersion": "1.0.0", "name": "knet", "type": "nodeagent", "bridge": self.bridge,
                     "ipam": {"subnet": "10.66.0.0/24", "dataDir": self.data_dir}}
        self.conf.update(conf_extra)

    def call(self, command, pod=None, cid="c1", ifname="eth0", conf=None, env=None):
        e = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname, "CNI_PATH": REF_DIR,
             "PATH": os.environ["PATH"]}
        if pod:
            e["CNI_NETNS"] = pod if pod.startswith("/") else f"/run/netns/{pod}"
        e.update(env or {})
        p = subprocess.run(["nsenter", f"--net=/run/netns/{self.ns}", self.exe],
                           input=json.dumps(conf or self.conf).encode(), env=e, capture_output=True, timeout=60)
        out = p.stdout.decode().strip()
        return p.returncode, (json.loads(out) if out else None), p.stderr.decode()

    def ok(self, *a, **kw):
        code, out, err = self.call(*a, **kw)
        assert code == 0, (out, err)
        return out

    def ip_files(self):
        d = os.path.join(self.data_dir, "knet")
        return sorted(f for f in os.listdir(d) if f[0].isdigit()) if os.path.isdir(d) else []

    def host_veths(self):
        return sorted(n for n, l in links(self.ns).items() if n.startswith("veth"))


@pytest.fixture
def node(netns, exe, tmp_path):
    return Node(netns, exe, tmp_path)


def with_prev(node, res):
    return dict(node.conf, prevResult=res)


def test_add_check_del(node, pods, tmp_path):
    subnet_file = tmp_path / "subnet.env"
    subnet_file.write_text("NODEAGENT_SUBNET=10.66.0.1/24\nNODEAGENT_MTU=1400\n")
    node.conf["ipam"] = {"subnetFile": str(subnet_file), "dataDir": node.data_dir}
    pod = pods()
    res = node.ok("ADD", pod)
    host_name = plugin.host_veth_name("c1", "eth0")
    assert [i["name"] for i in res["interfaces"]] == [node.bridge, host_name, "eth0"]
    assert res["ips"] == [{"interface": 2, "address": "10.66.0.2/24", "gateway": "10.66.0.1"}]
    # pod side: address, default route via the gateway, MTU from the subnet file, lo up
    pl = links(pod)
    assert pl["eth0"]["mtu"] == 1400 and "UP" in pl["eth0"]["flags"] and "UP" in pl["lo"]["flags"]
    assert pl["eth0"]["address"] == res["interfaces"][2]["mac"]
    assert addrs(pod, "eth0") == ["10.66.0.2/24"]
    assert ("default", "10.66.0.1") in routes(pod)
    # node side: gateway on the bridge, host veth on the bridge with hairpin on
    hl = links(node.ns)
    assert addrs(node.ns, node.bridge) == ["10.66.0.1/24"]
    assert hl[host_name]["master"] == node.bridge and hl[host_name]["mtu"] == 1400
    assert hl[host_name]["linkinfo"]["info_slave_data"]["hairpin"] is True
    assert node.ip_files() == ["10.66.0.2"]
    assert node.ok("CHECK", pod, conf=with_prev(node, res)) is None
    assert node.ok("DEL", pod, conf=with_prev(node, res)) is None
    assert list(links(pod)) == ["lo"] and node.host_veths() == [] and node.ip_files() == []
    # CHECK after DEL fails with the plugin's check code
    code, out, _ = node.call("CHECK", pod, conf=with_prev(node, res))
    assert code == 1 and out["code"] == 106


def test_del_twice_and_after_the_netns_is_gone(node, pods):
    pod = pods()
    res = node.ok("ADD", pod)
    node.ok("DEL", pod, conf=with_prev(node, res))
    node.ok("DEL", pod, conf=with_prev(node, res))
    res = node.ok("ADD", pod)
    sh("ip", "netns", "del", pod)
    node.ok("DEL", pod, conf=with_prev(node, res))
    assert node.ip_files() == []
    # the kernel destroys an unmounted namespace, and the veth pair with it, in a work queue of
    # its own: the host end may outlive `ip netns del` by a moment (seen under CI's load)
    wait(lambda: node.host_veths() == [], 10, "the host veth to go with the namespace")
    # the link alone gone (without prevResult: the store is searched)
    pod2 = pods()
    node.ok("ADD", pod2, cid="c2")
    sh("ip", "-n", pod2, "link", "del", "eth0")
    node.ok("DEL", pod2, cid="c2")
    assert node.ip_files() == []


@pytest.mark.parametrize("step", plugin.ADD_STEPS)
def test_failure_after_each_add_step_leaves_nothing(node, pods, step):
    pod = pods()  # lo down, as a runtime's fresh namespace is
    before_routes = routes(node.ns)
    code, out, err = node.call("ADD", pod, env={"NODEAGENT_CNI_FAIL_AFTER": step})
    assert code == 1 and out["code"] == 107, (out, err)
    assert list(links(pod)) == ["lo"] and "UP" not in links(pod)["lo"]["flags"]
    assert routes(pod) == []
    assert node.host_veths() == [] and node.ip_files() == []
    if step in ("bridge", "veth", "ipam", "address"):
        assert routes(node.ns) == before_routes  # the gateway was not added yet
    node.ok("ADD", pod)  # nothing blocks a retry
    node.ok("DEL", pod)


def test_interface_exists_and_bad_netns(node, pods):
    pod = pods()
    node.ok("ADD", pod)
    code, out, _ = node.call("ADD", pod, cid="other")
    assert out["code"] == 102 and "eth0" in out["msg"]
    assert node.ip_files() == ["10.66.0.2"] and len(node.host_veths()) == 1
    code, out, _ = node.call("ADD", "/run/netns/" + unique("gone-"), cid="c3")
    assert out["code"] == 3


def test_fifty_concurrent_adds_then_dels(node, pods):
    ns = [pods() for _ in range(50)]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: node.call("ADD", ns[i], cid=f"c{i}"), range(50)))
    assert [r[0] for r in results] == [0] * 50, [r for r in results if r[0]][:3]
    got = [r[1]["ips"][0]["address"] for r in results]
    assert len(set(got)) == 50
    assert len(node.ip_files()) == 50 and len(node.host_veths()) == 50
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: node.call("DEL", ns[i], cid=f"c{i}"), range(50)))
    assert [r[0] for r in results] == [0] * 50
    assert node.ip_files() == [] and node.host_veths() == []
    assert all(list(links(n)) == ["lo"] for n in ns)


def test_two_pods_reach_each_other_and_the_gateway(node, pods):
    a, b = pods(), pods()
    ra, rb = node.ok("ADD", a, cid="a"), node.ok("ADD", b, cid="b")
    ip_a, ip_b = ra["ips"][0]["address"].split("/")[0], rb["ips"][0]["address"].split("/")[0]
    assert ping(a, ip_b) and ping(b, ip_a) and ping(a, "10.66.0.1") and ping(b, "10.66.0.1")
    node.ok("DEL", b, cid="b")
    assert not ping(a, ip_b)


def test_gc_releases_stale_addresses(node, pods):
    node.conf["cniVersion"] = "1.1.0"
    ns = [pods() for _ in range(3)]
    for i, n in enumerate(ns):
        node.ok("ADD", n, cid=f"c{i}")
    assert node.ok("STATUS") is None
    gc = dict(node.conf, **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    assert node.ok("GC", conf=gc) is None
    assert node.ip_files() == ["10.66.0.3"]


def runtime(node, plugins, tmp_path):
    bindir = os.path.dirname(node.exe)
    conf = {"cniVersion": "1.0.0", "name": "knet", "plugins": plugins}
    return Runtime(conf, [bindir, REF_DIR], str(tmp_path / "cache"), wrapper=["nsenter", f"--net=/run/netns/{node.ns}"])


def test_chained_portmap(node, pods, tmp_path):
    pod = pods()
    plugins = [{k: v for k, v in node.conf.items() if k not in ("cniVersion", "name")},
               {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]
    rt = runtime(node, plugins, tmp_path)
    res = rt.add("pm1", f"/run/netns/{pod}", capability_args={
        "portMappings": [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]})
    pod_ip = res["ips"][0]["address"].split("/")[0]
    server = subprocess.Popen(["ip", "netns", "exec", pod, sys.executable, "-c",
                               "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1);"
                               "s.bind(('0.0.0.0', 8080)); s.listen(); c,_=s.accept(); c.sendall(b'hello from pod'); c.close()"])
    try:
        got = ""
        for _ in range(50):
            r = sh(sys.executable, "-c", "import socket; s=socket.create_connection(('10.66.0.1', 18080), 1); print(s.recv(100).decode())",
                   ns=node.ns, check=False)
            if r.returncode == 0 and r.stdout.strip():
                got = r.stdout.strip()
                break
            time.sleep(0.1)
        assert got == "hello from pod"
    finally:
        server.kill()
        server.wait()
    assert "CNI-HOSTPORT-DNAT" in sh("iptables-save", "-t", "nat", ns=node.ns).stdout
    rt.check("pm1", f"/run/netns/{pod}")
    rt.delete("pm1", f"/run/netns/{pod}")
    assert pod_ip not in sh("iptables-save", "-t", "nat", ns=node.ns).stdout
    assert node.ip_files() == [] and node.host_veths() == []


def test_chained_tuning_and_bandwidth(node, pods, tmp_path):
    pod = pods()
    plugins = [{k: v for k, v in node.conf.items() if k not in ("cniVersion", "name")},
               {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.rp_filter": "2"}},
               {"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 80000,
                "egressRate": 8000000, "egressBurst": 80000}]
    rt = runtime(node, plugins, tmp_path)
    res = rt.add("tb1", f"/run/netns/{pod}")
    assert sh("cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter", ns=pod).stdout.strip() == "2"
    host_name = plugin.host_veth_name("tb1", "eth0")
    assert "tbf" in sh("tc", "qdisc", "show", "dev", host_name, ns=node.ns).stdout
    assert any(i["name"].startswith("bwp") for i in res["interfaces"])  # bandwidth's ifb device
    rt.delete("tb1", f"/run/netns/{pod}")
    assert node.ip_files() == [] and not [l for l in links(node.ns) if l.startswith(("veth", "bwp"))]


def test_reference_runtime_errors_surface(node, pods, tmp_path):
    rt = runtime(node, [{"type": "nodeagent", "bridge": node.bridge, "ipam": {}}], tmp_path)
    with pytest.raises(PluginError) as e:
        rt.add("x", f"/run/netns/{pods()}")
    assert e.value.code == 7 and "subnet" in e.value.msg


def test_daemon_path(node, pods, tmp_path):
    sock = str(tmp_path / "cni.sock")
    exe = install.write_executable(str(tmp_path / "dbin"), "nodeagent", socket=sock)
    node.exe = exe
    pod = pods()
    # no daemon yet: the executable works standalone
    node.ok("ADD", pod)
    node.ok("DEL", pod)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    d = subprocess.Popen(["nsenter", f"--net=/run/netns/{node.ns}", sys.executable, "-m", "cni.daemon", "--socket", sock],
                         cwd=repo, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        assert oct(os.stat(sock).st_mode & 0o777) == "0o600"
        res = node.ok("ADD", pod, cid="d1")
        assert res["ips"][0]["address"] == "10.66.0.3/24"
        code, out, _ = node.call("ADD", pod, cid="d2", ifname="eth1", env={"NODEAGENT_CNI_FAIL_AFTER": "ipam"})
        assert out["code"] == 107  # fault injection travels to the daemon, rollback happens there
        node.ok("CHECK", pod, cid="d1", conf=with_prev(node, res))
        node.ok("DEL", pod, cid="d1")
        assert node.ip_files() == [] and node.host_veths() == []
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait(10)
