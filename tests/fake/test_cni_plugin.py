"""The plugin's behaviour on the fake kernel: lifecycle, rollback after every ADD step, DEL
idempotence, CHECK, GC. Assertions are on end state (fake kernel snapshot, IPAM store)."""
import json

import pytest

from cni import plugin
from cni.fake import HOST, FakeKernel
from cni.ipam import MemoryStore, ip_str

NS = "/run/netns/pod1"
CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "nodeagent", "bridge": "br-f",
        "ipam": {"subnet": "10.1.0.0/24", "routes": [{"dst": "10.96.0.0/12"}]}}


class World:
    def __init__(self):
        self.k = FakeKernel()
        self.k.add_netns(NS)
        self.store = MemoryStore()
        self.empty = self.k.snapshot()

    def call(self, command, config=None, **env):
        e = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": NS, "CNI_IFNAME": "eth0"}
        e.update(env)
        code, out = plugin.run(e, json.dumps(config or CONF), self.k, lambda d, n: self.store)
        return code, json.loads(out) if out else None

    def pod_links(self, ns=NS):
        return sorted(self.k.snapshot()[ns]["links"])

    def host_links(self):
        return sorted(self.k.snapshot()[HOST]["links"])


@pytest.fixture
def w():
    return World()


def with_prev(result, **kw):
    return dict(CONF, prevResult=result, **kw)


def test_add_check_del(w):
    code, res = w.call("ADD")
    assert code == 0
    assert [i["name"] for i in res["interfaces"]] == ["br-f", plugin.host_veth_name("c1", "eth0"), "eth0"]
    assert res["ips"] == [{"interface": 2, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]
    assert res["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "10.96.0.0/12", "gw": "10.1.0.1"}]
    snap = w.k.snapshot()
    assert snap[NS]["links"]["eth0"] == ("veth", True, ((0x0A010002, 24),))
    assert snap[NS]["links"]["lo"][1] is True
    assert snap[HOST]["links"]["br-f"] == ("bridge", True, ((0x0A010001, 24),))
    assert w.k.hairpin(w.k.link(res["interfaces"][1]["name"])["index"]) is True
    assert w.call("CHECK", with_prev(res)) == (0, None)
    assert w.call("DEL", with_prev(res)) == (0, None)
    assert w.pod_links() == ["lo"] and w.host_links() == ["br-f", "lo"]
    assert w.store.entries() == {}


@pytest.mark.parametrize("step", plugin.ADD_STEPS)
def test_failure_after_each_step_leaves_nothing_behind(w, step):
    code, out = w.call("ADD", NODEAGENT_CNI_FAIL_AFTER=step)
    assert code == 1 and out["code"] == 107 and step in out["msg"]
    assert w.store.entries() == {}
    assert w.pod_links() == ["lo"]
    assert w.k.snapshot()[NS] == w.empty[NS]  # lo back down, no routes
    assert [l for l in w.host_links() if l.startswith("veth")] == []
    # and the next ADD works
    assert w.call("ADD")[0] == 0


def test_failure_inside_a_kernel_step_rolls_back(w):
    w.k.fail_on.add("setup_pod")
    code, out = w.call("ADD")
    assert out["code"] == 104
    assert w.store.entries() == {} and w.pod_links() == ["lo"]


def test_del_is_idempotent_and_survives_missing_pieces(w):
    _, res = w.call("ADD")
    assert w.call("DEL")[0] == 0
    assert w.call("DEL")[0] == 0  # twice
    # link already gone (deleted by someone else), address still reserved
    _, res = w.call("ADD")
    w.k.delete_pod_link(NS, "eth0")
    assert w.call("DEL")[0] == 0 and w.store.entries() == {}
    # namespace already gone
    _, res = w.call("ADD")
    w.k.del_netns(NS)
    assert w.call("DEL", with_prev(res))[0] == 0 and w.store.entries() == {}
    assert [l for l in w.host_links() if l.startswith("veth")] == []


def test_del_with_a_broken_cached_result_still_releases(w):
    w.call("ADD")
    assert w.call("DEL", with_prev({"ips": "garbage"}))[0] == 0
    assert w.store.entries() == {}


@pytest.mark.parametrize("damage,what", [
    (lambda k: k.delete_pod_link(NS, "eth0"), "missing"),
    (lambda k: k.ns[NS]["links"]["eth0"]["addrs"].clear(), "address"),
    (lambda k: k.ns[NS].__setitem__("routes", []), "route"),
    (lambda k: k.ns[HOST]["links"][plugin.host_veth_name("c1", "eth0")].__setitem__("master", 0), "bridge"),
    (lambda k: k.ns[HOST]["links"][plugin.host_veth_name("c1", "eth0")].__setitem__("hairpin", False), "hairpin"),
])
def test_check_finds_damage(w, damage, what):
    _, res = w.call("ADD")
    damage(w.k)
    code, out = w.call("CHECK", with_prev(res))
    assert code == 1 and out["code"] == 106 and what in out["msg"], out


def test_check_fails_when_the_reservation_is_gone(w):
    _, res = w.call("ADD")
    w.store.files.clear()
    assert w.call("CHECK", with_prev(res))[1]["code"] == 106


def test_chained_after_another_plugin_appends_to_prev_result(w):
    prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "other0"}],
            "ips": [{"address": "192.168.5.5/24", "interface": 0}], "dns": {"nameservers": ["1.1.1.1"]}}
    code, res = w.call("ADD", with_prev(prev))
    assert code == 0
    assert [i["name"] for i in res["interfaces"]][0] == "other0" and len(res["interfaces"]) == 4
    assert res["ips"][1]["interface"] == 3 and res["dns"] == {"nameservers": ["1.1.1.1"]}
    assert w.call("CHECK", with_prev(res))[0] == 0


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_every_version_adds_checks_and_deletes(w, version):
    c = dict(CONF, cniVersion=version)
    code, res = w.call("ADD", c)
    assert code == 0 and res["cniVersion"] == version
    assert ("version" in res["ips"][0]) == (version < "1.0.0")
    if version >= "0.4.0":
        assert w.call("CHECK", dict(c, prevResult=res))[0] == 0
    assert w.call("DEL", dict(c, prevResult=res))[0] == 0 and w.store.entries() == {}


