"""The kernel operations of the plugin, as a few idempotent verbs over netlink.

`RealKernel` talks to the kernel (netlink.py, netns.py); `cni.fake.FakeKernel` keeps the same
state in dicts for tests without root. The plugin (plugin.py) only sees these verbs, so its
ordering and rollback are tested on the fake and on the real kernel alike.

Links are returned as dicts: name, index, mac, mtu, kind, master, peer_index, up.
Routes are dicts of ints: dst, dst_len, gw (or None), and optionally mtu, advmss, priority,
table, scope.
"""
from __future__ import annotations

import errno
import os

from . import netns as _netns
from .netlink import Netlink, NetlinkError, mac_bytes, random_mac, write_sysctl
from .spec import CniError, E_BRIDGE, E_INTERFACE_EXISTS, E_ROUTE_EXISTS


def _link_dict(link) -> dict:
    return {"name": link.name, "index": link.index, "mac": link.mac, "mtu": link.mtu,
            "kind": link.kind, "master": link.master, "peer_index": link.peer_index, "up": link.up}


class RealKernel:
    def __init__(self):
        self._nl = None

    @property
    def nl(self) -> Netlink:
        if self._nl is None:
            self._nl = Netlink()
        return self._nl

    def close(self):
        if self._nl is not None:
            self._nl.close()
            self._nl = None

    # -- namespaces ------------------------------------------------------------------------------
    def is_own_netns(self, path: str) -> bool:
        return _netns.same_netns(path)

    def open_netns(self, path: str):
        return _netns.open_netns(path)

    def close_netns(self, handle):
        os.close(handle)

    # -- node side -------------------------------------------------------------------------------
    def link(self, name: str) -> dict | None:
        link = self.nl.link(name)
        return _link_dict(link) if link else None

    def ensure_bridge(self, name: str, mtu: int) -> dict:
        link = self.nl.link(name)
        if link is None:
            try:
                self.nl.create_bridge(name, mtu, random_mac())
            except NetlinkError as e:
                if e.errno != errno.EEXIST:  # EEXIST: a concurrent ADD made it first
                    raise
            link = self.nl.link(name)
        if link is None or link.kind != "bridge":
            raise CniError(E_BRIDGE, f"link {name} exists but is not a bridge",
                           f"it is a {link.kind or 'device'}; set \"bridge\" in the network "
                           f"configuration to another name, or remove {name}")
        if not link.up:
            self.nl.set_link(link.index, up=True, what=f"set bridge {name} up")
        return _link_dict(link)

    def addresses(self, index: int) -> list[tuple[int, int]]:
        return [(a.address, a.prefix) for a in self.nl.addresses(index)]

    def ensure_gateway(self, bridge: dict, ip: int, prefix: int, force: bool):
        """The gateway address on the bridge. Another IPv4 address there is an error (as in the
        reference bridge plugin) unless `force`, which replaces it."""
        from .ipam import cidr_str
        have = self.addresses(bridge["index"])
        if (ip, prefix) in have:
            return
        others = [a for a in have if a != (ip, prefix)]
        if others and not force:
            raise CniError(E_BRIDGE, f"bridge {bridge['name']} already has an address other than "
                           f"{cidr_str(ip, prefix)}",
                           f"it has {', '.join(cidr_str(*a) for a in others)}; set "
                           f"\"forceAddress\": true to replace it, or use another bridge name")
        for a in others:
            self._del_address(bridge["index"], *a)
        self.nl.add_address(bridge["index"], ip, prefix, exist_ok=True)

    def _del_address(self, index, ip, prefix):
        from .netlink import RTM_DELADDR, _IFADDRMSG, AF_INET, attr, ip4, IFA_LOCAL
        self.nl.request(RTM_DELADDR, 0, _IFADDRMSG.pack(AF_INET, prefix, 0, 0, index)
                        + attr(IFA_LOCAL, ip4(ip)), f"delete address from link {index}")

    def enable_forwarding(self):
        write_sysctl("net/ipv4/ip_forward", "1")

    def create_veth(self, host_name: str, bridge: dict, mtu: int, ns, pod_ifname: str,
                    mac: str, hairpin: bool) -> dict:
        try:
            self.nl.create_veth(host_name, pod_ifname, ns, mtu, master=bridge["index"],
                                peer_mac=mac_bytes(mac) if mac else None)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:
                raise
            if self.nl.link(host_name) is not None:
                raise CniError(E_INTERFACE_EXISTS, f"host interface {host_name} already exists",
                               "a previous ADD of this container and interface was not deleted: "
                               "run DEL for it first") from None
            raise CniError(E_INTERFACE_EXISTS, f"interface {pod_ifname} already exists in the "
                           "container's network namespace",
                           "choose another CNI_IFNAME, or run DEL for the earlier attachment") from None
        link = self.nl.link(host_name)
        if hairpin:
            self.nl.set_hairpin(link.index, True)
        return _link_dict(link)

    def delete_link(self, name: str) -> bool:
        return self.nl.delete_link(name=name)

    def hairpin(self, index: int):
        return self.nl.hairpin(index)

    # -- pod side (each call: one thread inside the pod's namespace) ----------------------------
    def setup_pod(self, ns, ifname: str, ip: int, prefix: int, routes: list[dict]) -> dict:
        return _netns.run_in_netns(ns, _setup_pod, ifname, ip, prefix, routes)

    def set_pod_lo_down(self, ns):
        def down():
            with Netlink() as nl:
                lo = nl.link("lo")
                nl.set_link(lo.index, up=False, what="set lo down")
        _netns.run_in_netns(ns, down)

    def delete_pod_link(self, ns, ifname: str) -> bool:
        def delete():
            with Netlink() as nl:
                return nl.delete_link(name=ifname)
        return _netns.run_in_netns(ns, delete)

    def inspect_pod(self, ns, ifname: str) -> dict | None:
        return _netns.run_in_netns(ns, _inspect_pod, ifname)


def _setup_pod(ifname, ip, prefix, routes):
    # gratuitous ARP when the link comes up: peers forget a reused address's old MAC
    write_sysctl(f"net/ipv4/conf/{ifname}/arp_notify", "1")
    with Netlink() as nl:
        lo = nl.link("lo")
        lo_was_down = lo is not None and not lo.up
        if lo_was_down:
            nl.set_link(lo.index, up=True, what="set lo up")
        link = nl.link(ifname)
        nl.add_address(link.index, ip, prefix)
        nl.set_link(link.index, up=True, what=f"set {ifname} up")
        for r in routes:
            try:
                nl.add_route(r["dst"], r["dst_len"], r.get("gw"), link.index, mtu=r.get("mtu", 0),
                             advmss=r.get("advmss", 0), priority=r.get("priority", 0),
                             table=r.get("table") or 254, scope=r.get("scope"))
            except NetlinkError as e:
                if e.errno == errno.EEXIST:
                    raise CniError(E_ROUTE_EXISTS, f"{e.strerror} in the container's namespace",
                                   "another attachment already routes there: set "
                                   "\"isDefaultGateway\": false (or drop the route from "
                                   "ipam.routes) for this network") from None
                raise
        out = _link_dict(link)
        out["up"] = True
        out["lo_was_down"] = lo_was_down
        return out


def _inspect_pod(ifname):
    with Netlink() as nl:
        link = nl.link(ifname)
        if link is None:
            return None
        out = _link_dict(link)
        out["addresses"] = [(a.address, a.prefix) for a in nl.addresses(link.index)]
        out["routes"] = [{"dst": r.dst, "dst_len": r.dst_len, "gw": r.gateway, "oif": r.oif}
                         for r in nl.routes(None)]
        return out
