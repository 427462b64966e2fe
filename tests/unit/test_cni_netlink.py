"""Netlink message encoding and decoding, without a socket."""
import struct

from cni import netlink as nl


def test_attr_padding_and_nesting():
    a = nl.attr_str(nl.IFLA_IFNAME, "eth0")
    assert a == struct.pack("=HH", 9, nl.IFLA_IFNAME) + b"eth0\0" + b"\0\0\0"
    n = nl.nested(nl.IFLA_LINKINFO, nl.attr_str(nl.IFLA_INFO_KIND, "veth"))
    length, kind = struct.unpack_from("=HH", n)
    assert kind == nl.IFLA_LINKINFO | nl.NLA_F_NESTED and length == len(n)
    parsed = nl.parse_attrs(n)
    assert nl.parse_attrs(parsed[nl.IFLA_LINKINFO]) == {nl.IFLA_INFO_KIND: b"veth\0"}


def test_link_decoding():
    body = (nl._IFINFOMSG.pack(0, 1, 7, nl.IFF_UP, 0) + nl.attr_str(nl.IFLA_IFNAME, "veth1")
            + nl.attr_u32(nl.IFLA_MTU, 1450) + nl.attr(nl.IFLA_ADDRESS, bytes.fromhex("0a0b0c0d0e0f"))
            + nl.attr_u32(nl.IFLA_MASTER, 3) + nl.attr_u32(nl.IFLA_LINK, 2)
            + nl.attr_u8(nl.IFLA_OPERSTATE, 6)
            + nl.nested(nl.IFLA_LINKINFO, nl.attr_str(nl.IFLA_INFO_KIND, "veth")))
    link = nl.Link(body)
    assert (link.index, link.name, link.mtu, link.mac, link.master, link.peer_index, link.kind, link.up,
            link.operstate) == (7, "veth1", 1450, "0a:0b:0c:0d:0e:0f", 3, 2, "veth", True, "up")


def test_route_and_address_decoding():
    r = nl.Route(nl._RTMSG.pack(nl.AF_INET, 0, 0, 0, 254, 3, 0, 1, 0) + nl.attr(nl.RTA_GATEWAY, bytes([10, 0, 0, 1]))
                 + nl.attr_u32(nl.RTA_OIF, 4) + nl.attr_u32(nl.RTA_TABLE, 254))
    assert (r.dst, r.dst_len, r.gateway, r.oif, r.table) == (0, 0, 0x0A000001, 4, 254)
    a = nl.Addr(nl._IFADDRMSG.pack(nl.AF_INET, 24, 0, 0, 4) + nl.attr(nl.IFA_LOCAL, bytes([10, 0, 0, 2])))
    assert (a.address, a.prefix, a.index) == (0x0A000002, 24, 4)


def test_extended_ack_message_is_read():
    # struct nlmsgerr (error, capped original header) followed by NLMSGERR_ATTR_MSG
    body = struct.pack("=i", -22) + nl._NLMSGHDR.pack(32, 16, 5, 1, 0) + nl.attr_str(nl.NLMSGERR_ATTR_MSG, "Invalid MTU")
    assert nl.Netlink._ext_ack_msg(body, nl.NLM_F_CAPPED | nl.NLM_F_ACK_TLVS) == "Invalid MTU"
    assert nl.Netlink._ext_ack_msg(body, 0) == ""
    e = nl.NetlinkError(22, "create veth", "Invalid MTU")
    assert e.errno == 22 and "Invalid argument" in str(e) and "Invalid MTU" in str(e)


def test_macs():
    assert nl.mac_str(nl.mac_bytes("02:00:0A:0b:0c:0d")) == "02:00:0a:0b:0c:0d"
    m = nl.random_mac()
    assert len(m) == 6 and m[0] & 0x02 and not m[0] & 0x01
