"""The flow tracer's pure parts: the iptables rules it writes, and pairing what the two queues
see into one line per connection (with retransmits and rejects)."""
from __future__ import annotations

import io

import pytest
from scapy.layers.inet import IP, TCP

from nodeagent.trace import NODE_PORT, POST, PRE, Tracer, rules


def test_rules_queue_before_and_after_dnat_with_bypass():
    r = rules([("10.96.0.10", "tcp", 80), (NODE_PORT, "udp", 30053)], 4200)
    assert len(r) == 4
    pre, post = r[0], r[1]
    assert pre[:4] == ["-t", "mangle", "-A", PRE] and "10.96.0.10" in pre and pre[-3:] == ["--queue-num", "4200", "--queue-bypass"]
    assert post[:4] == ["-t", "filter", "-A", POST] and "--ctorigdst" in post and "4201" in post
    np_pre = r[2]
    assert "--dst-type" in np_pre and "LOCAL" in np_pre and "30053" in np_pre


@pytest.mark.parametrize("bad", [[("10.96.0.300", "tcp", 80)], [("10.96.0.1; rm -rf /", "tcp", 80)],
                                 [("10.96.0.1", "icmp", 80)], [("10.96.0.1", "tcp", 70000)], []])
def test_bad_targets_are_refused(bad):
    with pytest.raises(ValueError):
        rules(bad, 4200)


def syn(src, sport, dst, dport) -> bytes:
    return bytes(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S"))


def test_pairing_retransmits_and_rejects():
    out = io.StringIO()
    t = Tracer({"10.96.0.10:80": "(default/web)", "10.244.1.5": "(pod default/web-1 on n2)"}, "n1", out, wait_for_dnat=0)
    t.before(syn("10.244.0.7", 40000, "10.96.0.10", 80))
    t.after(syn("10.244.0.7", 40000, "10.244.1.5", 8080), mark=0)
    t.before(syn("10.244.0.7", 40000, "10.96.0.10", 80))      # a retransmitted SYN
    t.after(syn("10.244.0.7", 40000, "10.244.1.5", 8080), mark=0)
    t.before(syn("192.168.1.9", 5555, "10.96.0.10", 80))
    t.after(syn("192.168.1.9", 5555, "10.244.1.5", 8080), mark=0x4000)
    t.before(syn("10.244.0.7", 40001, "10.96.0.99", 80))      # never DNATed: rejected
    t.expire()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert "10.244.0.7:40000 -> 10.96.0.10:80 (default/web) => 10.244.1.5:8080 (pod default/web-1 on n2) [DNAT]" in lines[0]
    assert lines[1].endswith("[DNAT+masquerade]")
    assert "10.96.0.99:80" in lines[2] and lines[2].endswith("[REJECT (no usable endpoint)]")
