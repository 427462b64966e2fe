"""A packet tracer for the iptables rules we render (kube-proxy's iptables/proxier_test.go tracer, in
spirit; the same idea as nft/tracer.py).

It follows one new connection through the built-in chains in the kernel's order (nat PREROUTING,
routing, filter INPUT or FORWARD, nat POSTROUTING; or nat OUTPUT, filter OUTPUT, nat POSTROUTING,
filter INPUT when the destination is local) and reports every outcome: ACCEPT with the endpoint it
was DNATed to (or none: no match), REJECT (and how), DROP; whether it was masqueraded, the mark
it left with, and the probability of the branch. `statistic` rules fork the walk, so a result
lists every endpoint a connection may reach with its share (`Trace.spread`); `pick=i` takes the
i-th `statistic` rule of each chain instead (the last, unconditional one when there are fewer).
`recent` lists are read from the fake, and written by `--set` when `record=True` (with `pick`).

The grammar is exactly the rule fragments the renderer produces. `parse_rule` raises ValueError
on anything else, and the fake parses every rule with it when the rule is added: a fragment the
tracer does not know fails the test.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, replace
from functools import lru_cache

from ..traceresult import Outcome, Trace

PROTOS = ("tcp", "udp", "sctp")
BUILTIN_TARGETS = ("ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "MARK", "MASQUERADE")
_CHAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,27}$")
_HEX = re.compile(r"^0x[0-9a-f]{1,8}$")


@dataclass(frozen=True)
class Match:
    op: str
    args: tuple = ()


@dataclass(frozen=True)
class Target:
    kind: str                 # a built-in target name, or "jump"
    args: tuple = ()


@dataclass(frozen=True)
class Rule:
    matches: tuple[Match, ...]
    target: Target | None


def _unknown(rest, text):
    raise ValueError(f"rule fragment the tracer does not know: {' '.join(rest)!r} (in {text!r})")


def _int(v: str, lo: int, hi: int, text: str) -> int:
    if not v.isdigit() or not lo <= int(v) <= hi:
        raise ValueError(f"{v!r} is not a number in {lo}-{hi} (in {text!r})")
    return int(v)


@lru_cache(maxsize=65536)
def parse_rule(text: str) -> Rule:
    """The rule spec after `-A CHAIN`, as the renderer writes it (or as iptables-save prints the
    jump rules)."""
    toks = shlex.split(text)
    i, proto = 0, None
    matches: list[Match] = []
    target = None

    def need(n):
        if i + n > len(toks):
            raise ValueError(f"rule ends too early: {text!r}")
        return toks[i:i + n]

    while i < len(toks):
        if target is not None:
            _unknown(toks[i:], text)
        neg = toks[i] == "!"
        if neg:
            i += 1
        t = need(1)[0]
        if t in ("-s", "-d"):
            matches.append(Match("addr", ("src" if t == "-s" else "dst", neg, ipaddress.IPv4Network(need(2)[1]))))
            i += 2
            continue
        if neg:
            _unknown(toks[i - 1:], text)
        if t == "-p":
            proto = need(2)[1]
            if proto not in PROTOS:
                _unknown(toks[i:], text)
            matches.append(Match("proto", (proto,)))
            i += 2
        elif t == "-m":
            mod = need(2)[1]
            i += 2
            opts = toks[i:]
            if mod in PROTOS:
                if proto != mod:
                    raise ValueError(f"-m {mod} without -p {mod} (in {text!r})")
                if opts[:1] == ["--dport"]:
                    matches.append(Match("dport", (_int(need(2)[1], 1, 65535, text),)))
                    i += 2
            elif mod == "comment" and opts[:1] == ["--comment"] and len(opts) > 1:
                i += 2
            elif mod == "addrtype" and len(opts) > 1 and opts[0] in ("--src-type", "--dst-type") and opts[1] == "LOCAL":
                matches.append(Match("local", ("src" if opts[0] == "--src-type" else "dst",)))
                i += 2
            elif mod == "conntrack" and opts[:2] == ["--ctstate", "NEW"]:
                matches.append(Match("ct_new"))
                i += 2
            elif mod == "mark":
                mneg = opts[:1] == ["!"]
                o = opts[1:] if mneg else opts
                if o[:1] != ["--mark"] or len(o) < 2 or not re.match(r"^0x[0-9a-f]+/0x[0-9a-f]+$", o[1]):
                    _unknown(opts, text)
                v, m = (int(x, 16) for x in o[1].split("/"))
                matches.append(Match("mark", (mneg, v, m)))
                i += 3 if mneg else 2
            elif mod == "statistic" and opts[:3] == ["--mode", "random", "--probability"] and len(opts) > 3:
                p = float(opts[3])
                if not 0 < p < 1:
                    raise ValueError(f"probability {opts[3]} (in {text!r})")
                matches.append(Match("statistic", (p,)))
                i += 4
            elif mod == "recent":
                mode, name, seconds, reap, mask, rsource = None, None, None, False, False, False
                while i < len(toks):
                    o = toks[i]
                    if o in ("--rcheck", "--set") and mode is None:
                        mode, i = o[2:], i + 1
                    elif o == "--seconds" and seconds is None:
                        seconds, i = _int(need(2)[1], 1, 10 ** 7, text), i + 2
                    elif o == "--name" and name is None:
                        name, i = need(2)[1], i + 2
                        if not _CHAIN.match(name):
                            raise ValueError(f"recent list name {name!r}")
                    elif o == "--reap" and not reap:
                        reap, i = True, i + 1
                    elif o == "--mask" and not mask and need(2)[1] == "255.255.255.255":
                        mask, i = True, i + 2
                    elif o == "--rsource" and not rsource:
                        rsource, i = True, i + 1
                    else:
                        break
                if mode is None or name is None or not rsource or (mode == "rcheck") != (seconds is not None) \
                        or (mode == "set" and reap):
                    raise ValueError(f"recent match the tracer does not know (in {text!r})")
                matches.append(Match("recent_" + mode, (name, seconds)))
            else:
                _unknown(["-m", mod] + opts, text)
        elif t == "-j":
            name = need(2)[1]
            i += 2
            opts = toks[i:]
            if name == "DNAT":
                if opts[:1] != ["--to-destination"] or len(opts) < 2 or proto is None:
                    _unknown(["-j", name] + opts, text)
                ip, _, port = opts[1].rpartition(":")
                target = Target("DNAT", (str(ipaddress.IPv4Address(ip)), _int(port, 1, 65535, text)))
                i += 2
            elif name == "REJECT":
                how = "icmp port-unreachable"
                if opts[:1] == ["--reject-with"]:
                    if opts[1:2] == ["tcp-reset"] and proto == "tcp":
                        how = "tcp reset"
                    elif opts[1:2] != ["icmp-port-unreachable"]:
                        _unknown(opts, text)
                    i += 2
                target = Target("REJECT", (how,))
            elif name == "MARK":
                if len(opts) < 2 or opts[0] not in ("--or-mark", "--xor-mark", "--set-xmark"):
                    _unknown(["-j", name] + opts, text)
                if opts[0] == "--set-xmark":
                    v, m = (int(x, 16) for x in opts[1].split("/"))
                    target = Target("MARK", ("set-xmark", v, m))
                else:
                    if not _HEX.match(opts[1]):
                        _unknown(opts, text)
                    target = Target("MARK", (opts[0][2:-5], int(opts[1], 16)))
                i += 2
            elif name == "MASQUERADE":
                if opts[:1] == ["--random-fully"]:
                    i += 1
                target = Target("MASQUERADE")
            elif name in ("ACCEPT", "DROP", "RETURN"):
                target = Target(name)
            elif _CHAIN.match(name) and name not in BUILTIN_TARGETS:
                target = Target("jump", (name,))
            else:
                _unknown(["-j", name] + opts, text)
        else:
            _unknown(toks[i:], text)
    return Rule(tuple(matches), target)


# -- packets and results -------------------------------------------------------------------------
@dataclass
class Ctx:
    src: str
    dst: str
    proto: str
    dport: int
    mark: int = 0
    dnat: bool = False
    masquerade: bool = False


class Tracer:
    """Trace packets through the state of a FakeIptables."""

    def __init__(self, fake, local_addresses=("127.0.0.1",)):
        self.fake = fake
        self.local = {ipaddress.IPv4Address(a) for a in local_addresses}

    def is_local(self, ip: str) -> bool:
        return ipaddress.IPv4Address(ip) in self.local

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp", *, local: bool = False,
              pick: int | None = None, record: bool = False) -> Trace:
        """A new connection from src to dst:dport. `local`: generated on the node itself (output
        path) rather than arriving on an interface (prerouting path)."""
        if record and pick is None:
            raise ValueError("record=True needs pick: it would record every branch")
        ctx = Ctx(src, dst, proto, int(dport))
        first = [("nat", "OUTPUT"), ("filter", "OUTPUT"), ("nat", "POSTROUTING")] if local else [("nat", "PREROUTING")]
        return Trace(list(self._stages(first, ctx, 1.0, local, pick, record, routed=local)))

    def _stages(self, stages, ctx, prob, local, pick, record, routed):
        if not stages:
            if not routed:   # arriving packet: routing decision after nat PREROUTING
                nxt = [("filter", "INPUT")] if self.is_local(ctx.dst) else [("filter", "FORWARD"), ("nat", "POSTROUTING")]
                yield from self._stages(nxt, ctx, prob, local, pick, record, True)
                return
            if local and self.is_local(ctx.dst) and routed != "input":   # looped back to ourselves
                yield from self._stages([("filter", "INPUT")], ctx, prob, local, pick, record, "input")
                return
            yield Outcome("ACCEPT", f"{ctx.dst}:{ctx.dport}" if ctx.dnat else None, ctx.masquerade, "", prob, ctx.mark)
            return
        (table, chain), rest = stages[0], stages[1:]
        if table == "nat" and chain in ("PREROUTING", "OUTPUT") and ctx.dnat:
            yield from self._stages(rest, ctx, prob, local, pick, record, routed)
            return
        for verdict, c, p, how in self._run(table, [[chain, 0, 0]], ctx, prob, pick, record):
            if verdict == "ACCEPT":
                yield from self._stages(rest, c, p, local, pick, record, routed)
            else:
                yield Outcome(verdict, None, False, how, p, c.mark)

    def _run(self, table, stack, ctx, prob, pick, record):
        """Run from the top frame [chain, next rule, statistic rules seen]; yields (verdict, ctx,
        probability, reject kind) per branch."""
        chains = self.fake.tables[table]
        while True:
            frame = stack[-1]
            chain = chains[frame[0]]
            if frame[1] >= len(chain.rules):
                if len(stack) == 1:
                    yield (chain.policy, ctx, prob, "")
                    return
                stack.pop()
                continue
            rule = parse_rule(chain.rules[frame[1]])
            frame[1] += 1
            p = self._match(rule, ctx, frame, pick)
            if p == 0:
                continue
            if p < 1:   # statistic: the branch that does not match goes on with the next rule
                yield from self._run(table, [list(f) for f in stack], replace(ctx), prob * (1 - p), pick, record)
                prob *= p
            if record:
                for m in rule.matches:
                    if m.op == "recent_set":
                        self.fake.recent_set(m.args[0], ctx.src)
            t = rule.target
            if t is None:
                continue
            if t.kind == "jump":
                stack.append([t.args[0], 0, 0])
            elif t.kind == "RETURN":
                if len(stack) == 1:
                    yield (chain.policy, ctx, prob, "")
                    return
                stack.pop()
            elif t.kind == "MARK":
                if t.args[0] == "or":
                    ctx.mark |= t.args[1]
                elif t.args[0] == "xor":
                    ctx.mark ^= t.args[1]
                else:
                    ctx.mark = (ctx.mark & ~t.args[2]) ^ t.args[1]
            elif t.kind == "DNAT":
                ctx = replace(ctx, dst=t.args[0], dport=t.args[1], dnat=True)
                yield ("ACCEPT", ctx, prob, "")
                return
            elif t.kind == "MASQUERADE":
                yield ("ACCEPT", replace(ctx, masquerade=True), prob, "")
                return
            elif t.kind == "REJECT":
                yield ("REJECT", ctx, prob, t.args[0])
                return
            else:   # ACCEPT, DROP
                yield (t.kind, ctx, prob, "")
                return

    def _match(self, rule: Rule, ctx: Ctx, frame, pick) -> float:
        p = 1.0
        for m in rule.matches:
            op, a = m.op, m.args
            if op == "addr":
                inside = ipaddress.IPv4Address(ctx.src if a[0] == "src" else ctx.dst) in a[2]
                if inside == a[1]:
                    return 0
            elif op == "proto":
                if ctx.proto != a[0]:
                    return 0
            elif op == "dport":
                if ctx.dport != a[0]:
                    return 0
            elif op == "local":
                if not self.is_local(ctx.src if a[0] == "src" else ctx.dst):
                    return 0
            elif op == "ct_new":
                pass   # every traced packet opens a connection
            elif op == "mark":
                if ((ctx.mark & a[2]) == a[1]) == a[0]:
                    return 0
            elif op == "statistic":
                if pick is None:
                    p *= a[0]
                else:
                    frame[2] += 1
                    if frame[2] - 1 != pick:
                        return 0
            elif op == "recent_rcheck":
                if not self.fake.recent_check(a[0], ctx.src, a[1]):
                    return 0
            elif op == "recent_set":
                pass   # always matches; recorded by the caller when the whole rule matched
            else:  # pragma: no cover - parse_rule makes only these
                raise ValueError(f"unknown match {op}")
        return p
