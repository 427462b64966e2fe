"""Configuration parsing and every error code, through plugin.run on the fake kernel."""
import json

import pytest

from cni import plugin
from cni.config import NetConf
from cni.fake import FakeKernel
from cni.ipam import MemoryStore

NS = "/run/netns/pod1"


def conf(**kw):
    c = {"cniVersion": "1.0.0", "name": "net1", "type": "nodeagent", "bridge": "br-t",
         "ipam": {"subnet": "10.1.0.0/24"}}
    c.update(kw)
    return c


class Env:
    def __init__(self):
        self.kernel = FakeKernel()
        self.kernel.add_netns(NS)
        self.stores = {}

    def store(self, data_dir, name):
        return self.stores.setdefault((data_dir, name), MemoryStore())

    def call(self, command="ADD", config=None, stdin=None, **env):
        e = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": NS, "CNI_IFNAME": "eth0",
             "CNI_PATH": "/opt/cni/bin"}
        e.update(env)
        e = {k: v for k, v in e.items() if v is not None}
        if stdin is None:
            stdin = json.dumps(config if config is not None else conf())
        code, out = plugin.run(e, stdin, self.kernel, self.store)
        return code, (json.loads(out) if out else None)


@pytest.fixture
def env():
    return Env()


def error(env, *a, **kw):
    code, out = env.call(*a, **kw)
    assert code == 1, out
    assert set(out) >= {"cniVersion", "code", "msg"}
    return out


def test_defaults():
    c = NetConf(conf(bridge=None) | {"ipam": {"subnet": "10.1.0.0/24"}})
    assert (c.bridge, c.hairpin, c.is_default_gw, c.mtu, c.data_dir) == ("cni0", True, True, 0, "/var/lib/cni/networks")
    assert [(r.subnet, r.gateway) for r in c.ranges] == [("10.1.0.0/24", 0x0A010001)]


def test_subnet_file(tmp_path):
    f = tmp_path / "subnet.env"
    f.write_text("NODEAGENT_NETWORK=10.244.0.0/16\nNODEAGENT_SUBNET=10.244.3.1/24\nNODEAGENT_MTU=1450\n")
    c = NetConf(conf(ipam={"subnetFile": str(f)}))
    assert [(r.subnet, r.gateway) for r in c.ranges] == [("10.244.3.0/24", 0x0AF40301)]
    assert c.effective_mtu == 1450
    assert NetConf(conf(mtu=1400, ipam={"subnetFile": str(f)})).effective_mtu == 1400
    f.write_text("FLANNEL_SUBNET=10.244.4.1/24\nFLANNEL_MTU=1410\n")  # flannel's keys work too
    c = NetConf(conf(ipam={"subnetFile": str(f)}))
    assert (c.ranges[0].subnet, c.effective_mtu) == ("10.244.4.0/24", 1410)