def test_gc_releases_addresses_of_invalid_attachments(w):
    c = dict(CONF, cniVersion="1.1.0")
    for i in range(3):
        w.k.add_netns(f"/run/netns/p{i}")
        assert w.call("ADD", c, CNI_CONTAINERID=f"c{i}", CNI_NETNS=f"/run/netns/p{i}")[0] == 0
    gc = dict(c, **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    assert w.call("GC", gc, CNI_CONTAINERID=None, CNI_NETNS=None, CNI_IFNAME=None) == (0, None)
    assert {o for o in w.store.entries().values()} == {("c1", "eth0")}


def test_mac_and_static_ip_requests(w):
    c = dict(CONF, runtimeConfig={"mac": "02:00:00:00:00:42", "ips": ["10.1.0.99/24"]})
    code, res = w.call("ADD", c)
    assert res["interfaces"][2]["mac"] == "02:00:00:00:00:42" and res["ips"][0]["address"] == "10.1.0.99/24"
    w.k.add_netns("/run/netns/p2")
    code, res = w.call("ADD", CONF, CNI_CONTAINERID="c2", CNI_NETNS="/run/netns/p2", CNI_ARGS="IgnoreUnknown=1;IP=10.1.0.77")
    assert res["ips"][0]["address"] == "10.1.0.77/24"
    assert sorted(ip_str(i) for i in w.store.entries()) == ["10.1.0.77", "10.1.0.99"]


def test_existing_bridge_with_another_address(w):
    w.call("ADD")
    w.k.add_netns("/run/netns/p2")
    other = dict(CONF, ipam={"subnet": "10.2.0.0/24"})
    code, out = w.call("ADD", other, CNI_CONTAINERID="c2", CNI_NETNS="/run/netns/p2")
    assert out["code"] == 103 and "forceAddress" in out["details"]
    assert w.pod_links("/run/netns/p2") == ["lo"] and len(w.store.entries()) == 1
