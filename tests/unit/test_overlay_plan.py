"""The overlay planner as a pure function: nodes in, desired kernel entries out."""
from __future__ import annotations

import pytest

from nodeagent.overlay.model import Fdb, Neighbour, OverlayConfig, OverlayNode, Route
from nodeagent.overlay.plan import NodeNotReady, overlay_node, plan

A = OverlayNode("a", "192.168.50.2", "02:00:00:00:00:0a", "10.244.1.0/24")
B = OverlayNode("b", "192.168.50.3", "02:00:00:00:00:0b", "10.244.2.0/24")
C = OverlayNode("c", "192.168.60.4", "02:00:00:00:00:0c", "10.244.3.0/24")


def test_three_entries_per_remote_node_and_none_for_itself():
    d = plan(A, [A, B, C], OverlayConfig(), underlay_device="eth0", underlay_mtu=1500)
    assert d.device.mtu == 1450 and d.device.address == "10.244.1.0" and d.device.local_ip == A.underlay_ip
    assert set(d.peers) == {"b", "c"}
    b = d.peers["b"]
    assert b.neighbour == Neighbour("10.244.2.0", "02:00:00:00:00:0b")
    assert b.fdb == Fdb("02:00:00:00:00:0b", "192.168.50.3")
    assert b.route == Route("10.244.2.0/24", "10.244.2.0", "nodeagent.1", onlink=True)


def test_configured_mtu_wins():
    assert plan(A, [], OverlayConfig(mtu=1400), underlay_device="eth0", underlay_mtu=9000).device.mtu == 1400
    assert plan(A, [], OverlayConfig(), underlay_device="eth0", underlay_mtu=9000).device.mtu == 8950


def test_direct_routing_for_nodes_on_the_same_l2_network():
    d = plan(A, [B, C], OverlayConfig(direct_routing=True), underlay_device="eth0", underlay_mtu=1500,
             underlay_net="192.168.50.0/24")
    assert d.peers["b"].neighbour is None and d.peers["b"].fdb is None
    assert d.peers["b"].route == Route("10.244.2.0/24", "192.168.50.3", "eth0", onlink=False)
    assert d.peers["c"].fdb == Fdb("02:00:00:00:00:0c", "192.168.60.4")  # another network: VXLAN


def test_a_duplicate_pod_cidr_is_left_out_deterministically():
    stale = OverlayNode("z-old", "192.168.50.9", "02:00:00:00:00:09", "10.244.2.0/24")
    d = plan(A, [stale, B], OverlayConfig(), underlay_device="eth0", underlay_mtu=1500)
    assert set(d.peers) == {"b"}


def node(name="n", cidr="10.244.5.0/24", mac="02:aa:bb:cc:dd:ee", ip="192.168.50.5") -> dict:
    ann = {}
    if mac is not None:
        ann["nodeagent.io/vtep-mac"] = mac
    if ip is not None:
        ann["nodeagent.io/underlay-ip"] = ip
    return {"metadata": {"name": name, "annotations": ann}, "spec": {"podCIDR": cidr} if cidr else {}}


def test_reading_node_objects():
    assert overlay_node(node()) == OverlayNode("n", "192.168.50.5", "02:aa:bb:cc:dd:ee", "10.244.5.0/24")
    assert overlay_node(node(mac="02:AA:BB:CC:DD:EE")).vtep_mac == "02:aa:bb:cc:dd:ee"


@pytest.mark.parametrize("bad", [node(cidr=None), node(mac=None), node(mac="zz"), node(ip="nope"),
                                 node(cidr="10.244.5.1/24"), node(ip="fd00::1")])
def test_nodes_not_ready_for_the_overlay(bad):
    with pytest.raises(NodeNotReady):
        overlay_node(bad)
