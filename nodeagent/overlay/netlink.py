"""The overlay's kernel backend: rtnetlink through pyroute2, optionally in a named network
namespace (the lab runs one agent per namespace). Only entries we own are reported: permanent
neighbour and FDB entries on our device, and routes with our protocol number."""
from __future__ import annotations

import subprocess

from .backend import DeviceState
from .model import NUD_PERMANENT, RTPROT_NODEAGENT, DeviceSpec, Fdb, Neighbour, Route

RTNH_F_ONLINK = 4
NTF_SELF = 0x02


class _Errors:
    """Call-through to pyroute2 that raises OSError (with the errno) instead of NetlinkError,
    so callers handle kernel refusals with one except clause whatever the backend."""

    def __init__(self, ipr, error_type):
        self._ipr, self._error = ipr, error_type

    def __getattr__(self, name):
        fn = getattr(self._ipr, name)
        if not callable(fn):
            return fn

        def call(*a, **kw):
            try:
                return fn(*a, **kw)
            except self._error as err:
                code = err.code if isinstance(getattr(err, "code", None), int) else 0
                raise OSError(code, f"{name}: {err}") from None
        return call


class NetlinkBackend:
    def __init__(self, netns: str | None = None):
        from pyroute2 import IPRoute, NetNS  # ~150 ms to import: only when the agent needs it
        from pyroute2.netlink.exceptions import NetlinkError
        self.netns = netns
        self.ipr = _Errors(NetNS(netns) if netns else IPRoute(), NetlinkError)

    def close(self) -> None:
        self.ipr.close()

    def _index(self, name: str) -> int | None:
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def _need(self, name: str) -> int:
        idx = self._index(name)
        if idx is None:
            raise OSError(f"no such device {name}")
        return idx

    def device(self, name: str) -> DeviceState | None:
        idx = self._index(name)
        if idx is None:
            return None
        link = self.ipr.link("get", index=idx)[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else ""
        vni = port = 0
        local = under = ""
        if kind == "vxlan":
            data = info.get_attr("IFLA_INFO_DATA")
            vni, port = data.get_attr("IFLA_VXLAN_ID"), data.get_attr("IFLA_VXLAN_PORT")
            local = data.get_attr("IFLA_VXLAN_LOCAL") or ""
            under_idx = data.get_attr("IFLA_VXLAN_LINK")
            if under_idx:
                under_link = self.ipr.link("get", index=under_idx)[0]
                under = under_link.get_attr("IFLA_IFNAME")
        addrs = frozenset(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in self.ipr.get_addr(index=idx, family=2))
        return DeviceState(name, kind, vni, port, local, under, link.get_attr("IFLA_MTU"),
                           link.get_attr("IFLA_ADDRESS"), bool(link["flags"] & 1), addrs)

    def create_vxlan(self, spec: DeviceSpec) -> None:
        under = self._need(spec.underlay_device)
        self.ipr.link("add", ifname=spec.name, kind="vxlan", vxlan_id=spec.vni, vxlan_port=spec.port,
                      vxlan_local=spec.local_ip, vxlan_learning=0, vxlan_link=under)

    def delete_link(self, name: str) -> None:
        idx = self._index(name)
        if idx is not None:
            self.ipr.link("del", index=idx)

    def configure(self, spec: DeviceSpec) -> None:
        idx = self._need(spec.name)
        self.ipr.link("set", index=idx, mtu=spec.mtu)
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in self.ipr.get_addr(index=idx, family=2)}
        if (spec.address, 32) not in have:
            self.ipr.addr("add", index=idx, address=spec.address, prefixlen=32)
        self.ipr.link("set", index=idx, state="up")
        if not spec.tx_checksum_offload:
            self._tx_checksum_off(spec.name)

    def _tx_checksum_off(self, name: str) -> None:
        # See OverlayConfig.tx_checksum_offload. The name is ours (from the config).
        cmd = ["ethtool", "-K", name, "tx-checksum-ip-generic", "off"]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        subprocess.run(cmd, check=True, capture_output=True)

    def link_mtu(self, name: str) -> int:
        return self.ipr.link("get", index=self._need(name))[0].get_attr("IFLA_MTU")

    def neighbours(self, device: str) -> set[Neighbour]:
        idx = self._index(device)
        if idx is None:
            return set()
        return {Neighbour(n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR"))
                for n in self.ipr.neigh("dump", ifindex=idx, family=2)
                if n["state"] & NUD_PERMANENT and n.get_attr("NDA_LLADDR")}

    def add_neighbour(self, device: str, n: Neighbour) -> None:
        self.ipr.neigh("replace", dst=n.ip, lladdr=n.mac, ifindex=self._need(device), state=NUD_PERMANENT)

    def del_neighbour(self, device: str, n: Neighbour) -> None:
        self.ipr.neigh("del", dst=n.ip, lladdr=n.mac, ifindex=self._need(device))

    def fdbs(self, device: str) -> set[Fdb]:
        idx = self._index(device)
        if idx is None:
            return set()
        return {Fdb(f.get_attr("NDA_LLADDR"), f.get_attr("NDA_DST"))
                for f in self.ipr.fdb("dump", ifindex=idx)
                if f["state"] & NUD_PERMANENT and f.get_attr("NDA_DST") and f.get_attr("NDA_LLADDR") != "00:00:00:00:00:00"}

    def add_fdb(self, device: str, f: Fdb) -> None:
        self.ipr.fdb("append", ifindex=self._need(device), lladdr=f.mac, dst=f.dst, state=NUD_PERMANENT)

    def del_fdb(self, device: str, f: Fdb) -> None:
        self.ipr.fdb("del", ifindex=self._need(device), lladdr=f.mac, dst=f.dst)

    def routes(self) -> set[Route]:
        out = set()
        for r in self.ipr.route("dump", family=2, proto=RTPROT_NODEAGENT):
            if r["proto"] != RTPROT_NODEAGENT:
                continue
            oif = r.get_attr("RTA_OIF")
            dev = self.ipr.link("get", index=oif)[0].get_attr("IFLA_IFNAME") if oif else ""
            out.add(Route(f"{r.get_attr('RTA_DST')}/{r['dst_len']}", r.get_attr("RTA_GATEWAY"), dev,
                          bool(r["flags"] & RTNH_F_ONLINK)))
        return out

    def add_route(self, r: Route) -> None:
        self.ipr.route("replace", dst=r.dst, gateway=r.gateway, oif=self._need(r.device),
                       flags=RTNH_F_ONLINK if r.onlink else 0, proto=RTPROT_NODEAGENT)

    def del_route(self, r: Route) -> None:
        self.ipr.route("del", dst=r.dst, gateway=r.gateway, oif=self._need(r.device), proto=RTPROT_NODEAGENT)