def test_version_reports_every_supported_version(env):
    code, out = env.call("VERSION", stdin='{"cniVersion": "1.0.0"}', CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None)
    assert code == 0
    assert out == {"cniVersion": "1.0.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}
    assert env.call("VERSION", stdin="")[1]["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("missing", ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])
def test_code_4_names_the_missing_variable(env, missing):
    out = error(env, **{missing: None}) if missing != "CNI_COMMAND" else error(env, None)
    assert out["code"] == 4 and missing in out["msg"]


def test_code_4_invalid_values(env):
    assert error(env, "FROB")["code"] == 4
    assert error(env, CNI_IFNAME="a" * 16)["code"] == 4
    assert error(env, CNI_CONTAINERID="../etc")["code"] == 4
    assert error(env, CNI_ARGS="garbage")["code"] == 4
    assert error(env, NODEAGENT_CNI_FAIL_AFTER="nope")["code"] == 4
    assert error(env, CNI_NETNS="<host>")["code"] == 4  # the plugin's own namespace
    # DEL needs no CNI_NETNS
    assert env.call("DEL", CNI_NETNS=None)[0] == 0


@pytest.mark.parametrize("version", ["2.0.0", "0.5.0", "1.2.0"])
def test_code_1_incompatible_version(env, version):
    out = error(env, config=conf(cniVersion=version))
    assert out["code"] == 1 and "0.4.0" in out["details"]


@pytest.mark.parametrize("command,version", [("CHECK", "0.3.1"), ("STATUS", "1.0.0"), ("GC", "1.0.0")])
def test_code_1_command_needs_newer_version(env, command, version):
    assert error(env, command, config=conf(cniVersion=version))["code"] == 1


@pytest.mark.parametrize("stdin", ["", "not json", "[1, 2]", '{"name": "x",'])
def test_code_6_cannot_decode(env, stdin):
    assert error(env, stdin=stdin)["code"] == 6


def test_code_6_bad_prev_result(env):
    assert error(env, config=conf(prevResult={"ips": "nope"}))["code"] == 6


def test_code_2_unsupported_field(env):
    out = error(env, config=conf(ipMasq=True))
    assert out["code"] == 2 and "ipMasq" in out["msg"]


@pytest.mark.parametrize("change,what", [
    ({"name": ""}, "name"), ({"name": "bad/name"}, "name"), ({"bridge": "x" * 16}, "bridge"),
    ({"mtu": 10}, "mtu"), ({"mtu": "1500"}, "mtu"), ({"hairpinMode": "yes"}, "hairpinMode"),
    ({"ipam": {}}, "subnet"), ({"ipam": {"type": "dhcp", "subnet": "10.1.0.0/24"}}, "ipam.type"),
    ({"ipam": {"subnet": "10.1.0.0/33"}}, "range"), ({"ipam": {"subnet": "10.1.0.0/24", "subnetFile": "/x"}}, "both"),
    ({"ipam": {"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}]]}}, "one range set"),
    ({"ipam": {"ranges": [[{"subnet": "10.1.0.0/24"}, {"subnet": "10.1.0.0/25"}]]}}, "overlap"),
    ({"ipam": {"subnet": "10.1.0.0/24", "routes": [{"dst": "10.9.0.1/16"}]}}, "route"),
    ({"ipam": {"subnet": "10.1.0.0/24", "reserved": ["x"]}}, "reserved"),
    ({"runtimeConfig": {"ips": ["10.1.0.5/24", "10.1.0.6/24"]}}, "requested"),
    ({"runtimeConfig": {"mac": "zz"}}, "MAC"),
])
def test_code_7_invalid_config(env, change, what):
    out = error(env, config=conf(**change))
    assert out["code"] == 7 and what in out["msg"] + out.get("details", ""), out


def test_code_7_check_without_prev_result_and_gc_without_attachments(env):
    assert error(env, "CHECK")["code"] == 7
    assert error(env, "GC", config=conf(cniVersion="1.1.0"))["code"] == 7
    assert error(env, "GC", config=conf(cniVersion="1.1.0", **{"cni.dev/valid-attachments": [{"x": 1}]}))["code"] == 7


def test_code_11_subnet_file_not_written_yet(env, tmp_path):
    out = error(env, config=conf(ipam={"subnetFile": str(tmp_path / "none.env")}))
    assert out["code"] == 11 and "node agent" in out["details"]
    # DEL does not need the subnet: it still works
    assert env.call("DEL", config=conf(ipam={"subnetFile": str(tmp_path / "none.env")}))[0] == 0


def test_code_3_netns_missing(env):
    assert error(env, CNI_NETNS="/run/netns/gone")["code"] == 3


def test_code_100_exhausted_and_status_50(env):
    small = conf(cniVersion="1.1.0", ipam={"subnet": "10.1.0.0/30"})
    assert env.call(config=small)[0] == 0
    env.kernel.add_netns("/run/netns/pod2")
    out = error(env, config=small, CNI_CONTAINERID="c2", CNI_NETNS="/run/netns/pod2")
    assert out["code"] == 100
    assert error(env, "STATUS", config=small)["code"] == 50
    assert env.call("DEL", config=small)[0] == 0
    assert env.call("STATUS", config=small) == (0, None)


def test_code_101_requested_ip_taken(env):
    assert env.call(config=conf(runtimeConfig={"ips": ["10.1.0.7/24"]}))[0] == 0
    env.kernel.add_netns("/run/netns/pod2")
    out = error(env, config=conf(args={"cni": {"ips": ["10.1.0.7"]}}), CNI_CONTAINERID="c2", CNI_NETNS="/run/netns/pod2")
    assert out["code"] == 101


def test_code_102_interface_exists(env):
    assert env.call()[0] == 0
    assert error(env, CNI_CONTAINERID="c2")["code"] == 102  # eth0 is taken in pod1


def test_code_103_bridge_name_taken_by_another_kind(env):
    env.kernel._new_link("<host>", "br-t", "dummy")
    assert error(env)["code"] == 103


def test_code_104_kernel_refused(env):
    env.kernel.fail_on.add("create_veth")
    out = error(env)
    assert out["code"] == 104 and "Operation not permitted" in out["msg"] and "root" in out["msg"]


def test_code_107_injected_and_999_internal(env, monkeypatch):
    assert error(env, NODEAGENT_CNI_FAIL_AFTER="ipam")["code"] == 107
    monkeypatch.setattr(plugin, "_routes_for", lambda *a: 1 / 0)
    out = error(env, CNI_CONTAINERID="c9")
    assert out["code"] == 999 and "ZeroDivisionError" in out["msg"]


def test_error_carries_the_config_version(env):
    out = error(env, config=conf(cniVersion="0.4.0", ipam={}))
    assert out["cniVersion"] == "0.4.0"


def test_reads_the_subnet_file_the_node_agent_writes(tmp_path):
    from nodeagent.agent import subnet
    f = tmp_path / "subnet.env"
    subnet.write(str(f), subnet.render("10.244.0.0/16", "10.244.7.0/24", 1450))
    c = NetConf(conf(ipam={"subnetFile": str(f)}))
    assert [(r.subnet, r.gateway) for r in c.ranges] == [("10.244.7.0/24", 0x0AF40701)]
    assert c.effective_mtu == 1450
