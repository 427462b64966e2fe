"""A small rtnetlink client on the standard library: links, addresses, routes.

Only what the plugin needs, in the kernel's own terms (see rtnetlink(7) and
include/uapi/linux/{rtnetlink,if_link,if_addr,netlink}.h). pyroute2 would cost ~150 ms of import
on every pod start; this module imports only C modules (`_socket`, `_struct`) and is ~0.2 ms.

A `Netlink` object is one NETLINK_ROUTE socket, and a netlink socket works in the network
namespace in which it was created, whichever thread later uses it. So the plugin opens one socket
in the node's namespace, and one inside the pod's namespace (see netns.py), and never has to
switch a long-lived thread between namespaces.

Errors are `NetlinkError(errno, message)`; the kernel's extended ACK text (NETLINK_EXT_ACK) is in
the message where the kernel gives one ("Invalid MTU", ...), so errors tell what to fix.
"""
from __future__ import annotations

import errno as _errno
import os

import _socket
from _struct import Struct, pack, unpack_from

# netlink.h
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG = 1
NLA_F_NESTED = 0x8000
SOL_NETLINK, NETLINK_EXT_ACK = 270, 11
# rtnetlink.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
RTN_UNICAST = 1
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_METRICS, RTA_TABLE = 1, 4, 5, 6, 8, 15
RTAX_MTU, RTAX_ADVMSS = 2, 8
# if_link.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_PROTINFO, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_NET_NS_FD = 12, 16, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE = 4  # hairpin
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
IFF_UP = 0x1
AF_UNSPEC, AF_INET, AF_BRIDGE = 0, 2, 7
OPERSTATES = {0: "unknown", 1: "notpresent", 2: "down", 3: "lowerlayerdown", 4: "testing",
              5: "dormant", 6: "up"}

_NLMSGHDR = Struct("=IHHII")        # len, type, flags, seq, pid
_IFINFOMSG = Struct("=BxHiII")      # family, type, index, flags, change
_IFADDRMSG = Struct("=BBBBi")       # family, prefixlen, flags, scope, index
_RTMSG = Struct("=BBBBBBBBI")       # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NLATTR = Struct("=HH")


class NetlinkError(OSError):
    """A request the kernel refused: .errno is the kernel's errno, .kernel_msg its text."""

    def __init__(self, err: int, what: str, kernel_msg: str = ""):
        text = f"{what}: {os.strerror(err)}"
        if kernel_msg:
            text += f" ({kernel_msg})"
        super().__init__(err, text)
        self.kernel_msg = kernel_msg

    def __str__(self):
        return self.strerror


