"""What the proxy kernel tests of both modes share: crafted packets (scapy, raw sockets in the
lab's namespaces: what a SYN to a VIP gets back, where an SCTP INIT arrives), and the tests that
read the same whichever proxier drives the kernel. Each mode's test file imports those tests,
and pytest runs them there with that file's `lab` and `proxy` fixtures (`proxy.apply(*objects)`
syncs them)."""
import socket
import time

from nodeagent.proxy.netns import socket_in
from nodeagent.proxy.testing import Lab, endpoint_slice, service


def syn_answer(lab: Lab, vip: str, port: int, sport: int = 40123) -> str | None:
    """The TCP flags of the answer to a lone SYN from the client (None: no answer in 2 s)."""
    from scapy.layers.inet import IP, TCP
    raw = socket_in(lab.client, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    raw.settimeout(2)
    try:
        raw.sendto(bytes(IP(src=Lab.CLIENT_IP, dst=vip) / TCP(sport=sport, dport=port, flags="S", seq=1000)), (vip, 0))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            pkt = IP(raw.recv(4096))
            if TCP in pkt and pkt[TCP].dport == sport and pkt.src == vip:
                return str(pkt[TCP].flags)
    except socket.timeout:
        pass
    finally:
        raw.close()
    return None


def sctp_init_arrival(lab: Lab, vip: str, port: int, pod_ns: str) -> tuple[str, str, int]:
    """Send an SCTP INIT from the client to vip:port; (source, destination, port) as it arrives in
    pod_ns. This kernel has SCTP conntrack and NAT but no SCTP sockets (no sctp module), so the
    pod listens with a raw socket."""
    from scapy.layers.inet import IP
    from scapy.layers.sctp import SCTP, SCTPChunkInit
    rx = socket_in(pod_ns, socket.AF_INET, socket.SOCK_RAW, 132)
    rx.settimeout(3)
    tx = socket_in(lab.client, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        pkt = IP(src=Lab.CLIENT_IP, dst=vip) / SCTP(sport=5000, dport=port, tag=0) / SCTPChunkInit(
            init_tag=7, a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
        tx.sendto(bytes(pkt), (vip, 0))
        p = IP(rx.recv(4096))
        return p.src, p.dst, p[SCTP].dport
    finally:
        rx.close()
        tx.close()


VIP = "10.96.0.10"


def test_scapy_syn_to_vip_without_endpoints_gets_a_reset(lab, proxy):
    proxy.apply(service("web", VIP, [("http", 80)]))
    assert "R" in (syn_answer(lab, VIP, 80) or "")


def test_sctp_init_is_dnated_to_an_endpoint(lab, proxy):
    proxy.apply(service("sig", VIP, [("sig", 3868, "SCTP")]),
                endpoint_slice("sig-1", "sig", [lab.pod_ip(1)], [("sig", 3869, "SCTP")]))
    src, dst, dport = sctp_init_arrival(lab, VIP, 3868, lab.pods[0])
    assert dst == lab.pod_ip(1) and dport == 3869 and src != Lab.CLIENT_IP   # DNAT + masquerade


def test_udp_flow_moves_off_a_removed_endpoint(lab, proxy):
    for ns in lab.pods:
        lab.serve(ns, 8080, "udp")
    proxy.apply(service("dns", VIP, [("dns", 53, "UDP")]),
                endpoint_slice("dns-1", "dns", [lab.pod_ip(1), lab.pod_ip(2)], [("dns", 8080, "UDP")]))
    sock = lab.udp_socket(lab.client, 41000)   # one flow: same source port throughout
    first = lab.udp(lab.client, VIP, 53, sock=sock).split()[0]
    assert all(lab.udp(lab.client, VIP, 53, sock=sock).split()[0] == first for _ in range(5))
    remaining = 2 if first == lab.pods[0] else 1
    proxy.apply(endpoint_slice("dns-1", "dns", [lab.pod_ip(remaining)], [("dns", 8080, "UDP")]), etype="MODIFIED")
    # without the conntrack cleanup this flow would keep going to the removed endpoint
    assert lab.udp(lab.client, VIP, 53, sock=sock, timeout=2).split()[0] == lab.pods[remaining - 1]
