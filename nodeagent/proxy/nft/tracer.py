"""A packet tracer for the nftables rules we render (kube-proxy's nftables/helpers_test.go idea).

It follows one packet through the base chains of our table in hook and priority order, rule by
rule, fragment by fragment, and reports what the kernel would do: accept, reject (and how), drop;
which endpoints it may be DNATed to; whether it is masqueraded. `numgen random` is explored in
every branch (or one chosen branch with `pick`), so a result lists every endpoint a connection
may reach. Maps are looked up in the fake's state; the dynamic `affinity` map can be written by
the `update` statement (`record=True`), which is how session affinity is traced.

The grammar is exactly the fragments our renderer produces. `parse_rule` raises ValueError on
anything else, and the fake backend parses every rule with it when the rule is added: a rule
fragment the tracer does not know fails the test.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from functools import lru_cache

from ..traceresult import Outcome, Trace

# -- fragments -------------------------------------------------------------------------------
KEYS = {
    "ip daddr . meta l4proto . th dport": ("dst", "proto", "dport"),
    "meta l4proto . th dport": ("proto", "dport"),
    "ct original ip daddr . meta l4proto . ct original proto-dst": ("orig_dst", "proto", "orig_dport"),
    "meta l4proto . ct original proto-dst": ("proto", "orig_dport"),
    "ip saddr . ip daddr . meta l4proto . th dport": ("src", "dst", "proto", "dport"),
    "ip saddr . ip daddr": ("src", "dst"),
}


@dataclass(frozen=True)
class Frag:
    op: str
    args: tuple = ()
    target: str | None = None
    sets: tuple = ()


_KEY_ALT = "|".join(re.escape(k) for k in sorted(KEYS, key=len, reverse=True))
_ADDR = r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(?:/[0-9]+)?"
_SET = r"@([a-z][a-z0-9-]*)"
_PATTERNS: list[tuple[str, re.Pattern]] = [(name, re.compile(p)) for name, p in [
    ("ct_new", r"ct state new"),
    ("ct_dnat", r"ct status dnat"),
    ("vmap", rf"({_KEY_ALT}) vmap {_SET}"),
    ("in_set", rf"(ip saddr \. ip daddr|ip saddr|ip daddr) {_SET}"),
    ("addr", rf"ip (saddr|daddr) (!= )?({_ADDR})"),
    ("fib_local", r"fib (saddr|daddr) type local"),
    ("l4proto", r"meta l4proto (tcp|udp|sctp)(?= |$)"),
    ("mark_clear", r"meta mark & (0x[0-9a-f]+) == 0"),
    ("mark_set", r"meta mark set meta mark (or|xor) (0x[0-9a-f]+)"),
    ("dnat_numgen", rf"dnat ip to (ip daddr \. meta l4proto \. th dport|meta l4proto \. th dport) \. "
                    rf"numgen random mod ([1-9][0-9]*)(?: offset ([0-9]+))? map {_SET}"),
    ("dnat_map", rf"dnat ip to ({_KEY_ALT}) map {_SET}"),
    ("update", rf"update {_SET} \{{ ip saddr \. ct original ip daddr \. meta l4proto \. ct original proto-dst "
               r"timeout ([0-9]+)s : ip daddr \. th dport \}"),
    ("masquerade", r"masquerade fully-random"),
    ("reject_tcp", r"reject with tcp reset"),
    ("reject", r"reject"),
    ("jump", r"(jump|goto) ([a-z][a-z0-9-]*)"),
    ("return", r"return"),
    ("accept", r"accept"),
    ("drop", r"drop"),
]]


TERMINAL = ("jump", "goto", "return", "accept", "drop", "reject", "reject_tcp", "masquerade", "dnat_map",
            "dnat_numgen")


@lru_cache(maxsize=4096)
def parse_rule(text: str) -> tuple[Frag, ...]:
    out: list[Frag] = []
    rest = text.strip()
    while rest:
        for name, pat in _PATTERNS:
            m = pat.match(rest)
            if m and (m.end() == len(rest) or rest[m.end()] == " "):
                break
        else:
            raise ValueError(f"rule fragment the tracer does not know: {rest!r} (in {text!r})")
        g = m.groups()
        if name == "vmap":
            out.append(Frag("vmap", (KEYS[g[0]],), sets=(g[1],)))
        elif name == "in_set":
            fields = KEYS.get(g[0]) or (("src",) if g[0] == "ip saddr" else ("dst",))
            out.append(Frag("in_set", (fields,), sets=(g[1],)))
        elif name == "addr":
            out.append(Frag("addr", ("src" if g[0] == "saddr" else "dst", bool(g[1]), ipaddress.IPv4Network(g[2]))))
        elif name == "fib_local":
            out.append(Frag("fib_local", ("src" if g[0] == "saddr" else "dst",)))
        elif name == "l4proto":
            out.append(Frag("l4proto", (g[0],)))
        elif name == "mark_clear":
            out.append(Frag("mark_clear", (int(g[0], 16),)))
        elif name == "mark_set":
            out.append(Frag("mark_set", (g[0], int(g[1], 16))))
        elif name == "dnat_numgen":
            out.append(Frag("dnat_numgen", (KEYS[g[0]], int(g[1]), int(g[2] or 0)), sets=(g[3],)))
        elif name == "dnat_map":
            out.append(Frag("dnat_map", (KEYS[g[0]],), sets=(g[1],)))
        elif name == "update":
            out.append(Frag("update", (int(g[1]),), sets=(g[0],)))
        elif name == "jump":
            out.append(Frag(g[0], target=g[1]))
        else:
            out.append(Frag(name))
        rest = rest[m.end():].lstrip()
    for f in out[:-1]:  # catch renderer slips like "goto x accept"
        if f.op in TERMINAL:
            raise ValueError(f"terminal {f.op} is not the last fragment of {text!r}")
    return tuple(out)


# -- packets and results -------------------------------------------------------------------------
@dataclass
class Ctx:
    src: str
    dst: str
    proto: str
    dport: str
    orig_dst: str = ""
    orig_dport: str = ""
    mark: int = 0
    dnat: bool = False
    masquerade: bool = False


ROUTE = "route"   # a stage of its own: the routing decision between prerouting and forward/input

_PRIO = {"dstnat": -100, "srcnat": 100, "filter": 0, "raw": -300, "mangle": -150}


def _priority(text) -> int:
    if isinstance(text, int):
        return text
    m = re.match(r"^([a-z]+|-?[0-9]+)(?: ([+-]) ([0-9]+))?$", text.strip())
    if not m:
        raise ValueError(f"priority {text!r}")
    base = _PRIO[m[1]] if m[1] in _PRIO else int(m[1])
    if m[2]:
        base += int(m[3]) * (1 if m[2] == "+" else -1)
    return base


class _Terminal(Exception):
    pass


class Tracer:
    """Trace packets through the table `table` of a FakeNft."""

    def __init__(self, fake, table: str, local_addresses=("127.0.0.1",), family: str = "ip"):
        self.fake = fake
        self.family, self.table_name = family, table
        self.local = {ipaddress.IPv4Address(a) for a in local_addresses}

    def trace(self, src: str, dst: str, dport: int, proto: str = "tcp", *, local: bool = False,
              pick: int | None = None, record: bool = False) -> Trace:
        """A new connection from src to dst:dport. `local`: generated on the node itself (output
        path) rather than arriving on an interface (prerouting path)."""
        t = self.fake.table(self.family, self.table_name)
        # an arriving packet is routed after prerouting (DNAT included): to forward when its
        # destination is not this node; a local one goes on to input, which our table does not use
        hooks = ["output", "postrouting"] if local else ["prerouting", ROUTE, "postrouting"]
        ctx = Ctx(src, dst, proto, str(dport), dst, str(dport))
        results: list[Outcome] = []
        for c in self._walk_hooks(t, hooks, ctx, pick, record):
            results.append(c)
        return Trace(results)

    def _base_chains(self, t, hook: str):
        chains = [(n, c) for n, c in t.chains.items() if c.hook and c.hook[1] == hook]
        return [n for n, c in sorted(chains, key=lambda nc: (_priority(nc[1].hook[2]), nc[0]))]

    def _walk_hooks(self, t, hooks, ctx, pick, record):
        """Yield outcomes; base chains run in priority order; forks come from numgen."""
        stages = [(h, n) for h in hooks for n in ([None] if h == ROUTE else self._base_chains(t, h))]
        yield from self._stage(t, stages, 0, ctx, pick, record)

    def _stage(self, t, stages, i, ctx, pick, record):
        if i == len(stages):
            yield Outcome("ACCEPT", f"{ctx.dst}:{ctx.dport}" if ctx.dnat else None, ctx.masquerade)
            return
        hook, chain = stages[i]
        if hook == ROUTE:
            routed = "input" if ipaddress.IPv4Address(ctx.dst) in self.local else "forward"
            stages = stages[:i] + [(routed, n) for n in self._base_chains(t, routed)] + stages[i + 1:]
            yield from self._stage(t, stages, i, ctx, pick, record)
            return
        nat = t.chains[chain].hook[0] == "nat"
        if nat and hook in ("prerouting", "output") and ctx.dnat:
            yield from self._stage(t, stages, i + 1, ctx, pick, record)  # NAT is decided once
            return
        for kind, c in self._run(t, [(chain, 0)], ctx, pick, record):
            if kind in ("DROP", "REJECT", "REJECT_TCP"):
                yield Outcome("DROP" if kind == "DROP" else "REJECT", None, False,
                              "" if kind == "DROP" else ("tcp reset" if kind == "REJECT_TCP" else "icmp port-unreachable"))
            else:  # ACCEPT (end of chain, accept, dnat, masquerade)
                yield from self._stage(t, stages, i + 1, c, pick, record)

    def _run(self, t, stack, ctx, pick, record):
        """Run from stack[-1] (chain, rule index). Yields (verdict, ctx) per branch."""
        while stack:
            chain, idx = stack[-1]
            rules = t.chains[chain].rules
            if idx >= len(rules):
                stack.pop()      # end of chain: back to the caller of the last jump
                continue
            stack[-1] = (chain, idx + 1)
            outcome = yield from self._rule(t, parse_rule(rules[idx]), ctx, stack, pick, record)
            if outcome == "next":
                continue
            if outcome == "stop":
                return
        yield ("ACCEPT", ctx)

    def _rule(self, t, frags, ctx, stack, pick, record):
        """Evaluate one rule. Returns "next" (go on), "stop" (this branch has been yielded)."""
        for n, f in enumerate(frags):
            op = f.op
            if op == "ct_new":
                continue  # every traced packet opens a new connection
            if op == "ct_dnat":
                if not ctx.dnat:
                    return "next"
            elif op == "addr":
                which, negate, net = f.args
                inside = ipaddress.IPv4Address(getattr(ctx, which)) in net
                if inside == negate:
                    return "next"
            elif op == "fib_local":
                if ipaddress.IPv4Address(ctx.src if f.args[0] == "src" else ctx.dst) not in self.local:
                    return "next"
            elif op == "l4proto":
                if ctx.proto != f.args[0]:
                    return "next"
            elif op == "mark_clear":
                if ctx.mark & f.args[0]:
                    return "next"
            elif op == "in_set":
                s = t.sets[f.sets[0]]
                key = tuple(getattr(ctx, a) for a in f.args[0])
                if "interval" in s.flags:
                    ip = ipaddress.IPv4Address(key[0])
                    if not any(ip in ipaddress.IPv4Network(k[0]) for k in s.elements):
                        return "next"
                elif key not in s.elements:
                    return "next"
            elif op == "vmap":
                v = t.sets[f.sets[0]].elements.get(tuple(getattr(ctx, a) for a in f.args[0]))
                if v is None:
                    return "next"
                verb, target = v.split(" ", 1)
                self._jump(stack, verb, target)
                return "next"
            elif op == "mark_set":
                ctx.mark = ctx.mark | f.args[1] if f.args[0] == "or" else ctx.mark ^ f.args[1]
            elif op == "dnat_map":
                key = tuple(getattr(ctx, a) for a in f.args[0])
                v = self.fake.dynamic_lookup(t, f.sets[0], key) if f.sets[0] == "affinity" else \
                    t.sets[f.sets[0]].elements.get(key)
                if v is None:
                    return "next"
                yield ("ACCEPT", self._dnat(ctx, v))
                return "stop"
            elif op == "dnat_numgen":
                names, mod, offset = f.args
                base = tuple(getattr(ctx, a) for a in names)
                slots = range(mod) if pick is None else [pick % mod]
                elems = t.sets[f.sets[0]].elements
                missed = False
                for s in slots:
                    v = elems.get(base + (str(offset + s),))
                    if v is None:
                        missed = True   # this branch goes on with the next rule
                        continue
                    yield ("ACCEPT", self._dnat(replace(ctx), v))
                if missed:
                    sub = [tuple(x) for x in stack]
                    yield from self._run(t, sub, replace(ctx), pick, record)
                return "stop"
            elif op == "update":
                if record:
                    key = (ctx.src, ctx.orig_dst, ctx.proto, ctx.orig_dport)
                    self.fake.dynamic_update(t, f.sets[0], key, (ctx.dst, ctx.dport), f.args[0])
            elif op == "masquerade":
                ctx.masquerade = True
                yield ("ACCEPT", ctx)
                return "stop"
            elif op in ("reject", "reject_tcp"):
                yield ("REJECT_TCP" if op == "reject_tcp" else "REJECT", ctx)
                return "stop"
            elif op == "drop":
                yield ("DROP", ctx)
                return "stop"
            elif op == "accept":
                yield ("ACCEPT", ctx)
                return "stop"
            elif op == "return":
                stack.pop()
                return "next"
            elif op in ("jump", "goto"):
                self._jump(stack, op, f.target)
                return "next"
            else:  # pragma: no cover - parse_rule only makes known ops
                raise ValueError(f"unknown fragment {op}")
        return "next"

    @staticmethod
    def _jump(stack, verb, target):
        if verb == "goto":
            stack.pop()
        stack.append((target, 0))

    @staticmethod
    def _dnat(ctx: Ctx, value) -> Ctx:
        ip, port = value
        ctx = replace(ctx)
        ctx.dst, ctx.dport, ctx.dnat = ip, port, True
        return ctx
