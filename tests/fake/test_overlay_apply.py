"""The overlay applier on the fake kernel, for every kind of event: node added, removed, IP or
MAC changed, device deleted or misconfigured, a route removed behind our back, failures midway."""
from __future__ import annotations

from nodeagent.overlay.apply import OverlayApplier
from nodeagent.overlay.fake import FakeNetlink
from nodeagent.overlay.model import Fdb, Neighbour, OverlayConfig, OverlayNode, Route
from nodeagent.overlay.plan import plan

CFG = OverlayConfig()
A = OverlayNode("a", "192.168.50.2", "02:00:00:00:00:0a", "10.244.1.0/24")
B = OverlayNode("b", "192.168.50.3", "02:00:00:00:00:0b", "10.244.2.0/24")
C = OverlayNode("c", "192.168.50.4", "02:00:00:00:00:0c", "10.244.3.0/24")


def desired(*nodes):
    return plan(A, [A, *nodes], CFG, underlay_device="eth0", underlay_mtu=1500)


def state(k: FakeNetlink):
    dev = CFG.device
    return k.neighbours(dev), k.fdbs(dev), k.routes()


def setup(*nodes):
    k = FakeNetlink()
    a = OverlayApplier(k)
    res = a.reconcile(desired(*nodes))
    assert res.ok
    return k, a, res


def test_first_reconcile_creates_device_and_entries_in_order():
    k, _, res = setup(B, C)
    assert res.device_created and sorted(res.added) == ["b", "c"]
    d = k.device(CFG.device)
    assert d.kind == "vxlan" and d.vni == 1 and d.port == 8472 and d.mtu == 1450 and d.up
    assert CFG.device not in k.tx_csum_off  # offload stays on unless asked
    neigh, fdb, routes = state(k)
    assert neigh == {Neighbour("10.244.2.0", B.vtep_mac), Neighbour("10.244.3.0", C.vtep_mac)}
    assert fdb == {Fdb(B.vtep_mac, B.underlay_ip), Fdb(C.vtep_mac, C.underlay_ip)}
    assert routes == {Route("10.244.2.0/24", "10.244.2.0", CFG.device), Route("10.244.3.0/24", "10.244.3.0", CFG.device)}
    # per node: neighbour, then FDB, then the route (a route first would make the kernel ARP)
    adds = [c for c in k.calls if c.startswith("add_")]
    assert adds[:3] == ["add_neighbour", "add_fdb", "add_route"]


def test_checksum_offload_off_when_asked():
    k = FakeNetlink()
    cfg = OverlayConfig(tx_checksum_offload=False)
    OverlayApplier(k).reconcile(plan(A, [A, B], cfg, underlay_device="eth0", underlay_mtu=1500))
    assert cfg.device in k.tx_csum_off


def test_second_reconcile_with_no_change_does_nothing():
    k, a, _ = setup(B, C)
    k.calls.clear()
    res = a.reconcile(desired(B, C))
    assert res.ok and res.added == [] and res.removed == 0
    assert k.calls == []


def test_node_added_and_removed():
    k, a, _ = setup(B)
    a.reconcile(desired(B, C))
    assert len(state(k)[2]) == 2
    k.calls.clear()
    res = a.reconcile(desired(C))
    assert res.removed == 3
    neigh, fdb, routes = state(k)
    assert routes == {Route("10.244.3.0/24", "10.244.3.0", CFG.device)}
    assert fdb == {Fdb(C.vtep_mac, C.underlay_ip)} and neigh == {Neighbour("10.244.3.0", C.vtep_mac)}
    assert [c for c in k.calls if c.startswith("del_")] == ["del_route", "del_fdb", "del_neighbour"]


def test_node_ip_change_moves_only_its_fdb_entry():
    k, a, _ = setup(B)
    moved = OverlayNode("b", "192.168.50.33", B.vtep_mac, B.pod_cidr)
    k.calls.clear()
    a.reconcile(desired(moved))
    assert state(k)[1] == {Fdb(B.vtep_mac, "192.168.50.33")}
    assert "del_route" not in k.calls and "add_route" not in k.calls


def test_node_mac_change_replaces_neighbour_and_fdb():
    k, a, _ = setup(B)
    new = OverlayNode("b", B.underlay_ip, "02:00:00:00:00:bb", B.pod_cidr)
    a.reconcile(desired(new))
    neigh, fdb, routes = state(k)
    assert neigh == {Neighbour("10.244.2.0", "02:00:00:00:00:bb")} and fdb == {Fdb("02:00:00:00:00:bb", B.underlay_ip)}
    assert len(routes) == 1


def test_deleted_device_is_recreated_with_all_entries():
    k, a, _ = setup(B, C)
    k.delete_link(CFG.device)
    assert state(k) == (set(), set(), set())
    res = a.reconcile(desired(B, C))
    assert res.device_created and sorted(res.added) == ["b", "c"] and len(state(k)[2]) == 2


def test_misconfigured_device_is_replaced():
    k, a, _ = setup(B)
    import dataclasses
    k.links[CFG.device] = dataclasses.replace(k.links[CFG.device], vni=42)
    res = a.reconcile(desired(B))
    assert res.device_created and k.device(CFG.device).vni == 1


def test_removed_route_is_repaired():
    k, a, _ = setup(B, C)
    k.our_routes.discard(Route("10.244.2.0/24", "10.244.2.0", CFG.device))
    k.calls.clear()
    res = a.reconcile(desired(B, C))
    assert res.added == ["b"] and k.calls == ["add_route"]


def test_failure_midway_undoes_that_nodes_earlier_steps_only():
    k = FakeNetlink()
    a = OverlayApplier(k)
    a.reconcile(desired(C))
    k.fail.add("add_route")
    res = a.reconcile(desired(B, C))
    assert set(res.failed) == {"b"}
    neigh, fdb, routes = state(k)
    assert Neighbour("10.244.2.0", B.vtep_mac) not in neigh and Fdb(B.vtep_mac, B.underlay_ip) not in fdb
    assert Route("10.244.3.0/24", "10.244.3.0", CFG.device) in routes  # C untouched
    k.fail.clear()
    assert a.reconcile(desired(B, C)).added == ["b"]


def test_entries_we_did_not_make_are_never_touched():
    k, a, _ = setup(B)
    foreign_route = Route("172.16.0.0/16", "192.168.50.1", "eth0", onlink=False)
    k.other_routes.add(foreign_route)
    k.other_neigh.setdefault("eth0", set()).add(Neighbour("192.168.50.1", "02:11:11:11:11:11"))
    a.reconcile(desired())
    assert foreign_route in k.other_routes and k.other_neigh["eth0"]
    a.remove_all(CFG.device)
    assert foreign_route in k.other_routes and k.device(CFG.device) is None and k.routes() == set()
