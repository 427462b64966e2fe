"""Spec data: result rendering per version, prevResult parsing and merging, CNI_ARGS, names."""
import pytest

from cni import spec
from cni.spec import CniError

RESULT = {
    "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:01", "mtu": 1450},
                   {"name": "veth1", "mac": "aa:bb:cc:dd:ee:02", "mtu": 1450},
                   {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "mtu": 1450, "sandbox": "/run/netns/p"}],
    "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "10.96.0.0/12", "gw": "10.1.0.1", "mtu": 1400}],
    "dns": {"nameservers": ["10.96.0.10"]},
}


def test_render_1_1_0_keeps_mtus_and_route_extras():
    out = spec.render_result(RESULT, "1.1.0")
    assert out["cniVersion"] == "1.1.0"
    assert out["interfaces"][2] == {"name": "eth0", "mac": "aa:bb:cc:dd:ee:03", "mtu": 1450, "sandbox": "/run/netns/p"}
    assert out["ips"] == [{"interface": 2, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]
    assert out["routes"][1] == {"dst": "10.96.0.0/12", "gw": "10.1.0.1", "mtu": 1400}
    assert out["dns"] == {"nameservers": ["10.96.0.10"]}


def test_render_1_0_0_has_only_1_0_0_fields():
    out = spec.render_result(RESULT, "1.0.0")
    assert out["interfaces"][0] == {"name": "cni0", "mac": "aa:bb:cc:dd:ee:01"}
    assert "version" not in out["ips"][0]
    assert out["routes"][1] == {"dst": "10.96.0.0/12", "gw": "10.1.0.1"}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_render_0_3_and_0_4_have_ip_versions(version):
    out = spec.render_result(RESULT, version)
    assert out["cniVersion"] == version
    assert out["ips"] == [{"version": "4", "interface": 2, "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]
    assert [set(i) for i in out["interfaces"]] == [{"name", "mac"}, {"name", "mac"}, {"name", "mac", "sandbox"}]


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_render_0_1_and_0_2_use_ip4(version):
    out = spec.render_result(RESULT, version)
    assert out == {"cniVersion": version,
                   "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1",
                           "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}, {"dst": "10.96.0.0/12", "gw": "10.1.0.1"}]},
                   "dns": {"nameservers": ["10.96.0.10"]}}


@pytest.mark.parametrize("version", spec.SUPPORTED_VERSIONS)
def test_parse_of_rendered_result_round_trips(version):
    parsed = spec.parse_result(spec.render_result(RESULT, version), version)
    if version in ("0.1.0", "0.2.0"):
        assert parsed["ips"] == [{"address": "10.1.0.2/24", "gateway": "10.1.0.1"}]
    else:
        assert spec.render_result(parsed, version) == spec.render_result(RESULT, version)


def test_merge_shifts_interface_indexes_past_the_previous_plugins():
    prev = {"interfaces": [{"name": "x0"}], "ips": [{"address": "192.168.0.2/24", "interface": 0}],
            "routes": [], "dns": {"search": ["a"]}}
    ours = {"interfaces": [{"name": "br"}, {"name": "v"}, {"name": "eth1", "sandbox": "/p"}],
            "ips": [{"address": "10.0.0.2/24", "interface": 2}], "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
    m = spec.merge_results(prev, ours)
    assert [i["name"] for i in m["interfaces"]] == ["x0", "br", "v", "eth1"]
    assert m["ips"][1] == {"address": "10.0.0.2/24", "interface": 3}
    assert m["dns"] == {"search": ["a"]}
    assert spec.merge_results(None, ours) is ours


@pytest.mark.parametrize("bad", [[], {"ips": {}}, {"ips": [{"gateway": "1.1.1.1"}]},
                                 {"interfaces": [{"mac": "x"}]}, {"routes": [{"gw": "1.1.1.1"}]}])
def test_undecodable_prev_result_is_code_6(bad):
    with pytest.raises(CniError) as e:
        spec.parse_result(bad, "1.0.0")
    assert e.value.code == 6


def test_versions():
    assert spec.check_version("0.4.0") == "0.4.0"
    for bad, code in (("2.0.0", 1), ("0.5.0", 1), ("1.0", 6), ("x.y.z", 6), (1, 6)):
        with pytest.raises(CniError) as e:
            spec.check_version(bad)
        assert e.value.code == code
    assert spec.at_least("1.1.0", "0.4.0") and not spec.at_least("0.3.1", "0.4.0")
    assert spec.at_least("0.10.0", "0.4.0")


def test_cni_args():
    assert spec.parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5") == {
        "IgnoreUnknown": "1", "K8S_POD_NAME": "web", "IP": "10.0.0.5"}
    assert spec.parse_cni_args("") == {}
    with pytest.raises(CniError) as e:
        spec.parse_cni_args("novalue")
    assert e.value.code == 4


def test_names():
    assert spec.valid_name("abc-1.2_3") and not spec.valid_name("-abc") and not spec.valid_name("a/b")
    assert spec.interface_name_problem("eth0") is None
    for bad in ("", "a" * 16, ".", "..", "a/b", "a:b", "a b"):
        assert spec.interface_name_problem(bad)