# -- attribute encoding --------------------------------------------------------------------------
def _pad(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _NLATTR.pack(n, kind) + data + b"\0" * (_pad(n) - n)


def attr_u8(kind, v):
    return attr(kind, pack("=B", v))


def attr_u32(kind, v):
    return attr(kind, pack("=I", v))


def attr_str(kind, s: str):
    return attr(kind, s.encode() + b"\0")


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def parse_attrs(data: bytes, offset: int = 0, end: int | None = None) -> dict[int, bytes]:
    out = {}
    end = len(data) if end is None else end
    while offset + 4 <= end:
        n, kind = _NLATTR.unpack_from(data, offset)
        if n < 4:
            break
        out[kind & ~NLA_F_NESTED & 0x7FFF] = data[offset + 4:offset + n]
        offset += _pad(n)
    return out


def _str(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode()


def _u32(b: bytes) -> int:
    return unpack_from("=I", b)[0]


def ip4(ip: int) -> bytes:
    return ip.to_bytes(4, "big")


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def mac_bytes(s: str) -> bytes:
    parts = s.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {s!r}")
    return bytes(int(p, 16) for p in parts)


def random_mac() -> bytes:
    """A random locally administered unicast MAC (what the kernel's eth_random_addr makes)."""
    b = bytearray(os.urandom(6))
    b[0] = (b[0] & 0xFE) | 0x02
    return bytes(b)


# -- decoded objects -----------------------------------------------------------------------------
class Link:
    __slots__ = ("index", "name", "flags", "mtu", "mac", "master", "peer_index", "kind", "operstate")

    def __init__(self, msg: bytes):
        _fam, _type, self.index, self.flags, _chg = _IFINFOMSG.unpack_from(msg, 0)
        a = parse_attrs(msg, _IFINFOMSG.size)
        self.name = _str(a.get(IFLA_IFNAME, b""))
        self.mtu = _u32(a[IFLA_MTU]) if IFLA_MTU in a else 0
        self.mac = mac_str(a[IFLA_ADDRESS]) if IFLA_ADDRESS in a else ""
        self.master = _u32(a[IFLA_MASTER]) if IFLA_MASTER in a else 0
        self.peer_index = _u32(a[IFLA_LINK]) if IFLA_LINK in a else 0
        self.operstate = OPERSTATES.get(a[IFLA_OPERSTATE][0], "unknown") if IFLA_OPERSTATE in a else "unknown"
        self.kind = ""
        if IFLA_LINKINFO in a:
            info = parse_attrs(a[IFLA_LINKINFO])
            self.kind = _str(info.get(IFLA_INFO_KIND, b""))

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)

    def __repr__(self):
        return f"Link({self.name!r}, index={self.index}, kind={self.kind!r}, mac={self.mac})"


class Addr:
    __slots__ = ("index", "family", "prefix", "address")

    def __init__(self, msg: bytes):
        self.family, self.prefix, _flags, _scope, self.index = _IFADDRMSG.unpack_from(msg, 0)
        a = parse_attrs(msg, _IFADDRMSG.size)
        raw = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS) or b""
        self.address = int.from_bytes(raw, "big") if self.family == AF_INET and raw else None


class Route:
    __slots__ = ("dst", "dst_len", "gateway", "oif", "table", "type", "scope")

    def __init__(self, msg: bytes):
        fam, self.dst_len, _s, _t, table, _p, self.scope, self.type, _f = _RTMSG.unpack_from(msg, 0)
        a = parse_attrs(msg, _RTMSG.size)
        self.table = _u32(a[RTA_TABLE]) if RTA_TABLE in a else table
        self.dst = int.from_bytes(a[RTA_DST], "big") if RTA_DST in a else 0
        self.gateway = int.from_bytes(a[RTA_GATEWAY], "big") if RTA_GATEWAY in a else None
        self.oif = _u32(a[RTA_OIF]) if RTA_OIF in a else 0


