"""IPAM: allocation order, release, exhaustion, GC, on the fake store and on the disk layout."""
import multiprocessing
import os

import pytest

from cni.ipam import Allocator, DiskStore, MemoryStore, Range, ip_str, parse_ip
from cni.spec import CniError


def ips(xs):
    return [ip_str(x) for x in xs]


def alloc(store=None, subnet="10.0.0.0/29", **kw):
    return Allocator([Range(subnet, **kw)], store if store is not None else MemoryStore())


def test_round_robin_skips_gateway_network_and_broadcast():
    a = alloc()  # .0 network, .1 gateway, .7 broadcast: .2 - .6 usable
    got = [a.allocate(f"c{i}", "eth0")[1] for i in range(5)]
    assert ips(got) == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    # a released address is not reused at once: the pointer moves on and wraps
    a.release("c1", "eth0")
    a.release("c3", "eth0")
    assert ip_str(a.allocate("n1", "eth0")[1]) == "10.0.0.3"
    assert ip_str(a.allocate("n2", "eth0")[1]) == "10.0.0.5"


def test_exhaustion_is_code_100_with_advice():
    a = alloc(subnet="10.0.0.0/30")  # only .2 is usable
    a.allocate("c1", "eth0")
    with pytest.raises(CniError) as e:
        a.allocate("c2", "eth0")
    assert e.value.code == 100 and "GC" in e.value.details
    assert a.free_count() == 0


def test_reserved_and_explicit_gateway_never_handed_out():
    a = alloc(subnet="10.0.0.0/28", gateway="10.0.0.14", reserved=[parse_ip("10.0.0.3")])
    got = {ip_str(a.allocate(f"c{i}", "eth0")[1]) for i in range(12)}
    assert got == {f"10.0.0.{i}" for i in range(1, 14)} - {"10.0.0.3"}
    with pytest.raises(CniError) as e:
        a.allocate("x", "eth0")
    assert e.value.code == 100


def test_range_start_and_end():
    a = alloc(subnet="10.0.0.0/24", range_start="10.0.0.100", range_end="10.0.0.101")
    assert ips(a.allocate(c, "eth0")[1] for c in ("a", "b")) == ["10.0.0.100", "10.0.0.101"]
    with pytest.raises(CniError):
        a.allocate("c", "eth0")


def test_multiple_ranges_are_walked_in_order():
    a = Allocator([Range("10.0.0.0/30"), Range("10.0.1.0/30")], MemoryStore())
    got = [a.allocate(c, "eth0") for c in "ab"]
    assert [(r.subnet, ip_str(ip)) for r, ip in got] == [("10.0.0.0/30", "10.0.0.2"), ("10.0.1.0/30", "10.0.1.2")]


def test_requested_address():
    a = alloc()
    assert ip_str(a.allocate("c1", "eth0", parse_ip("10.0.0.5"))[1]) == "10.0.0.5"
    for req, why in (("10.0.0.5", "in use"), ("10.0.0.1", "reserved"), ("10.9.9.9", "not in the range")):
        with pytest.raises(CniError) as e:
            a.allocate("c2", "eth0", parse_ip(req))
        assert e.value.code == 101 and why in e.value.msg


@pytest.mark.parametrize("subnet,kw,why", [
    ("10.0.0.0/31", {}, "too small"), ("10.0.0.1/24", {}, "host bits"),
    ("10.0.0.0/24", {"gateway": "10.0.1.1"}, "gateway"), ("10.0.0.0/24", {"range_start": "10.0.0.9", "range_end": "10.0.0.8"}, "after"),
    ("fd00::/64", {}, "IPv6"), ("10.0.0.0", {}, "CIDR")])
def test_bad_ranges(subnet, kw, why):
    with pytest.raises(ValueError) as e:
        Range(subnet, **kw)
    assert why in str(e.value)


def test_release_by_id_and_hint_and_gc():
    a = alloc(subnet="10.0.0.0/24")
    for c in ("a", "b", "c"):
        a.allocate(c, "eth0")
    a.allocate("a", "net1")
    assert ips(a.release("a", "eth0", hint=[parse_ip("10.0.0.2")])) == ["10.0.0.2"]
    assert a.release("a", "eth0") == []  # twice: nothing left, no error
    assert ips(a.find("a", "net1")) == ["10.0.0.5"]
    assert ips(a.gc({("b", "eth0")})) == ["10.0.0.4", "10.0.0.5"]
    assert ips(a.store.entries()) == ["10.0.0.3"]


def test_disk_layout_is_host_local_compatible(tmp_path):
    store = DiskStore(str(tmp_path), "mynet")
    a = alloc(store)
    a.allocate("ctr1", "eth0")
    d = tmp_path / "mynet"
    assert sorted(os.listdir(d)) == ["10.0.0.2", "last_reserved_ip.0", "lock"]
    assert (d / "10.0.0.2").read_bytes() == b"ctr1\r\neth0"
    assert (d / "last_reserved_ip.0").read_text() == "10.0.0.2"
    # a file written by host-local's old format (container id only) is still found and released
    (d / "10.0.0.6").write_bytes(b"old\n")
    assert ips(a.find("old", "eth0")) == ["10.0.0.6"]
    # a pointer left by host-local is honoured
    (d / "last_reserved_ip.0").write_text("10.0.0.4")
    assert ip_str(a.allocate("ctr2", "eth0")[1]) == "10.0.0.5"
    assert ips(a.release("old", "eth0")) == ["10.0.0.6"]
    assert ips(a.gc(set())) == ["10.0.0.2", "10.0.0.5"]
    assert sorted(os.listdir(d)) == ["last_reserved_ip.0", "lock"]


def _worker(args):
    data_dir, i = args
    a = Allocator([Range("10.0.0.0/24")], DiskStore(data_dir, "n"))
    return a.allocate(f"c{i}", "eth0")[1]


def test_disk_store_is_safe_across_processes(tmp_path):
    with multiprocessing.get_context("fork").Pool(8) as pool:
        got = pool.map(_worker, [(str(tmp_path), i) for i in range(60)])
    assert len(set(got)) == 60
    assert len(os.listdir(tmp_path / "n")) == 62


def test_unwritable_store_is_code_105(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(CniError) as e:
        alloc(DiskStore(str(f), "n")).allocate("c", "eth0")
    assert e.value.code == 105
