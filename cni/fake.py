"""A state-based fake of kernel.RealKernel: namespaces, links, addresses and routes in dicts.

It behaves like the kernel where the plugin depends on it: names are unique per namespace,
deleting one end of a veth deletes the other with every address and route on them, a route via a
gateway needs the gateway on a connected subnet, a deleted namespace takes its links with it.
Tests assert on `snapshot()` (the end state), not on calls.
"""
from __future__ import annotations

import errno

from .ipam import netmask
from .netlink import NetlinkError, random_mac, mac_str
from .spec import CniError, E_BRIDGE, E_INTERFACE_EXISTS

HOST = "<host>"


class FakeKernel:
    def __init__(self):
        self.ns: dict[str, dict] = {}
        self.next_index = 1
        self.forwarding = False
        self.add_netns(HOST)
        self.fail_on: set[str] = set()  # verbs that raise NetlinkError(EPERM), to test errors

    # -- namespaces ------------------------------------------------------------------------------
    def add_netns(self, path: str):
        self.ns[path] = {"links": {}, "routes": []}
        self._new_link(path, "lo", "loopback", up=False)

    def del_netns(self, path: str):
        for name in list(self.ns[path]["links"]):
            self._delete(path, name)
        del self.ns[path]

    def is_own_netns(self, path):
        return path == HOST

    def open_netns(self, path):
        if path not in self.ns:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return path

    def close_netns(self, handle):
        pass

    # -- helpers ---------------------------------------------------------------------------------
    def _check(self, verb):
        if verb in self.fail_on:
            raise NetlinkError(errno.EPERM, verb)

    def _new_link(self, ns, name, kind, up=False, mtu=1500, mac=None):
        if name in self.ns[ns]["links"]:
            raise NetlinkError(errno.EEXIST, f"create {name}")
        link = {"name": name, "index": self.next_index, "kind": kind, "up": up, "mtu": mtu or 1500,
                "mac": mac or mac_str(random_mac()), "master": 0, "peer": None, "addrs": [],
                "hairpin": False}
        self.next_index += 1
        self.ns[ns]["links"][name] = link
        return link

    def _delete(self, ns, name):
        link = self.ns[ns]["links"].pop(name)
        self.ns[ns]["routes"] = [r for r in self.ns[ns]["routes"] if r["oif"] != link["index"]]
        if link["peer"]:
            pns, pname = link["peer"]
            if pname in self.ns.get(pns, {}).get("links", {}):
                self.ns[pns]["links"][pname]["peer"] = None
                self._delete(pns, pname)

    def _view(self, ns, link):
        peer_index = 0
        if link["peer"]:
            pns, pname = link["peer"]
            peer_index = self.ns[pns]["links"][pname]["index"]
        master = link["master"]
        return {"name": link["name"], "index": link["index"], "mac": link["mac"], "mtu": link["mtu"],
                "kind": link["kind"], "master": master, "peer_index": peer_index, "up": link["up"]}

    def _by_index(self, ns, index):
        return next((l for l in self.ns[ns]["links"].values() if l["index"] == index), None)

    # -- node side -------------------------------------------------------------------------------
    def link(self, name):
        link = self.ns[HOST]["links"].get(name)
        return self._view(HOST, link) if link else None

    def ensure_bridge(self, name, mtu):
        self._check("ensure_bridge")
        link = self.ns[HOST]["links"].get(name) or self._new_link(HOST, name, "bridge", mtu=mtu)
        if link["kind"] != "bridge":
            raise CniError(E_BRIDGE, f"link {name} exists but is not a bridge", link["kind"])
        link["up"] = True
        return self._view(HOST, link)

    def addresses(self, index):
        return list(self._by_index(HOST, index)["addrs"])

    def ensure_gateway(self, bridge, ip, prefix, force):
        self._check("ensure_gateway")
        link = self._by_index(HOST, bridge["index"])
        if (ip, prefix) in link["addrs"]:
            return
        if link["addrs"] and not force:
            raise CniError(E_BRIDGE, f"bridge {bridge['name']} already has another address",
                           "set \"forceAddress\": true to replace it, or use another bridge name")
        link["addrs"] = [(ip, prefix)]

    def enable_forwarding(self):
        self.forwarding = True

    def create_veth(self, host_name, bridge, mtu, ns, pod_ifname, mac, hairpin):
        self._check("create_veth")
        if host_name in self.ns[HOST]["links"]:
            raise CniError(E_INTERFACE_EXISTS, f"host interface {host_name} already exists", "")
        if pod_ifname in self.ns[ns]["links"]:
            raise CniError(E_INTERFACE_EXISTS, f"interface {pod_ifname} already exists", "")
        host = self._new_link(HOST, host_name, "veth", up=True, mtu=mtu)
        pod = self._new_link(ns, pod_ifname, "veth", mtu=mtu, mac=mac or None)
        host["peer"], pod["peer"] = (ns, pod_ifname), (HOST, host_name)
        host["master"] = bridge["index"]
        host["hairpin"] = hairpin
        return self._view(HOST, host)

    def delete_link(self, name):
        if name not in self.ns[HOST]["links"]:
            return False
        self._delete(HOST, name)
        return True

    def hairpin(self, index):
        link = self._by_index(HOST, index)
        return link["hairpin"] if link else None

    # -- pod side --------------------------------------------------------------------------------
    def setup_pod(self, ns, ifname, ip, prefix, routes):
        self._check("setup_pod")
        links = self.ns[ns]["links"]
        lo_was_down = not links["lo"]["up"]
        links["lo"]["up"] = True
        link = links[ifname]
        link["addrs"].append((ip, prefix))
        link["up"] = True
        for r in routes:
            gw = r.get("gw")
            if gw is not None and (gw & netmask(prefix)) != (ip & netmask(prefix)):
                raise NetlinkError(errno.ENETUNREACH, "add route")
            self.ns[ns]["routes"].append({"dst": r["dst"], "dst_len": r["dst_len"], "gw": gw,
                                          "oif": link["index"]})
        out = self._view(ns, link)
        out["lo_was_down"] = lo_was_down
        return out

    def set_pod_lo_down(self, ns):
        self.ns[ns]["links"]["lo"]["up"] = False

    def delete_pod_link(self, ns, ifname):
        if ifname not in self.ns[ns]["links"]:
            return False
        self._delete(ns, ifname)
        return True

    def inspect_pod(self, ns, ifname):
        link = self.ns[ns]["links"].get(ifname)
        if link is None:
            return None
        out = self._view(ns, link)
        out["addresses"] = list(link["addrs"])
        out["routes"] = [dict(r) for r in self.ns[ns]["routes"]]
        return out

    # -- for assertions --------------------------------------------------------------------------
    def snapshot(self) -> dict:
        """{namespace: {"links": {name: (kind, up, addrs)}, "routes": [...]}}."""
        return {ns: {"links": {n: (l["kind"], l["up"], tuple(l["addrs"])) for n, l in s["links"].items()},
                     "routes": sorted((r["dst"], r["dst_len"], r["gw"] or 0) for r in s["routes"])}
                for ns, s in self.ns.items()}