# -- the socket ----------------------------------------------------------------------------------
class Netlink:
    """One NETLINK_ROUTE socket, bound to the network namespace it was created in."""

    def __init__(self):
        self.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass
        self.seq = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, msg_type: int, flags: int, payload: bytes, what: str) -> list[bytes]:
        """Send one request; return the payloads of the answers (for a dump: all of them).
        Raises NetlinkError when the kernel refuses."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(payload), msg_type,
                                      flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + payload)
        out = []
        while True:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                n, mtype, mflags, mseq, _pid = _NLMSGHDR.unpack_from(data, off)
                body = data[off + _NLMSGHDR.size:off + n]
                off += _pad(n)
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    err = -unpack_from("=i", body)[0]
                    if err == 0:
                        return out
                    raise NetlinkError(err, what, self._ext_ack_msg(body, mflags))
                out.append(body)  # a dump ends with NLMSG_DONE, any other request with its ACK

    @staticmethod
    def _ext_ack_msg(body: bytes, flags: int) -> str:
        if not flags & NLM_F_ACK_TLVS:
            return ""
        # struct nlmsgerr: int error; struct nlmsghdr msg; [payload unless capped]; then TLVs
        off = 4 + _NLMSGHDR.size
        if not flags & NLM_F_CAPPED:
            off = 4 + _NLMSGHDR.unpack_from(body, 4)[0]
        tlvs = parse_attrs(body, _pad(off))
        return _str(tlvs[NLMSGERR_ATTR_MSG]) if NLMSGERR_ATTR_MSG in tlvs else ""

    # -- links ---------------------------------------------------------------------------------
    def link(self, name: str) -> Link | None:
        """The link called `name`, or None."""
        try:
            msgs = self.request(RTM_GETLINK, 0, _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0)
                                + attr_str(IFLA_IFNAME, name), f"get link {name}")
        except NetlinkError as e:
            if e.errno in (_errno.ENODEV, _errno.ENOENT):
                return None
            raise
        return Link(msgs[0]) if msgs else None

    def links(self) -> list[Link]:
        return [Link(m) for m in self.request(RTM_GETLINK, NLM_F_DUMP,
                                              _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0), "list links")]

    def create_bridge(self, name: str, mtu: int | None, mac: bytes | None):
        attrs = attr_str(IFLA_IFNAME, name)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        if mac:
            # an explicit address stops the bridge from taking its lowest port's MAC, which
            # would change under the pods' ARP caches as ports come and go
            attrs += attr(IFLA_ADDRESS, mac)
        attrs += nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "bridge"))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     _IFINFOMSG.pack(AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + attrs, f"create bridge {name}")

    def create_veth(self, name: str, peer_name: str, peer_netns_fd: int, mtu: int | None = None,
                    master: int = 0, peer_mac: bytes | None = None, up: bool = True):
        """A veth pair: `name` here (on bridge `master`), `peer_name` in the namespace of
        `peer_netns_fd`: one request, no namespace switch."""
        peer = attr_str(IFLA_IFNAME, peer_name) + attr_u32(IFLA_NET_NS_FD, peer_netns_fd)
        if mtu:
            peer += attr_u32(IFLA_MTU, mtu)
        if peer_mac:
            peer += attr(IFLA_ADDRESS, peer_mac)
        attrs = attr_str(IFLA_IFNAME, name)
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        if master:
            attrs += attr_u32(IFLA_MASTER, master)
        attrs += nested(IFLA_LINKINFO, attr_str(IFLA_INFO_KIND, "veth"),
                        nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER,
                                                      _IFINFOMSG.pack(AF_UNSPEC, 0, 0, 0, 0) + peer)))
        flags = IFF_UP if up else 0
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                     _IFINFOMSG.pack(AF_UNSPEC, 0, 0, flags, IFF_UP) + attrs,
                     f"create veth {name} (peer {peer_name})")

    def set_link(self, index: int, up: bool | None = None, mtu: int | None = None,
                 mac: bytes | None = None, master: int | None = None, what: str = ""):
        attrs = b""
        if mtu:
            attrs += attr_u32(IFLA_MTU, mtu)
        if mac:
            attrs += attr(IFLA_ADDRESS, mac)
        if master is not None:
            attrs += attr_u32(IFLA_MASTER, master)
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        self.request(RTM_NEWLINK, 0, _IFINFOMSG.pack(AF_UNSPEC, 0, index, flags, change) + attrs,
                     what or f"set link {index}")

    def set_hairpin(self, index: int, on: bool):
        """Hairpin mode on a bridge port (IFLA_BRPORT_MODE through PF_BRIDGE, as `bridge link
        set dev X hairpin on` does): a pod can reach itself through a service VIP."""
        self.request(RTM_SETLINK, 0, _IFINFOMSG.pack(AF_BRIDGE, 0, index, 0, 0)
                     + nested(IFLA_PROTINFO, attr_u8(IFLA_BRPORT_MODE, 1 if on else 0)),
                     f"set hairpin on link {index}")

    def hairpin(self, index: int) -> bool | None:
        for m in self.request(RTM_GETLINK, NLM_F_DUMP, _IFINFOMSG.pack(AF_BRIDGE, 0, 0, 0, 0), "list bridge ports"):
            _f, _t, idx, _fl, _c = _IFINFOMSG.unpack_from(m, 0)
            if idx == index:
                a = parse_attrs(m, _IFINFOMSG.size)
                if IFLA_PROTINFO in a:
                    p = parse_attrs(a[IFLA_PROTINFO])
                    if IFLA_BRPORT_MODE in p:
                        return bool(p[IFLA_BRPORT_MODE][0])
        return None

    def delete_link(self, index: int = 0, name: str = "") -> bool:
        """Delete a link; False when it does not exist."""
        payload = _IFINFOMSG.pack(AF_UNSPEC, 0, index, 0, 0)
        if name:
            payload += attr_str(IFLA_IFNAME, name)
        try:
            self.request(RTM_DELLINK, 0, payload, f"delete link {name or index}")
        except NetlinkError as e:
            if e.errno in (_errno.ENODEV, _errno.ENOENT):
                return False
            raise
        return True

    # -- addresses -------------------------------------------------------------------------------
    def add_address(self, index: int, ip: int, prefix: int, exist_ok: bool = False):
        bcast = ip | ((1 << (32 - prefix)) - 1) if prefix < 31 else None
        attrs = attr(IFA_LOCAL, ip4(ip)) + attr(IFA_ADDRESS, ip4(ip))
        if bcast is not None:
            attrs += attr(IFA_BROADCAST, ip4(bcast))
        try:
            self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
                         _IFADDRMSG.pack(AF_INET, prefix, 0, RT_SCOPE_UNIVERSE, index) + attrs,
                         f"add address to link {index}")
        except NetlinkError as e:
            if not (exist_ok and e.errno == _errno.EEXIST):
                raise

    def addresses(self, index: int = 0) -> list[Addr]:
        out = [Addr(m) for m in self.request(RTM_GETADDR, NLM_F_DUMP,
                                             _IFADDRMSG.pack(AF_INET, 0, 0, 0, 0), "list addresses")]
        return [a for a in out if a.family == AF_INET and (not index or a.index == index)]

    # -- routes ----------------------------------------------------------------------------------
    def add_route(self, dst: int, dst_len: int, gateway: int | None, oif: int,
                  mtu: int = 0, advmss: int = 0, priority: int = 0, table: int = RT_TABLE_MAIN,
                  scope: int | None = None):
        if scope is None:
            scope = RT_SCOPE_UNIVERSE if gateway is not None else RT_SCOPE_LINK
        attrs = attr_u32(RTA_TABLE, table) + attr_u32(RTA_OIF, oif)
        if dst_len:
            attrs += attr(RTA_DST, ip4(dst))
        if gateway is not None:
            attrs += attr(RTA_GATEWAY, ip4(gateway))
        if priority:
            attrs += attr_u32(RTA_PRIORITY, priority)
        metrics = b""
        if mtu:
            metrics += attr_u32(RTAX_MTU, mtu)
        if advmss:
            metrics += attr_u32(RTAX_ADVMSS, advmss)
        if metrics:
            attrs += attr(RTA_METRICS, metrics)
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL,
                     _RTMSG.pack(AF_INET, dst_len, 0, 0, table if table < 256 else 0, RTPROT_BOOT,
                                 scope, RTN_UNICAST, 0) + attrs,
                     f"add route {'.'.join(map(str, ip4(dst)))}/{dst_len}")

    def routes(self, table: int = RT_TABLE_MAIN) -> list[Route]:
        out = [Route(m) for m in self.request(RTM_GETROUTE, NLM_F_DUMP,
                                              _RTMSG.pack(AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), "list routes")]
        return [r for r in out if table is None or r.table == table]


def write_sysctl(path: str, value: str, only_if_different: bool = True) -> bool:
    """Write /proc/sys/<path> in the calling thread's network namespace (net sysctls are
    resolved per namespace when the file is opened). False when the file does not exist."""
    full = "/proc/sys/" + path
    try:
        if only_if_different:
            with open(full) as f:
                if f.read().strip() == value:
                    return True
        with open(full, "w") as f:
            f.write(value)
        return True
    except FileNotFoundError:
        return False
